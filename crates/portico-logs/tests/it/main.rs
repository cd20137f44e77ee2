//! The request log pipeline against real storage, a SQLite file and a PostgreSQL database
//! (each test runs on both): nothing lost under load, the spill file replayed across a
//! restart, the payload policy applied on the way in.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

mod bench;
mod pipeline;
mod stores;
