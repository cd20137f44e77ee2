//! [`Conn`]: the process's one connection to Redis, every call bounded by the timeout, and
//! what an outage looks like to callers ([`Unavailable`]).
//!
//! redis-rs' `ConnectionManager` multiplexes every call of the process on one connection and
//! reconnects by itself after the connection drops. Two things are added here:
//!
//! - **A timeout per call** (the options', 200 ms by default): the limits' check is on the
//!   request path, so a slow Redis must not hold a request longer than that.
//! - **Known outages fail fast.** The first call that finds Redis unreachable (or too slow)
//!   marks it down and logs one warning; until a background probe (a `PING` every 250 ms)
//!   finds it back, calls fail at once with the same reason instead of each waiting for the
//!   timeout, so a fail-open process keeps its latency while Redis is away. The probe also
//!   replaces the connection manager when Redis keeps not answering at all (a connection
//!   that hangs rather than breaks is never replaced by redis-rs on its own). When Redis is
//!   back the probe logs it, once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often a down Redis is probed.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// Probes that time out in a row before the connection manager is replaced.
const HUNG_PROBES: u32 = 4;

/// Why Redis could not answer a call; its `Display` is the phrase messages are built from:
/// `Redis (redis://cache:6379) is unreachable: connection refused`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    url: Arc<str>,
    what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Unreachable(String),
    Slow(Duration),
    Refused(String),
}

impl Unavailable {
    /// Whether Redis answered, with an error (rather than not answering at all).
    pub fn answered(&self) -> bool {
        matches!(self.what, What::Refused(_))
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = &self.url;
        match &self.what {
            What::Unreachable(reason) => write!(f, "Redis ({url}) is unreachable: {reason}"),
            What::Slow(timeout) => write!(
                f,
                "Redis ({url}) did not answer within {} ms",
                timeout.as_millis()
            ),
            What::Refused(error) => write!(f, "Redis ({url}) answered with an error: {error}"),
        }
    }
}

impl std::error::Error for Unavailable {}

/// The process's connection; see the module docs.
pub(crate) struct Conn {
    client: redis::Client,
    config: ConnectionManagerConfig,
    manager: ArcSwap<ConnectionManager>,
    timeout: Duration,
    url: Arc<str>,
    /// What the warning logged when Redis went down says the gateway does meanwhile.
    meanwhile: String,
    down: AtomicBool,
    /// Set during the first ping, which logs its own warning.
    starting: AtomicBool,
    reason: Mutex<Option<Unavailable>>,
    went_down: Notify,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection to `client`, not yet made (the first call or the probe makes it).
    pub(crate) fn new(
        client: redis::Client,
        url: Arc<str>,
        timeout: Duration,
        meanwhile: String,
    ) -> RedisResult<Conn> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(timeout))
            // One attempt per reconnection, no backoff inside redis-rs: a call waiting on it
            // learns at once why Redis is away (rather than running out of time during the
            // retries), and the probe paces the next attempts.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Conn {
            client,
            config,
            manager: ArcSwap::from_pointee(manager),
            timeout,
            url,
            meanwhile,
            down: AtomicBool::new(false),
            starting: AtomicBool::new(false),
            reason: Mutex::new(None),
            went_down: Notify::new(),
        })
    }

    /// The URL as shown (no password).
    pub(crate) fn url(&self) -> &Arc<str> {
        &self.url
    }

    /// The per-call timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A client for connections of their own (pub/sub).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether Redis is known to be away now.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Runs `call` on the connection within the per-call timeout.
    pub(crate) async fn run<T>(
        &self,
        call: impl AsyncFnOnce(&mut ConnectionManager) -> RedisResult<T>,
    ) -> Result<T, Unavailable> {
        self.run_within(self.timeout, call).await
    }

    /// Runs `call` on the connection within `timeout`; fails at once while Redis is known
    /// to be away.
    pub(crate) async fn run_within<T>(
        &self,
        timeout: Duration,
        call: impl AsyncFnOnce(&mut ConnectionManager) -> RedisResult<T>,
    ) -> Result<T, Unavailable> {
        if self.is_down()
            && let Some(reason) = self.reason()
        {
            return Err(reason);
        }
        self.attempt(timeout, call).await
    }

    /// Runs `call` whether or not Redis is known to be away (the probe).
    async fn attempt<T>(
        &self,
        timeout: Duration,
        call: impl AsyncFnOnce(&mut ConnectionManager) -> RedisResult<T>,
    ) -> Result<T, Unavailable> {
        let mut manager = ConnectionManager::clone(&self.manager.load());
        match tokio::time::timeout(timeout, call(&mut manager)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let failure = self.classify(&error, timeout);
                if !failure.answered() {
                    self.mark_down(&failure);
                }
                Err(failure)
            }
            Err(_) => {
                let failure = self.failure(What::Slow(timeout));
                self.mark_down(&failure);
                Err(failure)
            }
        }
    }

    fn failure(&self, what: What) -> Unavailable {
        Unavailable {
            url: Arc::clone(&self.url),
            what,
        }
    }

    fn classify(&self, error: &RedisError, timeout: Duration) -> Unavailable {
        let what = if error.is_timeout() {
            What::Slow(timeout)
        } else if error.is_connection_refusal() {
            What::Unreachable("connection refused".to_owned())
        } else if error.is_connection_dropped() {
            What::Unreachable("the connection was lost".to_owned())
        } else if error.kind() == ErrorKind::AuthenticationFailed
            || error.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
        {
            What::Unreachable("authentication failed (check the password in the URL)".to_owned())
        } else if error.is_io_error() {
            What::Unreachable(error.to_string())
        } else {
            What::Refused(error.to_string())
        };
        self.failure(what)
    }

    fn reason(&self) -> Option<Unavailable> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Marks Redis away (logging it the first time) and wakes the probe.
    fn mark_down(&self, failure: &Unavailable) {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure.clone());
        if !self.down.swap(true, Ordering::Relaxed) {
            if !self.starting.load(Ordering::Relaxed) {
                tracing::warn!(
                    "{failure}; meanwhile {}; reconnecting in the background",
                    self.meanwhile
                );
            }
            self.went_down.notify_one();
        }
    }

    fn mark_up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(url = %self.url, "Redis is reachable again");
        }
    }

    /// One `PING`, whether or not Redis is known to be away; marks it up when it answers.
    pub(crate) async fn ping(&self) -> Result<(), Unavailable> {
        let pong = self
            .attempt(self.timeout, async |c| {
                redis::cmd("PING").query_async::<String>(c).await
            })
            .await;
        if pong.is_ok() {
            self.mark_up();
        }
        pong.map(|_| ())
    }

    /// The ping at start: when Redis is away, one warning that says the gateway starts
    /// anyway (the probe keeps reconnecting).
    pub(crate) async fn first_ping(&self) {
        self.starting.store(true, Ordering::Relaxed);
        let pong = self.ping().await;
        self.starting.store(false, Ordering::Relaxed);
        if let Err(error) = pong {
            tracing::warn!(
                "{error} at start; Portico starts anyway and keeps reconnecting in the \
                 background; meanwhile {}",
                self.meanwhile
            );
        }
    }

    /// Probes Redis while it is away, until `stop`.
    pub(crate) async fn probe(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.went_down.notified() => {}
            }
            let mut hung = 0;
            while self.is_down() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(PROBE_EVERY) => {}
                }
                match self.ping().await {
                    Ok(()) => break,
                    Err(Unavailable {
                        what: What::Slow(_),
                        ..
                    }) => {
                        hung += 1;
                        if hung >= HUNG_PROBES {
                            hung = 0;
                            self.replace_manager();
                        }
                    }
                    Err(_) => hung = 0,
                }
            }
        }
    }

    fn replace_manager(&self) {
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(manager) => {
                tracing::debug!(url = %self.url, "Redis does not answer; opening a new connection");
                self.manager.store(Arc::new(manager));
            }
            Err(error) => tracing::debug!(%error, "cannot open a new Redis connection"),
        }
    }
}

/// A Lua script, called by its SHA-1 (`EVALSHA`), sent whole (`EVAL`) when Redis does not
/// know it yet (`NOSCRIPT`: a new or restarted server), which also makes Redis keep it.
#[derive(Debug)]
pub(crate) struct Script {
    body: String,
    sha: String,
}

impl Script {
    pub(crate) fn new(body: impl Into<String>) -> Script {
        let body = body.into();
        Script {
            sha: redis::Script::new(&body).get_hash().to_owned(),
            body,
        }
    }

    /// The `EVALSHA` call with these keys and arguments; [`Script::run`] sends it.
    pub(crate) fn call(&self) -> ScriptCall<'_> {
        ScriptCall {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One call of a [`Script`]: its keys and arguments.
#[derive(Debug)]
pub(crate) struct ScriptCall<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl ScriptCall<'_> {
    pub(crate) fn key(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.keys.push(key.into());
        self
    }

    pub(crate) fn arg(&mut self, arg: impl ToString) -> &mut Self {
        self.args.push(arg.to_string().into_bytes());
        self
    }

    fn command(&self, verb: &str, head: &str) -> redis::Cmd {
        let mut cmd = redis::cmd(verb);
        cmd.arg(head)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }

    /// Runs the script on `conn` (one call within its timeout).
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        conn: &Conn,
        timeout: Duration,
    ) -> Result<T, Unavailable> {
        let by_sha = self.command("EVALSHA", &self.script.sha);
        conn.run_within(timeout, async |c| match by_sha.query_async::<T>(c).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.command("EVAL", &self.script.body).query_async(c).await
            }
            other => other,
        })
        .await
    }
}
