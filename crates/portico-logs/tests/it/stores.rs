//! The storage under a pipeline test, SQLite or PostgreSQL, and [`on_both_stores!`], which
//! runs one test body on each: `<test>::sqlite` and `<test>::postgres` (a fresh database
//! from `portico-testkit`; it needs `PORTICO_TEST_POSTGRES_URL`, which
//! `eval "$(scripts/services.sh start)"` sets).

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;

use portico_logs::{LogStore, PgLogStore, SqliteLogStore};

/// Runs each named `async fn(TestDb)` on SQLite and on PostgreSQL.
macro_rules! on_both_stores {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test($crate::stores::TestDb::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test($crate::stores::TestDb::postgres().await).await;
            }
        }
    )+};
}
pub(crate) use on_both_stores;

/// A database of the test's own, and a directory for the spill file (for SQLite, the
/// database's file is in it too). Removed when dropped.
pub(crate) struct TestDb {
    dir: tempfile::TempDir,
    postgres: Option<portico_testkit::TestPostgres>,
}

impl TestDb {
    pub(crate) fn sqlite() -> TestDb {
        TestDb {
            dir: tempfile::tempdir().unwrap(),
            postgres: None,
        }
    }

    pub(crate) async fn postgres() -> TestDb {
        TestDb {
            dir: tempfile::tempdir().unwrap(),
            postgres: Some(portico_testkit::TestPostgres::database().await),
        }
    }

    /// The directory for the spill file.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A store on the database: each call is another process, or the next start.
    pub(crate) async fn open(&self) -> Arc<dyn LogStore> {
        match &self.postgres {
            None => Arc::new(
                SqliteLogStore::open(&self.dir.path().join("logs.db"))
                    .await
                    .unwrap(),
            ),
            Some(db) => Arc::new(PgLogStore::connect(db.url()).await.unwrap()),
        }
    }

    /// How many payload rows are stored (an entry without payloads has none).
    pub(crate) async fn payload_rows(&self) -> i64 {
        const COUNT: &str = "SELECT count(*) FROM log_payloads";
        match &self.postgres {
            None => {
                let url = format!("sqlite://{}", self.dir.path().join("logs.db").display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query_scalar(COUNT).fetch_one(&pool).await.unwrap()
            }
            Some(db) => {
                let options = sqlx::postgres::PgConnectOptions::from_str(db.url())
                    .unwrap()
                    .options([("search_path", "portico_logs")]);
                let pool = sqlx::PgPool::connect_with(options).await.unwrap();
                sqlx::query_scalar(COUNT).fetch_one(&pool).await.unwrap()
            }
        }
    }
}
