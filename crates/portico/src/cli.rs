//! The command line (clap). Every flag also reads a `PORTICO_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::apply_cmd::ApplyArgs;
pub use crate::catalog_cmd::{ConfigsArgs, GuardrailsArgs, KeysArgs, ModelsArgs, ProvidersArgs};
pub use crate::gateway_cmd::GatewayArgs;

/// Portico: one fast binary between AI applications and LLM providers.
#[derive(Debug, clap::Parser)]
#[command(name = "portico", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the gateway, its admin API and dashboard: the catalog in embedded SQLite, or shared
    /// by many processes on PostgreSQL and Redis (`--database-url`, `--redis-url`).
    Serve(ServeArgs),
    /// Run a data plane only, fed by a control plane (`portico serve`): hybrid mode.
    Gateway(GatewayArgs),
    /// Apply a catalog file to a running instance: print the plan, then apply it.
    Apply(ApplyArgs),
    /// Print the request log of a running instance (through its admin API).
    Logs(LogsArgs),
    /// Manage the routing configs of a running instance (through its admin API).
    Configs(ConfigsArgs),
    /// Manage the named guardrails of a running instance (through its admin API).
    Guardrails(GuardrailsArgs),
    /// Manage the gateway keys of a running instance.
    Keys(KeysArgs),
    /// Manage the providers of a running instance.
    Providers(ProvidersArgs),
    /// List the models of a running instance, with prices.
    Models(ModelsArgs),
    /// Manage the master key that encrypts provider secrets at rest (offline: stop every
    /// process using the database first).
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
}

/// `portico master-key ...`
#[derive(Debug, clap::Subcommand)]
pub enum MasterKeyCommand {
    /// Re-encrypt every stored provider secret under a new master key, in one transaction.
    /// The current key comes from PORTICO_MASTER_KEY or DATA_DIR/master.key. A key file is
    /// replaced by the new key (0600); a key from the environment is not stored: the new one
    /// is printed once, to be put in PORTICO_MASTER_KEY of every process.
    Rotate(MasterKeyRotateArgs),
}

/// `portico master-key rotate`
#[derive(Debug, clap::Args)]
pub struct MasterKeyRotateArgs {
    /// Directory of the database and the master key [default: ./.portico].
    #[arg(long, env = "PORTICO_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// The shared database instead of the data dir's SQLite file (needs PORTICO_MASTER_KEY).
    #[arg(
        long,
        env = "PORTICO_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) database_url: Option<String>,

    /// The new key (32 bytes as standard base64 or 64 hex digits) [default: a new random
    /// key]. Prefer PORTICO_NEW_MASTER_KEY: a command line is visible to other users.
    #[arg(
        long,
        env = "PORTICO_NEW_MASTER_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub(crate) new_key: Option<String>,
}

/// How the log lines on stderr are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What a shared-state concern does while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailMode {
    /// Admit the request, unchecked.
    Open,
    /// Refuse the request with a 503 that says what failed.
    Closed,
}

/// `portico serve`
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Catalog file (YAML; `${VAR}` is replaced from the environment).
    #[arg(long, short = 'c', env = "PORTICO_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Shared database for scale-out (`postgres://user:pass@host/db`): the catalog, keys,
    /// configs, spend and request log live there instead of the data dir's SQLite files.
    /// Every process sharing it needs the same `PORTICO_MASTER_KEY`.
    #[arg(
        long,
        env = "PORTICO_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) database_url: Option<String>,

    /// Shared Redis for scale-out (`redis://host:6379`, `rediss://`, `redis+unix:///path`):
    /// rate-limit windows, budget reservations, the response cache, circuit breakers and the
    /// change signal between processes.
    #[arg(
        long,
        env = "PORTICO_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) redis_url: Option<String>,

    /// With Redis unreachable, whether rate limits admit requests (`open`) or refuse them
    /// with a 503 (`closed`).
    #[arg(long, env = "PORTICO_REDIS_LIMITS_FAIL", value_enum, default_value_t = FailMode::Open)]
    pub(crate) redis_limits_fail: FailMode,

    /// With Redis unreachable, whether budgets admit requests (`open`) or refuse them with a
    /// 503 (`closed`).
    #[arg(long, env = "PORTICO_REDIS_BUDGETS_FAIL", value_enum, default_value_t = FailMode::Closed)]
    pub(crate) redis_budgets_fail: FailMode,

    /// Longest wait for one Redis call on the request path, in milliseconds; past it the
    /// call counts as failed (see the two `--redis-*-fail` modes).
    #[arg(long, env = "PORTICO_REDIS_TIMEOUT_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) redis_timeout_ms: u64,

    /// With a shared database, how often this process checks whether another one changed
    /// the catalog, in milliseconds (Redis's change signal, when set, is immediate; this is
    /// the safety net).
    #[arg(long, env = "PORTICO_RELOAD_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..))]
    pub(crate) reload_poll_ms: u64,

    /// Most `metadata.*` filters one admin log search may combine (each is a subquery).
    #[arg(long, env = "PORTICO_LOG_SEARCH_MAX_METADATA_FILTERS", default_value_t = portico_logs::MAX_METADATA_FILTERS as u16, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub(crate) log_search_max_metadata_filters: u16,

    /// Days the request log keeps a request (0 keeps them forever).
    #[arg(long, env = "PORTICO_LOG_RETENTION_DAYS", default_value_t = portico_logs::DEFAULT_RETENTION_DAYS)]
    pub(crate) log_retention_days: u32,

    /// Most requests the request log keeps (the oldest go first) [default: no limit].
    #[arg(long, env = "PORTICO_LOG_MAX_ROWS", value_name = "N")]
    pub(crate) log_max_rows: Option<u64>,

    /// How long a write to `logs.db` waits for a lock another process holds, in
    /// milliseconds; then the batch goes to the spill file and is replayed later. At start,
    /// a lock held longer than this stops the start.
    #[arg(long, env = "PORTICO_LOG_BUSY_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub(crate) log_busy_timeout_ms: u64,

    /// The flags `portico serve` shares with `portico gateway`.
    #[command(flatten)]
    pub(crate) common: DataPlaneArgs,
}

/// The data plane's flags, shared by `portico serve` and `portico gateway`.
#[derive(Debug, clap::Args)]
pub struct DataPlaneArgs {
    /// Address to listen on [default: 127.0.0.1:8787, or `listen:` in the catalog file].
    #[arg(long, env = "PORTICO_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,

    /// Directory for the database and the master key [default: ./.portico, or `data_dir:`].
    #[arg(long, env = "PORTICO_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Largest accepted request body, in bytes; a larger `Content-Length` is refused (413)
    /// before the body is read.
    #[arg(long, env = "PORTICO_MAX_BODY_BYTES", default_value_t = portico_server::DEFAULT_MAX_BODY_BYTES)]
    pub(crate) max_body_bytes: usize,

    /// Requests in flight (streams until they end) above which a new data-plane request is
    /// refused at once with 503 `overloaded` and `Retry-After: 1`; health checks, metrics and
    /// the admin API are never refused.
    #[arg(long, env = "PORTICO_MAX_IN_FLIGHT", default_value_t = portico_server::DEFAULT_MAX_IN_FLIGHT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_in_flight: usize,

    /// Time a client has to send a complete request head (also the longest a keep-alive
    /// connection stays idle), in seconds; the connection is closed after it.
    #[arg(long, env = "PORTICO_HEADER_TIMEOUT_SECS", default_value_t = portico_server::DEFAULT_HEADER_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) header_timeout_secs: u64,

    /// Longest wait for the next piece of a request body, in seconds; a body that stalls
    /// longer is answered 408.
    #[arg(long, env = "PORTICO_BODY_TIMEOUT_SECS", default_value_t = portico_server::DEFAULT_BODY_STALL_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_timeout_secs: u64,

    /// Refused gateway keys (401 `invalid_api_key`) one client address (an IPv6 /64) may
    /// present within a minute; past it every
    /// request from that address is answered 429 with `Retry-After` until the minute ends.
    /// The address is the TCP peer's: behind a reverse proxy, raise it or set 0 (off).
    #[arg(long, env = "PORTICO_AUTH_FAILURE_LIMIT", value_name = "N", default_value_t = portico_server::DEFAULT_AUTH_FAILURE_LIMIT)]
    pub(crate) auth_failure_limit: u32,

    /// Hosts the gateway may connect to for providers' base URLs, guardrail webhooks and
    /// other URLs set in the catalog or the admin API: a comma-separated list of host names
    /// (`api.openai.com`), suffixes (`.corp.example`), networks (`10.0.0.0/8`) and addresses.
    /// Checked when a URL is set and on every resolved address when connecting. Unset: every
    /// host but the cloud metadata services, which stay refused unless listed exactly.
    #[arg(long, env = "PORTICO_UPSTREAM_ALLOWLIST", value_name = "LIST")]
    pub(crate) upstream_allowlist: Option<String>,
    /// Most headers a request may carry; a request with more is answered 431 (hyper's own
    /// bare 431 stays above it, at 100 or half again this limit).
    #[arg(long, env = "PORTICO_MAX_HEADER_COUNT", default_value_t = portico_server::DEFAULT_MAX_HEADER_COUNT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub(crate) max_header_count: usize,

    /// Most bytes of header names and values one request may carry; more is answered 431.
    #[arg(long, env = "PORTICO_MAX_HEADER_BYTES", default_value_t = portico_server::DEFAULT_MAX_HEADER_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=16 * 1024 * 1024))]
    pub(crate) max_header_bytes: usize,

    /// Deepest nesting of arrays and objects in a JSON request body (the top-level object
    /// counts 1); a deeper body is answered 400 `json_too_deep`.
    #[arg(long, env = "PORTICO_MAX_JSON_DEPTH", default_value_t = portico_engine::request_limits::DEFAULT_MAX_JSON_DEPTH, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=100_000))]
    pub(crate) max_json_depth: usize,

    /// Most `messages` (chat completions, Anthropic Messages) or `input` items (Responses)
    /// of one request; more is answered 400 `array_above_max_length`.
    #[arg(long, env = "PORTICO_MAX_MESSAGES", default_value_t = portico_engine::request_limits::DEFAULT_MAX_MESSAGES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_messages: usize,

    /// Most `tools` of one request; more is answered 400 `array_above_max_length`.
    #[arg(long, env = "PORTICO_MAX_TOOLS", default_value_t = portico_engine::request_limits::DEFAULT_MAX_TOOLS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_tools: usize,

    /// Most client connections open at once; a connection past it is answered 503
    /// `overloaded` with `Retry-After: 1` and closed, its request unread.
    #[arg(long, env = "PORTICO_MAX_CONNECTIONS", default_value_t = portico_server::DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_connections: usize,

    /// Most streamed answers open at once; a streamed request past it is answered 503
    /// `overloaded` with `Retry-After: 1` before any upstream is called.
    #[arg(long, env = "PORTICO_MAX_STREAMS", default_value_t = portico_engine::request_limits::DEFAULT_MAX_STREAMS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_streams: usize,

    /// Longest a write to a client may wait on a client that reads nothing, in seconds; then
    /// its connection is closed (a stream's record ends as a client disconnect).
    #[arg(long, env = "PORTICO_WRITE_TIMEOUT_SECS", default_value_t = portico_server::DEFAULT_WRITE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) write_timeout_secs: u64,

    /// Time allowed to connect to an upstream, in milliseconds.
    #[arg(
        long,
        env = "PORTICO_UPSTREAM_CONNECT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub(crate) upstream_connect_timeout_ms: u64,

    /// Time allowed between two reads from an upstream, in milliseconds.
    #[arg(
        long,
        env = "PORTICO_UPSTREAM_READ_TIMEOUT_MS",
        default_value_t = 600_000
    )]
    pub(crate) upstream_read_timeout_ms: u64,

    /// Largest upstream answer (a whole body, or one event of a stream), in bytes; a larger
    /// one is cut and answered 502.
    #[arg(
        long,
        env = "PORTICO_MAX_UPSTREAM_BODY_BYTES",
        default_value_t = portico_providers::http::DEFAULT_MAX_UPSTREAM_BODY_BYTES
    )]
    pub(crate) max_upstream_body_bytes: usize,

    /// Most targets a routing config may hold, nested ones included; a larger config is a 400.
    #[arg(long, env = "PORTICO_MAX_CONFIG_TARGETS", default_value_t = portico_routing::MAX_TARGETS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) max_config_targets: u16,

    /// Most upstream attempts one request makes, retries and fallbacks together; then the
    /// last error is the answer.
    #[arg(long, env = "PORTICO_MAX_UPSTREAM_ATTEMPTS", default_value_t = portico_routing::MAX_ATTEMPTS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) max_upstream_attempts: u16,

    /// On SIGTERM or Ctrl-C, how long in-flight requests may take to finish, in seconds.
    #[arg(long, env = "PORTICO_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub(crate) shutdown_timeout_secs: u64,

    /// Weigh `loadbalance` targets by their observed latency as well as their static weights
    /// (a target twice as slow as its fastest sibling gets half its share).
    #[arg(long, env = "PORTICO_LATENCY_AWARE_LOADBALANCE")]
    pub(crate) latency_aware_loadbalance: bool,

    /// The response cache's bound in memory, in bytes: past it, the least recently used
    /// answers are evicted (docs/cache.md).
    #[arg(long, env = "PORTICO_CACHE_MAX_BYTES", default_value_t = portico_cache::memory::DEFAULT_MAX_BYTES as u64, value_parser = clap::value_parser!(u64).range(1024..))]
    pub(crate) cache_max_bytes: u64,

    /// The embedding model of the semantic cache (`cache.mode: semantic`), as `@slug/model`
    /// of the catalog; without it a semantic config caches as a simple one (docs/cache.md).
    #[arg(long, env = "PORTICO_CACHE_EMBEDDING_MODEL")]
    pub(crate) cache_embedding_model: Option<String>,

    /// The cosine similarity a semantic cache hit needs, from 0 to 1.
    #[arg(long, env = "PORTICO_CACHE_SEMANTIC_THRESHOLD", default_value_t = portico_engine::policies::cache::DEFAULT_THRESHOLD, value_parser = parse_threshold)]
    pub(crate) cache_semantic_threshold: f32,

    /// The most questions the semantic cache's index keeps (oldest dropped first).
    #[arg(long, env = "PORTICO_CACHE_SEMANTIC_MAX_ENTRIES", default_value_t = portico_cache::vector::DEFAULT_MAX_ENTRIES)]
    pub(crate) cache_semantic_max_entries: usize,

    /// Log line format on stderr (the level is set with RUST_LOG, default `info`).
    #[arg(long, env = "PORTICO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Largest request or response payload the request log stores, in bytes (longer ones
    /// are cut and marked as truncated).
    #[arg(long, env = "PORTICO_LOG_MAX_PAYLOAD_BYTES", default_value_t = portico_logs::DEFAULT_MAX_PAYLOAD_BYTES)]
    pub(crate) log_max_payload_bytes: usize,

    /// Requests the request log's write queue holds before it spills to
    /// `logs-spill.jsonl` in the data directory.
    #[arg(long, env = "PORTICO_LOG_QUEUE_CAPACITY", default_value_t = 10_000)]
    pub(crate) log_queue_capacity: usize,

    /// Bytes the request log's write queue holds (records with their payloads) before it
    /// spills to `logs-spill.jsonl`; bounds the gateway's memory under overload.
    #[arg(long, env = "PORTICO_LOG_QUEUE_BYTES", default_value_t = portico_logs::DEFAULT_QUEUE_BYTES)]
    pub(crate) log_queue_bytes: usize,

    /// Bytes of spilled records the request log holds in memory while the spill file
    /// cannot be written (a full disk); they are written once it can. Beyond it, records
    /// are lost (counted in `portico_log_records_lost_total`).
    #[arg(long, env = "PORTICO_LOG_SPILL_MEMORY_BYTES", default_value_t = portico_logs::DEFAULT_SPILL_MEMORY_BYTES)]
    pub(crate) log_spill_memory_bytes: usize,

    /// Threads that handle requests [default: the CPUs the process may use]. With 1, every
    /// request runs on one thread under tokio's current-thread scheduler, the fastest setting
    /// on one core.
    #[arg(
        long,
        env = "PORTICO_WORKER_THREADS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub(crate) worker_threads: Option<u16>,

    /// Bearer token that `GET /metrics` requires [default: none, /metrics is open].
    #[arg(
        long,
        env = "PORTICO_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) metrics_token: Option<String>,
}

/// `portico logs`
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only requests with this trace id (`x-portkey-trace-id`).
    #[arg(long, value_name = "ID")]
    pub(crate) trace_id: Option<String>,

    /// Keep printing new requests as they are logged.
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,

    /// How many of the newest requests to print first (1-500).
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub(crate) limit: u32,

    /// One JSON object per line instead of a readable line.
    #[arg(long)]
    pub(crate) json: bool,

    /// Where the admin API is, and its key.
    #[command(flatten)]
    pub(crate) admin: crate::admin_client::AdminArgs,
}

/// A similarity threshold: a number from 0 to 1.
fn parse_threshold(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!(
            "`{text}` is not a similarity from 0 to 1, such as 0.95"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
