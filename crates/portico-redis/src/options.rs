//! [`RedisOptions`]: where Redis is, how long a call may take, what the keys start with, and
//! what the limits do while Redis is away ([`FailMode`]); and [`shown_url`], the URL as
//! messages and logs may show it (no password).

use std::fmt;
use std::time::Duration;

/// The environment variable naming the Redis URL (`redis://…`, `rediss://…`,
/// `redis+unix:///path.sock`).
pub const ENV_URL: &str = "PORTICO_REDIS_URL";
/// The environment variable with the per-call timeout, in milliseconds.
pub const ENV_TIMEOUT_MS: &str = "PORTICO_REDIS_TIMEOUT_MS";
/// The environment variable with the key prefix.
pub const ENV_PREFIX: &str = "PORTICO_REDIS_PREFIX";
/// The environment variable with the rate limits' mode while Redis is away (`open`, `closed`).
pub const ENV_LIMITS_FAIL: &str = "PORTICO_REDIS_LIMITS_FAIL";
/// The environment variable with the budgets' mode while Redis is away (`open`, `closed`).
pub const ENV_BUDGETS_FAIL: &str = "PORTICO_REDIS_BUDGETS_FAIL";

/// The default per-call timeout: the limits' check is on the request path, so a slow Redis
/// must cost a request little more than this before the fail mode decides.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "portico:";

/// What a limit does while Redis cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Admit the request unchecked (its usage is still charged once Redis is back).
    Open,
    /// Refuse the request with a 503 that says why.
    Closed,
}

impl FailMode {
    /// `open` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }

    /// The mode named `text` (`open`, `closed`, any case).
    pub fn parse(text: &str) -> Option<FailMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "open" => Some(FailMode::Open),
            "closed" => Some(FailMode::Closed),
            _ => None,
        }
    }
}

impl fmt::Display for FailMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one process uses Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port[/db]`, `rediss://…` or `redis+unix:///path.sock`.
    pub url: String,
    /// Prepended to every key and channel, so several gateways (or other tenants) can share
    /// one Redis.
    pub prefix: String,
    /// The longest one call may take before it counts as a failure.
    pub timeout: Duration,
    /// Rate limits while Redis is away: open by default (a minute's window matters less
    /// than availability).
    pub limits_fail: FailMode,
    /// Budgets while Redis is away: closed by default (money).
    pub budgets_fail: FailMode,
}

impl RedisOptions {
    /// The defaults for `url`: 200 ms, `portico:`, rate limits open, budgets closed.
    pub fn new(url: impl Into<String>) -> RedisOptions {
        RedisOptions {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            limits_fail: FailMode::Open,
            budgets_fail: FailMode::Closed,
        }
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisOptions")
            .field("url", &shown_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("limits_fail", &self.limits_fail)
            .field("budgets_fail", &self.budgets_fail)
            .finish()
    }
}

/// `url` as a message may show it: the password (and a user name with it) replaced by `***`,
/// the query (which may carry `pass=`) dropped. Something that is not a URL shows as
/// `(an unreadable URL)`, since it may be a password pasted in the wrong place.
pub fn shown_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(an unreadable URL)".to_owned();
    };
    if parsed.password().is_some() {
        // Both only fail on URLs that cannot have credentials, which this one has.
        let _ = parsed.set_password(Some("***"));
        if !parsed.username().is_empty() {
            let _ = parsed.set_username("***");
        }
    } else if !parsed.username().is_empty() {
        // `redis://secret@host` is read as a password by some clients.
        let _ = parsed.set_username("***");
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_never_has_the_password() {
        assert_eq!(
            shown_url("redis://:hunter2@cache.internal:6379/0"),
            "redis://:***@cache.internal:6379/0"
        );
        assert_eq!(
            shown_url("redis://app:hunter2@cache.internal:6379"),
            "redis://***:***@cache.internal:6379"
        );
        assert_eq!(
            shown_url("redis+unix:///run/redis.sock?pass=hunter2&db=1"),
            "redis+unix:///run/redis.sock"
        );
        assert_eq!(shown_url("hunter2"), "(an unreadable URL)");
        assert_eq!(shown_url("redis://cache:6379"), "redis://cache:6379");
        let debug = format!("{:?}", RedisOptions::new("redis://:hunter2@h:1"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn modes_read_back() {
        assert_eq!(FailMode::parse(" Open"), Some(FailMode::Open));
        assert_eq!(FailMode::parse("closed"), Some(FailMode::Closed));
        assert_eq!(FailMode::parse("maybe"), None);
        let options = RedisOptions::new("redis://h");
        assert_eq!(
            (options.limits_fail, options.budgets_fail),
            (FailMode::Open, FailMode::Closed)
        );
    }
}
