//! [`SharedBreakers`]: a circuit breaker that opens in one process opens in all of them.
//!
//! It is the registry's [`BreakerObserver`]: when a breaker opens here, it publishes the
//! target and the wall-clock time the cool-down ends on `<prefix>breakers`, and keeps it in
//! `<prefix>breaker:<@slug/model>` with a TTL of the cool-down, so that a process starting
//! later (or subscribing again after an outage) learns the breakers still open. Every other
//! process forces the breaker open until then ([`HealthRegistry::force_open`], which does not
//! publish again). What each process then does is its own: the half-open probe after the
//! cool-down, and closing on success, happen per process (a target that recovered is probed
//! by each, once).
//!
//! Times cross processes as Unix milliseconds: processes should agree on the time (NTP); an
//! opening whose end has already passed on the receiving clock is ignored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_routing::{BreakerObserver, HealthRegistry};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn::Conn;
use crate::pubsub::{self, Event};

/// What applies an opening heard from another process: usually
/// `|key, until| registry.force_open(key, until)` on the gateway's registry.
pub type ApplyOpening = dyn Fn(&str, Instant) + Send + Sync;

/// The breaker state shared through Redis; see the module docs.
#[derive(Clone)]
pub struct SharedBreakers {
    inner: Arc<BreakersInner>,
}

struct BreakersInner {
    conn: Arc<Conn>,
    channel: String,
    key_prefix: String,
    pid: Arc<str>,
    apply: Box<ApplyOpening>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for SharedBreakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBreakers")
            .field("channel", &self.inner.channel)
            .finish_non_exhaustive()
    }
}

impl SharedBreakers {
    pub(crate) fn new(
        conn: Arc<Conn>,
        prefix: &str,
        pid: Arc<str>,
        apply: Box<ApplyOpening>,
        tasks: &TaskTracker,
    ) -> SharedBreakers {
        SharedBreakers {
            inner: Arc::new(BreakersInner {
                conn,
                channel: format!("{prefix}breakers"),
                key_prefix: format!("{prefix}breaker:"),
                pid,
                apply,
                tasks: tasks.clone(),
            }),
        }
    }

    /// Follows the other processes' openings until `stop`.
    pub(crate) fn follow(&self, stop: CancellationToken) {
        let follower = self.clone();
        let client = self.inner.conn.client().clone();
        self.inner.tasks.spawn(pubsub::follow(
            client,
            self.inner.channel.clone(),
            stop,
            move |event| match event {
                Event::Subscribed => {
                    let breakers = follower.clone();
                    follower
                        .inner
                        .tasks
                        .spawn(async move { breakers.catch_up().await });
                }
                Event::Message(payload) => follower.received(payload),
            },
        ));
    }

    /// Registers these shared breakers as `registry`'s observer; `false` when it already
    /// had one.
    pub fn observe(&self, registry: &HealthRegistry) -> bool {
        registry
            .set_observer(Arc::new(self.clone()) as Arc<dyn BreakerObserver>)
            .is_ok()
    }

    fn received(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let mut parts = text.splitn(3, ' ');
        let (Some(pid), Some(until), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        if pid == &*self.inner.pid {
            return;
        }
        if let Ok(until_ms) = until.parse::<i64>() {
            self.apply(key, until_ms);
        }
    }

    fn apply(&self, key: &str, until_ms: i64) {
        let left = until_ms - portico_core::now_ms();
        let Ok(left) = u64::try_from(left) else {
            return;
        };
        if left == 0 {
            return;
        }
        (self.inner.apply)(key, Instant::now() + Duration::from_millis(left));
    }

    /// Applies the breakers still open, after (re)subscribing.
    async fn catch_up(&self) {
        let inner = &self.inner;
        let pattern = format!("{}*", escape_glob(&inner.key_prefix));
        let mut cursor: u64 = 0;
        loop {
            let page = inner
                .conn
                .run(async |c| {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(200)
                        .query_async::<(u64, Vec<String>)>(c)
                        .await
                })
                .await;
            let Ok((next, keys)) = page else {
                return;
            };
            if !keys.is_empty() {
                let values = inner
                    .conn
                    .run(async |c| {
                        redis::cmd("MGET")
                            .arg(&keys)
                            .query_async::<Vec<Option<i64>>>(c)
                            .await
                    })
                    .await;
                if let Ok(values) = values {
                    for (key, until) in keys.iter().zip(values) {
                        if let (Some(target), Some(until)) =
                            (key.strip_prefix(&inner.key_prefix), until)
                        {
                            self.apply(target, until);
                        }
                    }
                }
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

impl BreakerObserver for SharedBreakers {
    fn opened(&self, key: &str, until: Instant) {
        let left = until.saturating_duration_since(Instant::now());
        let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        if left_ms == 0 {
            return;
        }
        let until_ms = portico_core::now_ms().saturating_add(i64::try_from(left_ms).unwrap_or(0));
        let inner = Arc::clone(&self.inner);
        let redis_key = format!("{}{key}", inner.key_prefix);
        let message = format!("{} {until_ms} {key}", inner.pid);
        self.inner.tasks.spawn(async move {
            let published = inner
                .conn
                .run(async |c| {
                    redis::pipe()
                        .cmd("SET")
                        .arg(&redis_key)
                        .arg(until_ms)
                        .arg("PX")
                        .arg(left_ms)
                        .ignore()
                        .cmd("PUBLISH")
                        .arg(&inner.channel)
                        .arg(&message)
                        .ignore()
                        .query_async::<()>(c)
                        .await
                })
                .await;
            if let Err(error) = published {
                tracing::debug!(%error, "cannot share a circuit breaker's opening");
            }
        });
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("portico:breaker:"), "portico:breaker:");
        assert_eq!(escape_glob("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
