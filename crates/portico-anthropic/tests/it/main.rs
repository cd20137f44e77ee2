//! Translation fixtures (tests/fixtures/) through the adapter and the inbound, as insta
//! snapshots (ids and times redacted), plus stream tests that split the bytes everywhere.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a panic is how a test reports failure"
)]

mod inbound;
mod request;
mod response;
mod stream;
mod support;
