//! The one pooled HTTP client every HTTP adapter shares.
//!
//! One client means one connection pool: keep-alive connections to each upstream are reused
//! across requests, HTTP/2 is negotiated by ALPN where the upstream offers it, and TLS is
//! rustls (no OpenSSL on the build or at run time).

use std::time::Duration;

/// Timeouts and pool settings of the upstream client.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// Time allowed to open a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of an answer. Applies per read, not to the whole answer,
    /// so a long stream that keeps sending is never cut, while a stalled upstream is.
    pub read_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            // Reasoning models can think for minutes before the first byte.
            read_timeout: Duration::from_secs(600),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}

/// Builds the shared upstream client.
pub fn build_client(options: HttpOptions) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .pool_idle_timeout(options.pool_idle_timeout)
        .pool_max_idle_per_host(options.pool_max_idle_per_host)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(60))
        // Upstream redirects would re-send credentials to another host: refuse them.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")))
        .build()
}
