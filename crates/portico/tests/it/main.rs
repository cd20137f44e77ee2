//! End-to-end tests: the real `portico` binary against mock upstreams on loopback.

mod cli;
mod openclaw;
mod persistence;
mod proxy;
mod sdk;
mod shutdown;
mod streaming;
mod support;
