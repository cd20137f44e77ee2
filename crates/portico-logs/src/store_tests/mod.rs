//! The store tests, run against both stores: each case is one `async fn(TestStore)`, and
//! [`on_both_stores!`] makes it two tests, `<case>::sqlite` (a file in a temporary
//! directory) and `<case>::postgres` (a fresh database from `portico-testkit`, which needs
//! `PORTICO_TEST_POSTGRES_URL`: `eval "$(scripts/services.sh start)"`).
//!
//! Cases talk to the store through `dyn LogStore` only, so both are held to the same
//! answers; what a case needs of the storage itself (how many payload rows are left) goes
//! through [`TestStore`]'s methods, which know each schema.

mod cases;

use std::str::FromStr as _;
use std::sync::Arc;

use serde_json::json;

use crate::{LogEntry, LogFilter, LogQuery, LogStore, PgLogStore, SqliteLogStore};

/// Runs each named `async fn(TestStore)` on SQLite and on PostgreSQL.
macro_rules! on_both_stores {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case($crate::store_tests::TestStore::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$case($crate::store_tests::TestStore::postgres().await).await;
            }
        }
    )+};
}
pub(crate) use on_both_stores;

/// A store on storage of its own, removed when this is dropped.
pub(crate) struct TestStore {
    store: Arc<dyn LogStore>,
    storage: Storage,
}

enum Storage {
    Sqlite(tempfile::TempDir),
    Postgres(portico_testkit::TestPostgres),
}

impl std::ops::Deref for TestStore {
    type Target = dyn LogStore;
    fn deref(&self) -> &(dyn LogStore + 'static) {
        &*self.store
    }
}

impl TestStore {
    pub(crate) async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteLogStore::open(&dir.path().join("logs.db"))
            .await
            .unwrap();
        TestStore {
            store: Arc::new(store),
            storage: Storage::Sqlite(dir),
        }
    }

    pub(crate) async fn postgres() -> TestStore {
        let db = portico_testkit::TestPostgres::database().await;
        let store = PgLogStore::connect(db.url()).await.unwrap();
        TestStore {
            store: Arc::new(store),
            storage: Storage::Postgres(db),
        }
    }

    /// Another store on the same storage: a second process, or the next start.
    pub(crate) async fn open_again(&self) -> Arc<dyn LogStore> {
        match &self.storage {
            Storage::Sqlite(dir) => Arc::new(
                SqliteLogStore::open(&dir.path().join("logs.db"))
                    .await
                    .unwrap(),
            ),
            Storage::Postgres(db) => Arc::new(PgLogStore::connect(db.url()).await.unwrap()),
        }
    }

    /// What is stored beside the entries: (metadata pairs, payload rows). SQLite keeps the
    /// pairs in a side table; PostgreSQL in the entry's JSONB, counted key by key.
    pub(crate) async fn side_rows(&self) -> (i64, i64) {
        match &self.storage {
            Storage::Sqlite(dir) => {
                let url = format!("sqlite://{}", dir.path().join("logs.db").display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                let rows = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM log_metadata), (SELECT count(*) FROM log_payloads)",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                pool.close().await;
                rows
            }
            Storage::Postgres(db) => {
                let options = sqlx::postgres::PgConnectOptions::from_str(db.url())
                    .unwrap()
                    .options([("search_path", "portico_logs")]);
                let pool = sqlx::PgPool::connect_with(options).await.unwrap();
                let rows = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM logs, jsonb_object_keys(metadata)), \
                     (SELECT count(*) FROM log_payloads)",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                pool.close().await;
                rows
            }
        }
    }

    /// The store with `entries` in it, all new.
    pub(crate) async fn with(self, entries: Vec<LogEntry>) -> TestStore {
        let n = entries.len() as u64;
        assert_eq!(self.insert(entries.into()).await.unwrap(), n);
        self
    }
}

pub(crate) const HOUR: i64 = 3_600_000;
/// 2026-11-25T00:00:00Z
pub(crate) const DAY0: i64 = 1_795_564_800_000;

pub(crate) fn entry(id: &str, at: i64) -> LogEntry {
    LogEntry {
        id: id.into(),
        created_at_ms: at,
        trace_id: format!("trace-{id}"),
        metadata: None,
        key_name: Some("service".into()),
        gateway: None,
        user: None,
        provider: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        endpoint: "chat.completions".into(),
        status: 200,
        stream: false,
        outcome: "completed".into(),
        latency_ms: 100,
        upstream_latency_ms: Some(90),
        ttft_ms: None,
        prompt_tokens: Some(10),
        completion_tokens: Some(5),
        cached_tokens: Some(0),
        cache_write_tokens: Some(0),
        cost_usd: Some(0.001),
        cache_status: None,
        cache_saved_usd: None,
        cache_similarity: None,
        retry_count: 0,
        target: None,
        config_id: None,
        error_code: None,
        error: None,
        attempts: Vec::new(),
        guardrails: None,
        request: None,
        response: None,
    }
}

pub(crate) fn meta(pairs: &[(&str, &str)]) -> Option<serde_json::Map<String, serde_json::Value>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect(),
    )
}

/// The ids of the entries `filter` lists, newest first (one page of 500).
pub(crate) async fn ids(
    store: &impl std::ops::Deref<Target = dyn LogStore>,
    filter: LogFilter,
) -> Vec<String> {
    let page = store
        .search(&LogQuery {
            filter,
            limit: 500,
            cursor: None,
        })
        .await
        .unwrap();
    page.data.into_iter().map(|e| e.id).collect()
}
