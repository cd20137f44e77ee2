//! The gateway's own protective limits (connections, streams, request heads and shapes, slow
//! readers), and where their hits are reported: the metrics count them by limit
//! (`portico_server_limit_hits_total`), because several of them (a refused connection, a
//! request head refused before routing, a write stall) leave no request record.

/// One protective limit, named as its flag (without `--`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerLimit {
    /// `--max-connections`: a connection refused with a 503 before its request was read.
    MaxConnections,
    /// `--max-streams`: a streamed request refused with a 503.
    MaxStreams,
    /// `--max-header-count`: a request with too many headers (431).
    MaxHeaderCount,
    /// `--max-header-bytes`: a request whose headers are too large (431).
    MaxHeaderBytes,
    /// `--max-json-depth`: a body nested too deep (400).
    MaxJsonDepth,
    /// `--max-messages`: too many `messages` (or Responses `input` items) (400).
    MaxMessages,
    /// `--max-tools`: too many `tools` (400).
    MaxTools,
    /// `--write-timeout-secs`: a connection closed because its client stopped reading.
    WriteTimeout,
}

impl ServerLimit {
    /// Every limit, in the order the docs list them.
    pub const ALL: [ServerLimit; 8] = [
        ServerLimit::MaxConnections,
        ServerLimit::MaxStreams,
        ServerLimit::MaxHeaderCount,
        ServerLimit::MaxHeaderBytes,
        ServerLimit::MaxJsonDepth,
        ServerLimit::MaxMessages,
        ServerLimit::MaxTools,
        ServerLimit::WriteTimeout,
    ];

    /// The metric label: the flag's name with `_` for `-`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerLimit::MaxConnections => "max_connections",
            ServerLimit::MaxStreams => "max_streams",
            ServerLimit::MaxHeaderCount => "max_header_count",
            ServerLimit::MaxHeaderBytes => "max_header_bytes",
            ServerLimit::MaxJsonDepth => "max_json_depth",
            ServerLimit::MaxMessages => "max_messages",
            ServerLimit::MaxTools => "max_tools",
            ServerLimit::WriteTimeout => "write_timeout",
        }
    }
}

/// Where the hits of the [`ServerLimit`]s, and the count of open connections, are reported.
/// Called on the request path: an implementation does an atomic addition, nothing more.
pub trait ServerLimitObserver: Send + Sync {
    /// `limit` refused a connection or request, or closed a connection.
    fn hit(&self, limit: ServerLimit);
    /// The listener now holds `open` client connections.
    fn open_connections(&self, open: usize);
}
