//! The engines every store test runs on: a private in-memory SQLite database, and a fresh
//! PostgreSQL database of the test's own (from `portico_testkit`, which needs
//! `PORTICO_TEST_POSTGRES_URL`: `eval "$(scripts/services.sh start)"`).
//!
//! A test is an ordinary `async fn name(store: SqlStore)`, with `on_both_engines!(name);`
//! beside it: that makes the tests `name::sqlite` and `name::postgres`, each calling it with
//! a new, empty store. Tests that look at SQLite's files stay plain `#[tokio::test]`s.

use portico_testkit::TestPostgres;

use super::SqlStore;
use crate::MasterKey;

/// A new in-memory SQLite store.
pub(super) async fn sqlite_store() -> SqlStore {
    SqlStore::open_in_memory(MasterKey::generate())
        .await
        .unwrap()
}

/// A new store on the empty database `db` (which must outlive it).
pub(super) async fn postgres_store(db: &TestPostgres) -> SqlStore {
    let store = SqlStore::connect(db.url(), MasterKey::generate())
        .await
        .unwrap();
    assert_eq!(store.backend_name(), "postgres");
    store
}

/// Generates `$test::sqlite` and `$test::postgres`, each running the async fn `$test` on a
/// new store of that engine.
macro_rules! on_both_engines {
    ($test:ident) => {
        mod $test {
            #[tokio::test]
            async fn sqlite() {
                super::$test($crate::sql::test_support::sqlite_store().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                // Dropped (and the database with it) when the test ends.
                let db = portico_testkit::TestPostgres::database().await;
                super::$test($crate::sql::test_support::postgres_store(&db).await).await;
            }
        }
    };
}

pub(super) use on_both_engines;
