//! What issue 17 added, on both engines: the catalog version, deliveries of a hybrid
//! gateway's spend, and several stores (processes) on one database at once.

use std::collections::BTreeMap;

use portico_core::{KeyHash, NamedBudget, Period, ProviderKind, SpendState, Subject, key_hint};
use serde_json::json;

use super::SqlStore;
use super::test_support::on_both_engines;
use crate::{
    ApplyOptions, ApplyReport, CatalogApply, ConfigSpec, GuardrailSpec, KeyPatch, KeySpec, KeyType,
    MasterKey, NewKey, ProviderRecord, RecordSource, SpendDelta, SpendStore, Store, StoreError,
};

fn provider(slug: &str, source: RecordSource) -> ProviderRecord {
    ProviderRecord {
        slug: slug.to_owned(),
        kind: ProviderKind::Mock,
        base_url: None,
        api_key: None,
        settings: json!({}),
        credentials: BTreeMap::new(),
        models: None,
        source,
        limits: Default::default(),
    }
}

fn file_key(name: &str) -> KeySpec {
    let secret = format!("prt-{name}-file-secret-0001");
    KeySpec {
        name: name.to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(&secret),
        hint: key_hint(&secret),
        fixed: true,
        allowed_models: None,
        log_payloads: false,
        config: None,
        limits: Default::default(),
        expires_at_ms: None,
    }
}

fn new_key(name: &str) -> NewKey {
    let secret = format!("prt-{name}-api-secret-00001");
    NewKey {
        name: name.to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(&secret),
        hint: key_hint(&secret),
        allowed_models: None,
        config: None,
        log_payloads: true,
        limits: Default::default(),
        expires_at_ms: None,
    }
}

fn budget(name: &str) -> NamedBudget {
    NamedBudget {
        name: name.to_owned(),
        matches: BTreeMap::from([("team".to_owned(), name.to_owned())]),
        limits: Default::default(),
    }
}

/// A catalog of every kind of record: a provider, a config, a guardrail, a key, a budget.
fn catalog() -> CatalogApply {
    CatalogApply {
        providers: vec![provider("mock", RecordSource::Default)],
        keys: vec![file_key("backend")],
        configs: vec![ConfigSpec {
            id: "to-mock".to_owned(),
            config: json!({"provider": "@mock"}),
        }],
        budgets: vec![budget("search")],
        guardrails: vec![GuardrailSpec {
            id: "words".to_owned(),
            guardrail: json!({"checks": [], "deny": true}),
        }],
    }
}

on_both_engines!(every_change_to_the_catalog_moves_its_version_and_nothing_else_does);
async fn every_change_to_the_catalog_moves_its_version_and_nothing_else_does(store: SqlStore) {
    let version = || async { store.catalog_version().await.unwrap() };
    let last = std::cell::Cell::new(version().await);
    assert_eq!(last.get(), 0, "a new database");
    // Each step must move the version by exactly one, in its own transaction.
    let moved = |name: &str, now: i64| {
        assert_eq!(
            now,
            last.get() + 1,
            "{name} did not move the version by one"
        );
        last.set(now);
    };

    store.apply_catalog(&catalog()).await.unwrap();
    moved("the first apply", version().await);
    assert_eq!(
        store.apply_catalog(&catalog()).await.unwrap(),
        ApplyReport::default()
    );
    let dry_run = ApplyOptions {
        dry_run: true,
        ..ApplyOptions::default()
    };
    let planned = store
        .apply_catalog_with(&CatalogApply::default(), dry_run)
        .await
        .unwrap();
    assert!(!planned.changes.is_empty());
    let failed = store
        .apply_catalog(&CatalogApply {
            keys: vec![file_key("a"), file_key("a")],
            ..CatalogApply::default()
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(
        version().await,
        last.get(),
        "a no-op apply, a dry run and a failed apply"
    );

    let admin = KeyHash::of("prt-admin-secret-000001");
    assert!(store.ensure_admin_key(admin, "h", false).await.unwrap());
    moved("creating the admin key", version().await);
    assert!(!store.ensure_admin_key(admin, "h", true).await.unwrap());
    assert!(
        !store
            .ensure_admin_key(KeyHash::of("x"), "h", false)
            .await
            .unwrap()
    );
    assert_eq!(version().await, last.get(), "an admin key left as it was");
    store
        .ensure_admin_key(KeyHash::of("prt-admin-secret-000002"), "h", true)
        .await
        .unwrap();
    moved("replacing the admin key", version().await);

    store
        .create_provider(&provider("api-p", RecordSource::Api))
        .await
        .unwrap();
    moved("create_provider", version().await);
    let mut replaced = provider("api-p", RecordSource::Api);
    replaced.base_url = Some("http://127.0.0.1:9".to_owned());
    store.replace_provider(&replaced).await.unwrap();
    moved("replace_provider", version().await);
    store.delete_provider("api-p").await.unwrap();
    moved("delete_provider", version().await);

    let key = store.create_key(&new_key("made")).await.unwrap();
    moved("create_key", version().await);
    let patch = KeyPatch {
        log_payloads: Some(false),
        ..KeyPatch::default()
    };
    store.update_key(&key.id, &patch).await.unwrap();
    moved("update_key", version().await);
    store
        .rotate_key("made", KeyHash::of("prt-made-rotated-000001"), "h")
        .await
        .unwrap();
    moved("rotate_key", version().await);
    store.revoke_key("made").await.unwrap();
    moved("revoke_key", version().await);
    store.revoke_key("made").await.unwrap();
    assert_eq!(
        version().await,
        last.get(),
        "revoking a revoked key changes nothing"
    );

    let config = json!({"retry": {"attempts": 1}});
    store.create_config("api-cfg", &config).await.unwrap();
    moved("create_config", version().await);
    store.replace_config("api-cfg", &config).await.unwrap();
    moved("replace_config", version().await);
    store.delete_config("api-cfg").await.unwrap();
    moved("delete_config", version().await);

    let guardrail = json!({"checks": []});
    store.create_guardrail("g", &guardrail).await.unwrap();
    moved("create_guardrail", version().await);
    store.replace_guardrail("g", &guardrail).await.unwrap();
    moved("replace_guardrail", version().await);
    store.delete_guardrail("g").await.unwrap();
    moved("delete_guardrail", version().await);

    store.create_budget(&budget("api-b")).await.unwrap();
    moved("create_budget", version().await);
    store.replace_budget(&budget("api-b")).await.unwrap();
    moved("replace_budget", version().await);
    store.delete_budget("api-b").await.unwrap();
    moved("delete_budget", version().await);

    // Refused writes, reads and the ledger leave it alone.
    assert!(store.create_key(&new_key("backend")).await.is_err());
    assert!(store.delete_budget("search").await.is_err());
    store.list_providers().await.unwrap();
    store.list_keys().await.unwrap();
    store.get_key("backend").await.unwrap();
    store.list_configs().await.unwrap();
    store.list_guardrails().await.unwrap();
    store.list_budgets().await.unwrap();
    store.has_admin_key().await.unwrap();
    store.save_spend(&[state("key:backend", 5)]).await.unwrap();
    store
        .apply_delivery("batch-1", &[delta("key:backend", 5, 1.0, 1)])
        .await
        .unwrap();
    assert_eq!(version().await, last.get(), "reads, refusals and spend");

    // An apply removing everything is one change of version, however many records it wrote.
    store.apply_catalog(&CatalogApply::default()).await.unwrap();
    moved("the apply removing everything", version().await);
}

const DAY: i64 = 86_400_000;

fn delta(subject: &str, period_start_ms: i64, cost_usd: f64, tokens: u64) -> SpendDelta {
    SpendDelta {
        subject: Subject::parse(subject).unwrap(),
        period: Some(Period::Day),
        period_start_ms,
        cost_usd,
        tokens,
    }
}

fn state(subject: &str, period_start_ms: i64) -> SpendState {
    SpendState {
        subject: Subject::parse(subject).unwrap(),
        period: Some(Period::Day),
        period_start_ms,
        cost_usd: 1.5,
        tokens: 100,
        window: vec![portico_core::WindowBucket {
            second: 1_796_562_000,
            requests: 2,
            tokens: 40,
        }],
        updated_at_ms: period_start_ms + 1,
    }
}

/// The stored (period start, cost, tokens, window length) of `subject`.
async fn spent(store: &SqlStore, subject: &str) -> Option<(i64, f64, u64, usize)> {
    store
        .load_spend()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.subject.to_string() == subject)
        .map(|s| (s.period_start_ms, s.cost_usd, s.tokens, s.window.len()))
}

on_both_engines!(a_delivery_adds_to_its_period_starts_a_new_one_or_is_too_late);
async fn a_delivery_adds_to_its_period_starts_a_new_one_or_is_too_late(store: SqlStore) {
    let clock = std::sync::Arc::new(portico_core::ManualClock::at(50 * DAY));
    let store = store.with_clock(clock);
    let today = 20 * DAY;
    store
        .save_spend(&[
            state("key:same-day", today),
            state("key:new-day", today - DAY),
            state("key:late", today + DAY),
        ])
        .await
        .unwrap();
    let deltas = [
        delta("key:same-day", today, 0.25, 10),
        delta("key:new-day", today, 0.75, 30),
        delta("key:late", today, 9.0, 900),
        delta("user:alice@example.com", today, 2.0, 20),
    ];
    assert!(store.apply_delivery("gw-1/batch-1", &deltas).await.unwrap());
    // Same period: added to. The rate window is the ledger's own and is kept.
    assert_eq!(
        spent(&store, "key:same-day").await,
        Some((today, 1.75, 110, 1))
    );
    // A stored period that has ended: replaced by the delta's, window kept.
    assert_eq!(
        spent(&store, "key:new-day").await,
        Some((today, 0.75, 30, 1))
    );
    // A delta of a period already closed: skipped.
    assert_eq!(
        spent(&store, "key:late").await,
        Some((today + DAY, 1.5, 100, 1))
    );
    // No row yet: the delta is the row, without a window.
    assert_eq!(
        spent(&store, "user:alice@example.com").await,
        Some((today, 2.0, 20, 0))
    );
    let alice = store
        .load_spend()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.subject == Subject::User("alice@example.com".into()))
        .unwrap();
    assert_eq!(
        (alice.period, alice.updated_at_ms),
        (Some(Period::Day), 50 * DAY)
    );

    // The same batch again (its answer was lost): nothing changes.
    let before = store.load_spend().await.unwrap();
    assert!(!store.apply_delivery("gw-1/batch-1", &deltas).await.unwrap());
    assert_eq!(store.load_spend().await.unwrap(), before);
    // Another batch adds again; an empty one is recorded and changes nothing.
    assert!(
        store
            .apply_delivery("gw-1/batch-2", &deltas[..1])
            .await
            .unwrap()
    );
    assert_eq!(
        spent(&store, "key:same-day").await,
        Some((today, 2.0, 120, 1))
    );
    assert!(store.apply_delivery("gw-1/batch-3", &[]).await.unwrap());
    assert!(!store.apply_delivery("gw-1/batch-3", &[]).await.unwrap());
}

on_both_engines!(old_deliveries_are_forgotten_and_recent_ones_kept);
async fn old_deliveries_are_forgotten_and_recent_ones_kept(store: SqlStore) {
    let clock = std::sync::Arc::new(portico_core::ManualClock::at(50 * DAY));
    let store = store.with_clock(clock.clone());
    let today = 50 * DAY;
    let deltas = [delta("key:backend", today, 1.0, 10)];
    assert!(store.apply_delivery("old", &deltas).await.unwrap());
    clock.set(60 * DAY);
    assert!(store.apply_delivery("recent", &deltas).await.unwrap());

    assert_eq!(store.prune_deliveries(55 * DAY).await.unwrap(), 1);
    assert_eq!(store.prune_deliveries(55 * DAY).await.unwrap(), 0);
    // The recent one is still recognised; the forgotten one would count again.
    assert!(!store.apply_delivery("recent", &deltas).await.unwrap());
    assert!(store.apply_delivery("old", &deltas).await.unwrap());
}

#[test]
fn a_delta_travels_with_its_subject_as_text() {
    let d = delta("budget:team-search", 7, 0.5, 3);
    let text = serde_json::to_string(&d).unwrap();
    assert_eq!(
        text,
        r#"{"subject":"budget:team-search","period":"day","period_start_ms":7,"cost_usd":0.5,"tokens":3}"#
    );
    assert_eq!(serde_json::from_str::<SpendDelta>(&text).unwrap(), d);
    let err = serde_json::from_str::<SpendDelta>(&text.replace("budget:", "team:")).unwrap_err();
    assert!(err.to_string().contains("unknown subject"), "{err}");
}

/// Two processes starting at once on one database: each applies the catalog and makes sure
/// of the admin key, as `portico serve` does at start. Both succeed, and one copy of each
/// record is left.
async fn two_bootstraps_at_once(a: SqlStore, b: SqlStore) {
    let cat = catalog();
    let admin = KeyHash::of("prt-admin-secret-bootstrap");
    let bootstrap = |store: SqlStore| {
        let cat = cat.clone();
        async move {
            let report = store.apply_catalog(&cat).await.unwrap();
            let created = store.ensure_admin_key(admin, "h", true).await.unwrap();
            (report, created)
        }
    };
    let ((ra, ca), (rb, cb)) = tokio::join!(bootstrap(a.clone()), bootstrap(b.clone()));
    // One of them did the work, the other found it done.
    assert!(
        (ra == ApplyReport::default()) != (rb == ApplyReport::default()),
        "{ra:?}\n{rb:?}"
    );
    assert!(ca != cb, "exactly one created the admin key");
    let keys = a.list_keys().await.unwrap();
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["admin", "backend"]);
    assert_eq!(b.list_keys().await.unwrap(), keys);
    assert_eq!(a.list_providers().await.unwrap().len(), 1);
    assert_eq!(b.list_configs().await.unwrap().len(), 1);
    assert_eq!(b.list_budgets().await.unwrap().len(), 1);
    assert_eq!(b.list_guardrails().await.unwrap().len(), 1);
    // Two changes (the apply, the admin key), seen by both.
    assert_eq!(a.catalog_version().await.unwrap(), 2);
    assert_eq!(b.catalog_version().await.unwrap(), 2);

    // A change through one is seen by the other, version first.
    b.create_key(&new_key("from-b")).await.unwrap();
    assert_eq!(a.catalog_version().await.unwrap(), 3);
    assert!(a.get_key("from-b").await.unwrap().is_some());
}

#[tokio::test]
async fn two_bootstraps_at_once_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let master = MasterKey::generate();
    let a = SqlStore::open(&path, master.clone()).await.unwrap();
    let b = SqlStore::open(&path, master).await.unwrap();
    two_bootstraps_at_once(a.clone(), b.clone()).await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn two_bootstraps_at_once_on_one_postgres_database() {
    let db = portico_testkit::TestPostgres::database().await;
    let master = MasterKey::generate();
    let a = SqlStore::connect(db.url(), master.clone()).await.unwrap();
    let b = SqlStore::connect(db.url(), master).await.unwrap();
    two_bootstraps_at_once(a, b).await;
}

#[tokio::test]
async fn processes_starting_at_once_on_an_empty_postgres_database_all_come_up() {
    let db = portico_testkit::TestPostgres::database().await;
    let master = MasterKey::generate();
    // Each runs the migrations, under sqlx's advisory lock, and writes the canary.
    let open = || SqlStore::connect(db.url(), master.clone());
    let (a, b, c, d) = tokio::join!(open(), open(), open(), open());
    for store in [a, b, c, d] {
        assert_eq!(store.unwrap().catalog_version().await.unwrap(), 0);
    }
    let store = SqlStore::connect(db.url(), master).await.unwrap();
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(
        usize::try_from(migrations).unwrap(),
        files,
        "each migration once"
    );
}

#[tokio::test]
async fn a_postgres_database_needs_the_master_key_it_was_created_with() {
    let db = portico_testkit::TestPostgres::database().await;
    let master = MasterKey::generate();
    let store = SqlStore::connect(db.url(), master.clone()).await.unwrap();
    store
        .apply_catalog(&CatalogApply {
            providers: vec![ProviderRecord {
                api_key: Some(portico_core::Secret::new("sk-secret-at-rest")),
                ..provider("openai", RecordSource::File)
            }],
            ..CatalogApply::default()
        })
        .await
        .unwrap();
    store.close().await;
    let err = SqlStore::connect(db.url(), MasterKey::generate())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    // The secret is stored encrypted, and the same key reads it back.
    let store = SqlStore::connect(db.url(), master).await.unwrap();
    let blob: Vec<u8> = sqlx::query_scalar("SELECT api_key_enc FROM providers")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(!blob.windows(6).any(|w| w == b"secret"));
    let listed = store.list_providers().await.unwrap();
    assert_eq!(
        listed[0].api_key.as_ref().map(|s| s.expose().to_owned()),
        Some("sk-secret-at-rest".to_owned())
    );
}
