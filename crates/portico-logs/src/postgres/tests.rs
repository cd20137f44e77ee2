//! What only the PostgreSQL store has: many processes on one database, a schema of its own
//! beside the catalog's, and the plans its indexes are for. The behaviour both stores share
//! is tested on both in `store_tests`.

use std::str::FromStr as _;
use std::sync::Arc;

use portico_testkit::TestPostgres;
use sqlx::postgres::{PgConnectOptions, PgPool};

use super::*;
use crate::store_tests::{DAY0, entry, meta};
use crate::{LogFilter, LogQuery};

/// A plain connection to the test's database, on the log's schema.
async fn raw(db: &TestPostgres) -> PgPool {
    let options = PgConnectOptions::from_str(db.url())
        .unwrap()
        .options([("search_path", SCHEMA)]);
    PgPool::connect_with(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_starting_together_on_an_empty_database_all_connect() {
    let db = TestPostgres::database().await;
    let url: Arc<str> = db.url().into();
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = Arc::clone(&url);
        starting.spawn(async move { PgLogStore::connect(&url).await });
    }
    let mut stores = Vec::new();
    while let Some(done) = starting.join_next().await {
        stores.push(done.unwrap().unwrap());
    }
    // Each writes; every one lists what all wrote.
    for (i, store) in stores.iter().enumerate() {
        let e = entry(&format!("p{i}"), DAY0 + i as i64);
        assert_eq!(store.insert(vec![e].into()).await.unwrap(), 1);
    }
    for store in &stores {
        assert_eq!(store.count().await.unwrap(), 8);
        let page = store.search(&LogQuery::default()).await.unwrap();
        assert_eq!(page.data.first().map(|e| e.id.as_str()), Some("p7"));
    }
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&raw(&db).await)
        .await
        .unwrap();
    assert_eq!(migrations, 1, "each migration applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_overlapping_deliveries_store_each_entry_once() {
    let db = TestPostgres::database().await;
    let a = PgLogStore::connect(db.url()).await.unwrap();
    let b = PgLogStore::connect(db.url()).await.unwrap();
    let batch: Vec<LogEntry> = (0..2000)
        .map(|i| entry(&format!("o{i:04}"), DAY0 + i))
        .collect();
    // The same entries, given in opposite orders, written at the same time by two processes.
    let forward: Arc<[LogEntry]> = batch.clone().into();
    let backward: Arc<[LogEntry]> = batch.into_iter().rev().collect();
    let (x, y) = tokio::join!(a.insert(forward), b.insert(backward));
    assert_eq!(x.unwrap() + y.unwrap(), 2000, "each entry counted new once");
    assert_eq!(a.count().await.unwrap(), 2000);
}

#[tokio::test]
async fn the_log_keeps_its_own_schema_and_migration_history_beside_the_catalogs() {
    let db = TestPostgres::database().await;
    // A catalog migrated first, with its own history in `public` numbered from 1.
    let public = PgPool::connect(db.url()).await.unwrap();
    sqlx::query(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
         checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .execute(&public)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
         execution_time) VALUES (1, 'catalog', TRUE, '\\x00', 0)",
    )
    .execute(&public)
    .await
    .unwrap();
    sqlx::query("CREATE TABLE logs (unrelated INTEGER)")
        .execute(&public)
        .await
        .unwrap();
    let store = PgLogStore::connect(db.url()).await.unwrap();
    assert_eq!(
        store.insert(vec![entry("a", DAY0)].into()).await.unwrap(),
        1
    );
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema IN ('public', 'portico_logs') ORDER BY 1, 2",
    )
    .fetch_all(&public)
    .await
    .unwrap();
    let tables: Vec<(&str, &str)> = tables
        .iter()
        .map(|(s, t)| (s.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        tables,
        [
            ("portico_logs", "_sqlx_migrations"),
            ("portico_logs", "log_payloads"),
            ("portico_logs", "logs"),
            ("public", "_sqlx_migrations"),
            ("public", "logs"),
        ]
    );
    // Reconnecting finds everything in place.
    store.close().await;
    let again = PgLogStore::connect(db.url()).await.unwrap();
    assert_eq!(again.count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_nul_character_is_stored_as_a_replacement_character() {
    let db = TestPostgres::database().await;
    let store = PgLogStore::connect(db.url()).await.unwrap();
    let mut e = entry("n\0ul", DAY0);
    e.error = Some("a\0b".into());
    e.gateway = Some("edge\0".into());
    e.metadata = meta(&[("te\0am", "x\0")]);
    assert_eq!(store.insert(vec![e].into()).await.unwrap(), 1);
    assert!(store.get("n\0ul").await.unwrap().is_none());
    let stored = store.get("n\u{FFFD}ul").await.unwrap().unwrap().summary;
    assert_eq!(stored.error.as_deref(), Some("a\u{FFFD}b"));
    assert_eq!(stored.gateway.as_deref(), Some("edge\u{FFFD}"));
    assert_eq!(
        stored.metadata,
        Some(serde_json::json!({"te\u{FFFD}am": "x\u{FFFD}"}))
    );
}

/// The dashboard's filters are index scans in (created_at, seq) order, not sorts of the
/// matches, and metadata filters use the GIN index. Checked on the plans, with sequential
/// scans priced out since a test table is too small for the planner to prefer an index.
#[tokio::test]
async fn the_dashboards_filters_use_their_indexes() {
    let db = TestPostgres::database().await;
    let store = PgLogStore::connect(db.url()).await.unwrap();
    let entries: Vec<LogEntry> = (0..200)
        .map(|i| {
            let mut e = entry(&format!("i{i}"), DAY0 + i);
            e.metadata = meta(&[("team", if i % 50 == 0 { "rare" } else { "common" })]);
            e
        })
        .collect();
    store.insert(entries.into()).await.unwrap();
    let pool = raw(&db).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("ANALYZE logs")
        .execute(&mut *conn)
        .await
        .unwrap();
    for (filter, index) in [
        ("", "logs_created_at"),
        ("WHERE trace_id = 'x'", "logs_trace_id"),
        ("WHERE key_name = 'x'", "logs_key_name"),
        ("WHERE gateway = 'x'", "logs_gateway"),
        ("WHERE end_user = 'x'", "logs_end_user"),
        ("WHERE provider = 'x'", "logs_provider"),
        ("WHERE model = 'x'", "logs_model"),
        ("WHERE status / 100 = 5", "logs_status_class"),
    ] {
        let plan = explain(
            &mut conn,
            &format!(
                "SELECT id FROM logs {filter} \
                 ORDER BY created_at DESC, seq DESC LIMIT 51"
            ),
        )
        .await;
        assert!(plan.contains(index), "{filter}: {plan}");
        assert!(!plan.contains("Sort"), "{filter}: {plan}");
    }
    let plan = explain(
        &mut conn,
        "SELECT id FROM logs WHERE metadata @> '{\"team\":\"rare\"}' \
         ORDER BY created_at DESC, seq DESC LIMIT 51",
    )
    .await;
    // A rare value is looked up in the GIN index (a common one is found sooner by walking
    // the newest first, and the planner does that).
    assert!(plan.contains("logs_metadata"), "{plan}");
    let filter = LogFilter {
        metadata: vec![("team".into(), "rare".into())],
        ..LogFilter::default()
    };
    let page = store
        .search(&LogQuery {
            filter,
            limit: 500,
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(page.data.len(), 4);
}

async fn explain(conn: &mut sqlx::PgConnection, query: &str) -> String {
    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {query}"))
        .fetch_all(conn)
        .await
        .unwrap();
    lines.join("\n")
}
