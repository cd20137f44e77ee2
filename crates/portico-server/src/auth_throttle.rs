//! Throttling of failed authentication per client address: a client that has presented a
//! credential the gateway refused (401 `invalid_api_key`: unknown, revoked or expired key, bad
//! JWT) [`DEFAULT_AUTH_FAILURE_LIMIT`] times within [`AUTH_FAILURE_WINDOW`] gets 429 with
//! `Retry-After` for every request until that window ends, on the data plane, the admin API,
//! `/gateway/v1` and `/metrics` alike. A 401 passed on from an upstream (a wrong provider
//! key) is not the client's failure and is not counted, nor is a request with no credential,
//! nor a wrong `/metrics` token (its route is not the gateway's).
//!
//! Why: generated keys (256 random bits) cannot be guessed, but fixed keys from a catalog
//! file may be as short as 16 characters, and every 401 costs the gateway a hash and a log
//! line; a client that keeps failing is either misconfigured or probing. The listener
//! ([`crate::serve`]) asks [`AuthThrottle::refused`] before a request is routed and tells
//! [`AuthThrottle::record_failure`] of each answer that carries the [`AuthFailed`] mark (the
//! error renderer sets it).
//!
//! What it is not: a general rate limit (that is the keys' `rate_limits`), nor aware of
//! proxies: the address is the TCP peer's (`X-Forwarded-For` is not trusted), so behind a
//! reverse proxy every client shares the proxy's address; raise the limit there or turn it
//! off (`--auth-failure-limit 0`). IPv6 clients are counted per /64, the block one host
//! usually has. Memory is bounded: at most [`MAX_TRACKED_CLIENTS`] addresses are tracked,
//! the one whose window began first is forgotten to make room.
//!
//! Cost on the request path: one atomic load while no address is tracked (the usual state),
//! otherwise one short mutex section (no await inside) and one hash probe.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Default of `--auth-failure-limit`: failed authentications one client address may have
/// within [`AUTH_FAILURE_WINDOW`] before its requests are refused with 429.
pub const DEFAULT_AUTH_FAILURE_LIMIT: u32 = 20;

/// The window failures are counted in, from the first failure of the window.
pub const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Most client addresses tracked at once (about 40 bytes each).
pub const MAX_TRACKED_CLIENTS: usize = 16_384;

/// The mark on an answer that refused a presented credential (a response extension).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthFailed;

/// Failed authentications per client address (see the module documentation).
#[derive(Debug)]
pub struct AuthThrottle {
    limit: u32,
    window: Duration,
    capacity: usize,
    /// Entries in `clients`, readable without the lock.
    tracked: AtomicUsize,
    clients: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

impl AuthThrottle {
    /// A throttle refusing a client after `limit` failures within [`AUTH_FAILURE_WINDOW`];
    /// `limit` 0 turns it off.
    pub fn new(limit: u32) -> AuthThrottle {
        AuthThrottle::with(limit, AUTH_FAILURE_WINDOW, MAX_TRACKED_CLIENTS)
    }

    fn with(limit: u32, window: Duration, capacity: usize) -> AuthThrottle {
        AuthThrottle {
            limit,
            window,
            capacity: capacity.max(1),
            tracked: AtomicUsize::new(0),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a limit is set.
    pub fn is_enabled(&self) -> bool {
        self.limit > 0
    }

    /// The failures allowed within a window (0: off).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The seconds `client` must wait (for `Retry-After`, at least 1) when it has used up
    /// its failures in the current window, `None` when it may go on.
    pub fn refused(&self, client: IpAddr, now: Instant) -> Option<u32> {
        if !self.is_enabled() || self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let failures = clients.get(&group(client))?;
        let ends = failures.since + self.window;
        (failures.count >= self.limit && now < ends).then(|| {
            let secs = ends.saturating_duration_since(now).as_secs_f64().ceil();
            (secs as u32).max(1)
        })
    }

    /// Counts a refused credential of `client`; true when this failure used up its window's
    /// allowance (the moment to log that the address is now throttled).
    pub fn record_failure(&self, client: IpAddr, now: Instant) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let key = group(client);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if !clients.contains_key(&key) && clients.len() >= self.capacity {
            clients.retain(|_, f| now < f.since + self.window);
            if clients.len() >= self.capacity
                && let Some(oldest) = clients.iter().min_by_key(|(_, f)| f.since).map(|(k, _)| *k)
            {
                clients.remove(&oldest);
            }
        }
        let failures = clients.entry(key).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now >= failures.since + self.window {
            *failures = Failures {
                since: now,
                count: 0,
            };
        }
        failures.count = failures.count.saturating_add(1);
        let used_up = failures.count == self.limit;
        self.tracked.store(clients.len(), Ordering::Relaxed);
        used_up
    }
}

/// The address failures are counted under: an IPv4 address (also when it comes IPv4-mapped),
/// or an IPv6 address's /64.
fn group(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_is_refused_after_the_limit_until_its_window_ends() {
        let throttle = AuthThrottle::with(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let client = ip("10.0.0.1");
        for i in 0..3 {
            assert_eq!(throttle.refused(client, t0), None, "after {i} failures");
            let used_up = throttle.record_failure(client, t0 + Duration::from_secs(i));
            assert_eq!(used_up, i == 2, "failure {i}");
        }
        assert_eq!(
            throttle.refused(client, t0 + Duration::from_secs(3)),
            Some(57)
        );
        assert_eq!(
            throttle.refused(client, t0 + Duration::from_millis(59_500)),
            Some(1)
        );
        // Another client is not affected.
        assert_eq!(throttle.refused(ip("10.0.0.2"), t0), None);
        // The window is over: allowed again, and counting starts afresh.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(throttle.refused(client, later), None);
        throttle.record_failure(client, later);
        assert_eq!(throttle.refused(client, later), None);
    }

    #[test]
    fn a_limit_of_zero_turns_it_off() {
        let throttle = AuthThrottle::new(0);
        let t0 = Instant::now();
        for _ in 0..100 {
            throttle.record_failure(ip("10.0.0.1"), t0);
        }
        assert_eq!(throttle.refused(ip("10.0.0.1"), t0), None);
        assert!(!throttle.is_enabled());
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = AuthThrottle::with(2, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        throttle.record_failure(ip("2001:db8:1:2::1"), t0);
        throttle.record_failure(ip("2001:db8:1:2:ffff::9"), t0);
        assert!(throttle.refused(ip("2001:db8:1:2::77"), t0).is_some());
        assert_eq!(throttle.refused(ip("2001:db8:1:3::1"), t0), None);
        throttle.record_failure(ip("::ffff:192.0.2.1"), t0);
        throttle.record_failure(ip("192.0.2.1"), t0);
        assert!(throttle.refused(ip("192.0.2.1"), t0).is_some());
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_oldest_window() {
        let throttle = AuthThrottle::with(1, Duration::from_secs(60), 4);
        let t0 = Instant::now();
        for i in 0..10u8 {
            throttle.record_failure(
                IpAddr::from([10, 0, 0, i]),
                t0 + Duration::from_secs(u64::from(i)),
            );
        }
        let at = t0 + Duration::from_secs(10);
        assert_eq!(throttle.tracked.load(Ordering::Relaxed), 4);
        // The four most recent are still refused, the oldest were forgotten.
        assert!(throttle.refused(IpAddr::from([10, 0, 0, 9]), at).is_some());
        assert!(throttle.refused(IpAddr::from([10, 0, 0, 6]), at).is_some());
        assert_eq!(throttle.refused(IpAddr::from([10, 0, 0, 0]), at), None);
    }
}
