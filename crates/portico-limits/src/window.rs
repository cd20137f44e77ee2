//! [`Window`]: the sliding minute of a rate limit, counted in one-second buckets.
//!
//! The ring holds the last 60 seconds; each bucket remembers which second it counts, so a
//! bucket left over from an earlier minute is recognised and cleared as time moves on.
//! Running totals make a check O(1); moving time forward clears at most 60 buckets.
//!
//! Resolution is one second: a request counts until the start of the second 60 seconds
//! after the one it arrived in, so it may leave the window up to a second early. That is the
//! usual trade of a bucketed window (a log of every request would cost memory per request).

use portico_core::WindowBucket;

/// Seconds in the window.
pub(crate) const WINDOW_SECS: i64 = 60;

/// One second's counts.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    second: i64,
    requests: u64,
    tokens: u64,
}

const EMPTY: Bucket = Bucket {
    second: i64::MIN,
    requests: 0,
    tokens: 0,
};

/// Requests and tokens of the last minute.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    buckets: [Bucket; WINDOW_SECS as usize],
    /// The newest second the ring counts; it covers `head - 59 ..= head` (0 when new: real
    /// times are far past it, so the first count clears the ring).
    head: i64,
    requests: u64,
    tokens: u64,
}

fn slot(second: i64) -> usize {
    // rem_euclid of 60 is in 0..60.
    usize::try_from(second.rem_euclid(WINDOW_SECS)).unwrap_or(0)
}

/// The whole second of a Unix-milliseconds time.
pub(crate) fn second_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
}

impl Window {
    pub(crate) fn new() -> Window {
        Window {
            buckets: [EMPTY; WINDOW_SECS as usize],
            head: 0,
            requests: 0,
            tokens: 0,
        }
    }

    /// Moves the window to end at `now_s`, dropping the seconds that left it. A clock that
    /// went back keeps the window where it is.
    pub(crate) fn advance(&mut self, now_s: i64) {
        if now_s <= self.head {
            return;
        }
        if now_s - self.head >= WINDOW_SECS {
            self.buckets = [EMPTY; WINDOW_SECS as usize];
            self.requests = 0;
            self.tokens = 0;
        } else {
            for second in self.head + 1..=now_s {
                let bucket = &mut self.buckets[slot(second)];
                self.requests = self.requests.saturating_sub(bucket.requests);
                self.tokens = self.tokens.saturating_sub(bucket.tokens);
                *bucket = EMPTY;
            }
        }
        self.head = now_s;
    }

    /// Requests counted in the window (call [`Window::advance`] first).
    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Tokens counted in the window (call [`Window::advance`] first).
    pub(crate) fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Counts `requests` and `tokens` in the newest second; returns that second.
    pub(crate) fn add(&mut self, now_s: i64, requests: u64, tokens: u64) -> i64 {
        self.advance(now_s);
        let head = self.head;
        let bucket = &mut self.buckets[slot(head)];
        if bucket.second != head {
            *bucket = Bucket {
                second: head,
                requests: 0,
                tokens: 0,
            };
        }
        bucket.requests += requests;
        bucket.tokens += tokens;
        self.requests += requests;
        self.tokens += tokens;
        head
    }

    /// Counts `tokens` in `second` if it still counts, else in `now_s` (which the window
    /// has been advanced to).
    pub(crate) fn add_at(&mut self, second: i64, now_s: i64, tokens: u64) {
        let counts = second <= self.head
            && second > self.head - WINDOW_SECS
            && self.buckets[slot(second)].second == second;
        if counts {
            self.buckets[slot(second)].tokens += tokens;
            self.tokens += tokens;
        } else {
            self.add(now_s, 0, tokens);
        }
    }

    /// Takes back what [`Window::add`] counted in `second`, if that second still counts.
    pub(crate) fn remove(&mut self, second: i64, requests: u64, tokens: u64) {
        if second > self.head || second <= self.head - WINDOW_SECS {
            return;
        }
        let bucket = &mut self.buckets[slot(second)];
        if bucket.second != second {
            return;
        }
        let requests = requests.min(bucket.requests);
        let tokens = tokens.min(bucket.tokens);
        bucket.requests -= requests;
        bucket.tokens -= tokens;
        self.requests -= requests;
        self.tokens -= tokens;
    }

    /// How long from `now_ms` until `requests` more requests and `tokens` more tokens fit
    /// under the limits (`None` for no limit), as the oldest seconds leave the window; `None`
    /// when they never fit (more than the limit itself). Call [`Window::advance`] first.
    pub(crate) fn wait_ms(
        &self,
        now_ms: i64,
        requests: u64,
        tokens: u64,
        requests_limit: Option<u64>,
        tokens_limit: Option<u64>,
    ) -> Option<i64> {
        let fits = |used_requests: u64, used_tokens: u64| {
            requests_limit.is_none_or(|l| used_requests.saturating_add(requests) <= l)
                && tokens_limit.is_none_or(|l| used_tokens.saturating_add(tokens) <= l)
        };
        if fits(self.requests, self.tokens) {
            return Some(0);
        }
        let (mut left_requests, mut left_tokens) = (self.requests, self.tokens);
        for second in self.head - (WINDOW_SECS - 1)..=self.head {
            let bucket = &self.buckets[slot(second)];
            if bucket.second != second {
                continue;
            }
            left_requests -= bucket.requests.min(left_requests);
            left_tokens -= bucket.tokens.min(left_tokens);
            if fits(left_requests, left_tokens) {
                // The bucket stops counting at the start of the second a minute later.
                return Some(((second + WINDOW_SECS) * 1000 - now_ms).max(0));
            }
        }
        None
    }

    /// When everything counted now has left the window, Unix milliseconds; `None` when the
    /// window is empty.
    pub(crate) fn clears_at_ms(&self) -> Option<i64> {
        if self.requests == 0 && self.tokens == 0 {
            return None;
        }
        (self.head - (WINDOW_SECS - 1)..=self.head)
            .rev()
            .find(|s| {
                let b = &self.buckets[slot(*s)];
                b.second == *s && (b.requests > 0 || b.tokens > 0)
            })
            .map(|s| (s + WINDOW_SECS) * 1000)
    }

    /// The seconds that count, oldest first, for persistence.
    pub(crate) fn buckets(&self) -> Vec<WindowBucket> {
        (self.head - (WINDOW_SECS - 1)..=self.head)
            .filter_map(|s| {
                let b = &self.buckets[slot(s)];
                (b.second == s && (b.requests > 0 || b.tokens > 0)).then_some(WindowBucket {
                    second: s,
                    requests: b.requests,
                    tokens: b.tokens,
                })
            })
            .collect()
    }

    /// Counts persisted seconds again; those that have left the window by `now_s` are
    /// dropped.
    pub(crate) fn restore(&mut self, buckets: &[WindowBucket], now_s: i64) {
        self.advance(now_s);
        for b in buckets {
            if b.second > now_s || b.second <= now_s - WINDOW_SECS {
                continue;
            }
            let bucket = &mut self.buckets[slot(b.second)];
            if bucket.second != b.second {
                *bucket = Bucket {
                    second: b.second,
                    requests: 0,
                    tokens: 0,
                };
            }
            bucket.requests += b.requests;
            bucket.tokens += b.tokens;
            self.requests += b.requests;
            self.tokens += b.tokens;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_slide_out_a_minute_after_their_second() {
        let mut w = Window::new();
        w.add(100, 1, 10);
        w.add(130, 2, 20);
        w.advance(159);
        assert_eq!((w.requests(), w.tokens()), (3, 30));
        w.advance(160);
        assert_eq!(
            (w.requests(), w.tokens()),
            (2, 20),
            "second 100 left at 160"
        );
        w.advance(189);
        assert_eq!(w.requests(), 2);
        w.advance(190);
        assert_eq!((w.requests(), w.tokens()), (0, 0));
        // A long pause clears everything at once.
        w.add(1_000, 5, 5);
        w.advance(5_000);
        assert_eq!((w.requests(), w.tokens()), (0, 0));
    }

    #[test]
    fn a_clock_that_goes_back_counts_in_the_newest_second() {
        let mut w = Window::new();
        w.add(100, 1, 0);
        let second = w.add(90, 1, 0);
        assert_eq!(second, 100);
        w.advance(159);
        assert_eq!(w.requests(), 2);
        w.advance(160);
        assert_eq!(w.requests(), 0);
    }

    #[test]
    fn the_wait_is_until_enough_of_the_oldest_seconds_leave() {
        let mut w = Window::new();
        w.add(100, 1, 0);
        w.add(110, 1, 0);
        w.add(120, 1, 0);
        let now_ms = 125_400;
        w.advance(second_of(now_ms));
        // A limit of 3: one more fits when second 100 leaves, at 160 s.
        assert_eq!(w.wait_ms(now_ms, 1, 0, Some(3), None), Some(34_600));
        // A limit of 2: two must leave, at 170 s.
        assert_eq!(w.wait_ms(now_ms, 1, 0, Some(2), None), Some(44_600));
        assert_eq!(w.wait_ms(now_ms, 1, 0, Some(4), None), Some(0));
        // Tokens: more than the limit itself never fits.
        assert_eq!(w.wait_ms(now_ms, 0, 11, None, Some(10)), None);
    }

    #[test]
    fn removal_takes_back_only_what_still_counts() {
        let mut w = Window::new();
        let s = w.add(100, 1, 50);
        w.remove(s, 1, 50);
        assert_eq!((w.requests(), w.tokens()), (0, 0));
        let s = w.add(100, 1, 50);
        w.advance(200);
        w.add(200, 1, 5);
        w.remove(s, 1, 50);
        assert_eq!((w.requests(), w.tokens()), (1, 5), "second 100 had left");
    }

    #[test]
    fn persisted_seconds_come_back_unless_they_left() {
        let mut w = Window::new();
        w.add(100, 2, 20);
        w.add(150, 1, 10);
        let saved = w.buckets();
        assert_eq!(saved.len(), 2);
        assert_eq!(w.clears_at_ms(), Some(210_000));
        let mut back = Window::new();
        back.restore(&saved, 155);
        assert_eq!((back.requests(), back.tokens()), (3, 30));
        let mut later = Window::new();
        later.restore(&saved, 165);
        assert_eq!((later.requests(), later.tokens()), (1, 10));
        assert_eq!(Window::new().clears_at_ms(), None);
        assert!(Window::new().buckets().is_empty());
    }
}
