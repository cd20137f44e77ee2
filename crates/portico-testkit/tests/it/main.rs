//! Integration tests of the testkit itself: the mock upstream over real HTTP, and the
//! process runner against a shell stand-in for the `portico` binary.

mod process;
mod upstream;

use std::time::Duration;

/// Upper bound for anything a test waits for; never used to synchronise.
const LIMIT: Duration = Duration::from_secs(10);

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here fails the test"
)]
fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(LIMIT).build().unwrap()
}
