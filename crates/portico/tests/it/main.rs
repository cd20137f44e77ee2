//! End-to-end tests: the real `portico` binary against mock upstreams on loopback.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "test support code: a panic is how a test reports failure, and tests may build their own HTTP clients"
)]

mod admin_catalog;
mod admission;
mod amplification;
mod anthropic;
mod apply;
mod azure;
mod bedrock;
mod breaker;
mod browser;
mod budgets;
mod cache;
mod cli;
mod cli_catalog;
mod client_limits;
mod cloud_credentials;
mod cost;
mod dashboard;
mod dashboard_budgets;
mod dashboard_policies;
mod endpoints;
mod faults;
mod gemini;
mod guardrails;
mod hybrid;
mod in_process;
mod jwt;
mod key_lifecycle;
mod limits_persistence;
mod log_faults;
mod log_search;
mod master_key;
mod matrix;
mod messages;
mod metrics;
mod openclaw;
mod otel;
#[cfg(unix)]
mod permissions;
mod persistence;
mod portkey_sdk;
mod proxy;
mod rate_limits;
mod request_log;
mod responses;
mod routing;
mod scale_out;
mod sdk;
mod secrets;
mod server_limits;
mod shutdown;
mod ssrf;
mod streaming;
mod support;
mod upstream_limits;
mod web_security;
