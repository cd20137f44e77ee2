//! The store on both engines: applies, keys, configs, providers and secrets; the tests that
//! look at the SQLite file (encryption at rest, permissions, reopening) run on SQLite only.

use std::collections::BTreeMap;
use std::path::Path;

use portico_core::{KeyHash, ProviderKind, Secret, key_hint};
use serde_json::json;

use super::test_support::on_both_engines;
use super::*;
use crate::{KeySpec, ModelRecord, Pricing};

const OPENAI_SECRET: &str = "sk-live-PLAINTEXT-canary-0123456789";

fn model(id: &str) -> ModelRecord {
    ModelRecord {
        id: id.to_owned(),
        name: None,
        pricing: None,
    }
}

fn provider(slug: &str, kind: ProviderKind, api_key: Option<&str>) -> ProviderRecord {
    ProviderRecord {
        slug: slug.to_owned(),
        kind,
        base_url: None,
        api_key: api_key.map(Secret::new),
        settings: json!({}),
        credentials: BTreeMap::new(),
        models: None,
        source: RecordSource::File,
        limits: Default::default(),
    }
}

fn key(name: &str, secret: &str, fixed: bool) -> KeySpec {
    KeySpec {
        name: name.to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(secret),
        hint: key_hint(secret),
        fixed,
        allowed_models: None,
        log_payloads: false,
        config: None,
        limits: Default::default(),
        expires_at_ms: None,
    }
}

/// Two providers (one with an allow-list, prices and settings), the built-in mock, and two
/// keys: one with a fixed secret, one generated.
fn catalog() -> CatalogApply {
    let mut openai = provider("openai-prod", ProviderKind::OpenAi, Some(OPENAI_SECRET));
    openai.base_url = Some("http://127.0.0.1:9/portico-base-url-marker".to_owned());
    openai.models = Some(vec![
        ModelRecord {
            id: "gpt-4o".to_owned(),
            name: Some("GPT-4o".to_owned()),
            pricing: Some(Pricing {
                input_per_mtok: Some(2.5),
                output_per_mtok: Some(10.0),
                cache_read_per_mtok: Some(1.25),
                cache_write_per_mtok: None,
            }),
        },
        model("gpt-4o-mini"),
    ]);
    let mut mock = provider("mock", ProviderKind::Mock, None);
    mock.settings =
        json!({"latency_ms": 5, "failure_rate": 0.1, "nested": {"b": [1, 2], "a": null}});
    mock.source = RecordSource::Default;
    let mut alice = key("alice", "prt-alice-generated", false);
    alice.key_type = KeyType::User;
    alice.user = Some("alice@example.com".to_owned());
    alice.allowed_models = Some(vec!["@openai-prod/gpt-4o-mini".to_owned()]);
    alice.log_payloads = true;
    CatalogApply {
        providers: vec![openai, mock],
        keys: vec![key("backend", "prt-backend-fixed", true), alice],
        configs: Vec::new(),
        budgets: Vec::new(),
        guardrails: Vec::new(),
    }
}

async fn key_named(store: &SqlStore, name: &str) -> KeyRecord {
    store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == name)
        .unwrap()
}

async fn model_rows(store: &SqlStore, slug: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM models WHERE provider_slug = $1")
        .bind(slug)
        .fetch_one(&store.pool)
        .await
        .unwrap()
}

fn slugs(providers: &[ProviderRecord]) -> Vec<&str> {
    providers.iter().map(|p| p.slug.as_str()).collect()
}

on_both_engines!(applying_twice_changes_nothing_the_second_time);
async fn applying_twice_changes_nothing_the_second_time(store: SqlStore) {
    let first = store.apply_catalog(&catalog()).await.unwrap();
    assert_eq!(first.created_keys, ["backend", "alice"]);
    assert_eq!(first.changed_providers, ["openai-prod", "mock"]);
    assert!(first.rotated_keys.is_empty() && first.revoked_keys.is_empty());
    assert!(first.removed_providers.is_empty());

    let keys_before = store.list_keys().await.unwrap();
    let stamps = || async {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT slug, updated_at FROM providers ORDER BY slug")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        rows
    };
    let stamps_before = stamps().await;

    let second = store.apply_catalog(&catalog()).await.unwrap();
    assert_eq!(second, ApplyReport::default());
    assert_eq!(store.list_keys().await.unwrap(), keys_before);
    assert_eq!(stamps().await, stamps_before);

    // What comes back is what went in, ordered by slug, secrets decrypted.
    let mut expected = catalog().providers;
    expected.sort_by(|a, b| a.slug.cmp(&b.slug));
    assert_eq!(store.list_providers().await.unwrap(), expected);
}

on_both_engines!(keys_are_listed_by_name_with_their_fields);
async fn keys_are_listed_by_name_with_their_fields(store: SqlStore) {
    store.apply_catalog(&catalog()).await.unwrap();
    let keys = store.list_keys().await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["alice", "backend"]
    );
    let alice = &keys[0];
    assert_eq!(alice.key_type, KeyType::User);
    assert_eq!(alice.user.as_deref(), Some("alice@example.com"));
    assert_eq!(alice.hash, KeyHash::of("prt-alice-generated"));
    assert_eq!(alice.hint, key_hint("prt-alice-generated"));
    assert_eq!(
        alice.allowed_models.as_deref(),
        Some(&["@openai-prod/gpt-4o-mini".to_owned()][..])
    );
    assert!(alice.log_payloads);
    assert_eq!(alice.source, RecordSource::File);
    assert_eq!(alice.revoked_at_ms, None);
    assert!(alice.created_at_ms > 0);
    let id = uuid::Uuid::parse_str(&alice.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_ne!(keys[0].id, keys[1].id);
}

on_both_engines!(a_fixed_secret_change_rotates_the_hash_and_keeps_the_id);
async fn a_fixed_secret_change_rotates_the_hash_and_keeps_the_id(store: SqlStore) {
    store.apply_catalog(&catalog()).await.unwrap();
    let before = key_named(&store, "backend").await;

    let mut changed = catalog();
    changed.keys[0] = key("backend", "prt-backend-rotated", true);
    let report = store.apply_catalog(&changed).await.unwrap();
    assert_eq!(
        ApplyReport {
            changes: Vec::new(),
            ..report.clone()
        },
        ApplyReport {
            rotated_keys: vec!["backend".to_owned()],
            ..ApplyReport::default()
        }
    );
    // One change, naming the secret but not its value.
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].name, "backend");
    assert_eq!(
        report.changes[0].fields,
        [crate::FieldChange {
            name: "key".to_owned(),
            secret: true
        }]
    );
    let after = key_named(&store, "backend").await;
    assert_eq!(after.id, before.id);
    assert_eq!(after.created_at_ms, before.created_at_ms);
    assert_eq!(after.hash, KeyHash::of("prt-backend-rotated"));
    assert_eq!(after.hint, key_hint("prt-backend-rotated"));

    assert_eq!(
        store.apply_catalog(&changed).await.unwrap(),
        ApplyReport::default()
    );
}

on_both_engines!(a_generated_key_keeps_its_hash_while_its_settings_follow_the_file);
async fn a_generated_key_keeps_its_hash_while_its_settings_follow_the_file(store: SqlStore) {
    store.apply_catalog(&catalog()).await.unwrap();
    let before = key_named(&store, "alice").await;

    // Each start generates a fresh candidate secret for a key without one; it must not win.
    let mut next = catalog();
    next.keys[1].hash = KeyHash::of("prt-alice-generated-again");
    next.keys[1].hint = key_hint("prt-alice-generated-again");
    assert_eq!(
        store.apply_catalog(&next).await.unwrap(),
        ApplyReport::default()
    );
    assert_eq!(key_named(&store, "alice").await, before);

    next.keys[1].allowed_models = None;
    next.keys[1].log_payloads = false;
    next.keys[1].key_type = KeyType::Service;
    next.keys[1].user = None;
    // Only the settings change, and the report names them.
    let report = store.apply_catalog(&next).await.unwrap();
    assert!(report.created_keys.is_empty() && report.rotated_keys.is_empty());
    let fields: Vec<&str> = report.changes[0]
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(fields, ["type", "user", "allowed_models", "log_payloads"]);
    let after = key_named(&store, "alice").await;
    assert_eq!(after.id, before.id);
    assert_eq!(after.hash, before.hash);
    assert_eq!(after.allowed_models, None);
    assert!(!after.log_payloads);
    assert_eq!(after.key_type, KeyType::Service);
    assert_eq!(after.user, None);
}

on_both_engines!(removed_keys_are_revoked_once_and_come_back_when_declared_again);
async fn removed_keys_are_revoked_once_and_come_back_when_declared_again(store: SqlStore) {
    store.apply_catalog(&catalog()).await.unwrap();
    assert!(
        store
            .ensure_admin_key(KeyHash::of("prt-admin-x"), "prt-admin-x…", false)
            .await
            .unwrap()
    );
    let alice = key_named(&store, "alice").await;

    let mut without = catalog();
    without.keys.truncate(1);
    let report = store.apply_catalog(&without).await.unwrap();
    assert_eq!(report.revoked_keys, ["alice"]);
    assert!(report.created_keys.is_empty());
    let revoked = key_named(&store, "alice").await;
    assert!(revoked.revoked_at_ms.is_some());
    assert_eq!(revoked.id, alice.id);
    // Admin keys are never revoked by an apply.
    assert_eq!(key_named(&store, "admin").await.revoked_at_ms, None);
    assert!(store.has_admin_key().await.unwrap());

    // Only newly revoked keys are reported.
    assert_eq!(
        store.apply_catalog(&without).await.unwrap(),
        ApplyReport::default()
    );

    let report = store.apply_catalog(&catalog()).await.unwrap();
    assert!(report.created_keys.is_empty(), "re-declared, not created");
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].action, crate::ChangeAction::Update);
    let back = key_named(&store, "alice").await;
    assert_eq!(back.revoked_at_ms, None);
    assert_eq!(back, alice);

    // Removing every key revokes all file keys, still not the admin key.
    let report = store
        .apply_catalog(&CatalogApply {
            configs: Vec::new(),
            keys: vec![],
            ..catalog()
        })
        .await
        .unwrap();
    assert_eq!(report.revoked_keys, ["alice", "backend"]);
    assert_eq!(key_named(&store, "admin").await.revoked_at_ms, None);
}

on_both_engines!(removed_providers_go_with_their_models_but_api_providers_stay);
async fn removed_providers_go_with_their_models_but_api_providers_stay(store: SqlStore) {
    store.apply_catalog(&catalog()).await.unwrap();
    sqlx::query(
        "INSERT INTO providers (slug, kind, base_url, api_key_enc, settings, has_models, source, \
         created_at, updated_at) VALUES ('from-api', 'groq', NULL, $1, '{}', 0, 'api', 1, 1)",
    )
    .bind(store.master.encrypt(b"gsk-api"))
    .execute(&store.pool)
    .await
    .unwrap();
    assert_eq!(model_rows(&store, "openai-prod").await, 2);

    let only_mock = CatalogApply {
        configs: Vec::new(),
        providers: catalog().providers.split_off(1),
        keys: catalog().keys,
        budgets: Vec::new(),
        guardrails: Vec::new(),
    };
    let report = store.apply_catalog(&only_mock).await.unwrap();
    assert_eq!(report.removed_providers, ["openai-prod"]);
    assert!(report.changed_providers.is_empty());
    assert_eq!(model_rows(&store, "openai-prod").await, 0);

    let providers = store.list_providers().await.unwrap();
    assert_eq!(slugs(&providers), ["from-api", "mock"]);
    assert_eq!(providers[0].source, RecordSource::Api);
    assert_eq!(providers[0].api_key, Some(Secret::new("gsk-api")));

    // Even an empty catalog leaves it alone.
    let report = store.apply_catalog(&CatalogApply::default()).await.unwrap();
    assert_eq!(report.removed_providers, ["mock"]);
    assert_eq!(slugs(&store.list_providers().await.unwrap()), ["from-api"]);

    // A catalog cannot take it over.
    let mut takeover = catalog();
    takeover.providers[0].slug = "from-api".to_owned();
    let err = store.apply_catalog(&takeover).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("@from-api"), "{err}");
    assert!(!err.to_string().contains(OPENAI_SECRET));
    assert_eq!(slugs(&store.list_providers().await.unwrap()), ["from-api"]);
}

on_both_engines!(models_are_replaced_in_order);
async fn models_are_replaced_in_order(store: SqlStore) {
    let mut cat = CatalogApply {
        configs: Vec::new(),
        providers: vec![provider("p", ProviderKind::Mock, None)],
        keys: vec![],
        budgets: Vec::new(),
        guardrails: Vec::new(),
    };
    let ids = |p: &ProviderRecord| -> Option<Vec<String>> {
        p.models
            .as_ref()
            .map(|ms| ms.iter().map(|m| m.id.clone()).collect())
    };

    cat.providers[0].models = Some(vec![model("zeta"), model("alpha"), model("mid")]);
    store.apply_catalog(&cat).await.unwrap();
    let listed = store.list_providers().await.unwrap();
    assert_eq!(
        ids(&listed[0]),
        Some(vec!["zeta".into(), "alpha".into(), "mid".into()])
    );

    cat.providers[0].models = Some(vec![model("mid"), model("zeta")]);
    let report = store.apply_catalog(&cat).await.unwrap();
    assert_eq!(report.changed_providers, ["p"]);
    let listed = store.list_providers().await.unwrap();
    assert_eq!(ids(&listed[0]), Some(vec!["mid".into(), "zeta".into()]));

    // A price change alone is a change.
    cat.providers[0].models.as_mut().unwrap()[1].pricing = Some(Pricing {
        output_per_mtok: Some(0.6),
        ..Pricing::default()
    });
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap().changed_providers,
        ["p"]
    );
    assert_eq!(store.list_providers().await.unwrap(), cat.providers);

    // An empty allow-list is not the same as none.
    cat.providers[0].models = Some(vec![]);
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap().changed_providers,
        ["p"]
    );
    assert_eq!(ids(&store.list_providers().await.unwrap()[0]), Some(vec![]));

    cat.providers[0].models = None;
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap().changed_providers,
        ["p"]
    );
    assert_eq!(ids(&store.list_providers().await.unwrap()[0]), None);
    assert_eq!(model_rows(&store, "p").await, 0);
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap(),
        ApplyReport::default()
    );
}

on_both_engines!(a_changed_secret_or_field_is_a_change);
async fn a_changed_secret_or_field_is_a_change(store: SqlStore) {
    store.apply_catalog(&catalog()).await.unwrap();

    let mut next = catalog();
    next.providers[0].api_key = Some(Secret::new("sk-live-rotated"));
    assert_eq!(
        store.apply_catalog(&next).await.unwrap().changed_providers,
        ["openai-prod"]
    );
    next.providers[1].settings = json!({"latency_ms": 6});
    next.providers[1].source = RecordSource::File;
    assert_eq!(
        store.apply_catalog(&next).await.unwrap().changed_providers,
        ["mock"]
    );
    next.providers[0].api_key = None;
    store.apply_catalog(&next).await.unwrap();

    let listed = store.list_providers().await.unwrap();
    assert_eq!(listed[0].settings, json!({"latency_ms": 6}));
    assert_eq!(listed[0].source, RecordSource::File);
    assert_eq!(listed[1].api_key, None);
}

on_both_engines!(a_failed_apply_changes_nothing);
async fn a_failed_apply_changes_nothing(store: SqlStore) {
    store.apply_catalog(&catalog()).await.unwrap();
    let providers = store.list_providers().await.unwrap();
    let keys = store.list_keys().await.unwrap();

    // The new provider is written first; the clashing key then fails the whole apply.
    let mut bad = catalog();
    bad.providers
        .push(provider("extra", ProviderKind::Groq, Some("gsk-x")));
    bad.keys.push(key("carol", "prt-backend-fixed", true));
    let err = store.apply_catalog(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("carol"), "{err}");
    assert!(!err.to_string().contains("prt-backend-fixed"), "{err}");

    assert_eq!(store.list_providers().await.unwrap(), providers);
    assert_eq!(store.list_keys().await.unwrap(), keys);
}

on_both_engines!(catalogs_that_cannot_be_applied_are_rejected);
async fn catalogs_that_cannot_be_applied_are_rejected(store: SqlStore) {
    let cases: Vec<(CatalogApply, &str)> = vec![
        (
            CatalogApply {
                configs: Vec::new(),
                providers: vec![
                    provider("dup", ProviderKind::Mock, None),
                    provider("dup", ProviderKind::Mock, None),
                ],
                keys: vec![],
                budgets: Vec::new(),
                guardrails: Vec::new(),
            },
            "twice",
        ),
        (
            CatalogApply {
                configs: Vec::new(),
                keys: vec![key("k", "a", true), key("k", "b", true)],
                ..CatalogApply::default()
            },
            "twice",
        ),
        (
            CatalogApply {
                configs: Vec::new(),
                keys: vec![key("admin", "a", true)],
                ..CatalogApply::default()
            },
            "reserved",
        ),
        (
            CatalogApply {
                configs: Vec::new(),
                providers: vec![ProviderRecord {
                    models: Some(vec![model("m"), model("m")]),
                    ..provider("p", ProviderKind::Mock, None)
                }],
                keys: vec![],
                budgets: Vec::new(),
                guardrails: Vec::new(),
            },
            "model `m` twice",
        ),
        (
            CatalogApply {
                configs: Vec::new(),
                providers: vec![ProviderRecord {
                    source: RecordSource::Api,
                    ..provider("p", ProviderKind::Mock, None)
                }],
                keys: vec![],
                budgets: Vec::new(),
                guardrails: Vec::new(),
            },
            "source `api`",
        ),
    ];
    for (cat, needle) in cases {
        let err = store.apply_catalog(&cat).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert!(store.list_providers().await.unwrap().is_empty());
    assert!(store.list_keys().await.unwrap().is_empty());
}

on_both_engines!(ensure_admin_key_creates_keeps_or_replaces);
async fn ensure_admin_key_creates_keeps_or_replaces(store: SqlStore) {
    assert!(!store.has_admin_key().await.unwrap());
    let first = KeyHash::of("prt-admin-first");
    assert!(
        store
            .ensure_admin_key(first, "prt-admin-fi…", false)
            .await
            .unwrap()
    );
    assert!(store.has_admin_key().await.unwrap());
    let admin = key_named(&store, "admin").await;
    assert_eq!(admin.key_type, KeyType::Admin);
    assert_eq!(admin.hash, first);

    // Without `replace` an existing key stays.
    let second = KeyHash::of("prt-admin-second");
    assert!(
        !store
            .ensure_admin_key(second, "prt-admin-se…", false)
            .await
            .unwrap()
    );
    assert_eq!(key_named(&store, "admin").await, admin);

    // With it, the given one wins, under the same id.
    assert!(
        !store
            .ensure_admin_key(second, "prt-admin-se…", true)
            .await
            .unwrap()
    );
    let replaced = key_named(&store, "admin").await;
    assert_eq!(replaced.id, admin.id);
    assert_eq!(replaced.hash, second);
    assert_eq!(replaced.hint, "prt-admin-se…");

    // A catalog apply leaves it alone.
    store.apply_catalog(&catalog()).await.unwrap();
    store.apply_catalog(&CatalogApply::default()).await.unwrap();
    assert_eq!(key_named(&store, "admin").await, replaced);

    // A revoked admin key counts as missing.
    sqlx::query("UPDATE keys SET revoked_at = 1 WHERE name = 'admin'")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(!store.has_admin_key().await.unwrap());
    assert!(
        store
            .ensure_admin_key(first, "prt-admin-fi…", false)
            .await
            .unwrap()
    );
    let revived = key_named(&store, "admin").await;
    assert_eq!(
        (revived.id, revived.hash, revived.revoked_at_ms),
        (admin.id, first, None)
    );

    // Another key may not take the admin key's secret.
    let err = store
        .apply_catalog(&CatalogApply {
            configs: Vec::new(),
            keys: vec![key("copycat", "prt-admin-first", true)],
            ..CatalogApply::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

/// Every file of the database (main, WAL, shared memory), concatenated.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("portico.db")
        {
            all.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn provider_secrets_are_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let master = MasterKey::load_or_create(dir.path()).unwrap();
    let store = SqlStore::open(&path, master).await.unwrap();
    store.apply_catalog(&catalog()).await.unwrap();
    let listed = store.list_providers().await.unwrap();
    let openai = listed.iter().find(|p| p.slug == "openai-prod").unwrap();
    assert_eq!(openai.api_key.as_ref().unwrap().expose(), OPENAI_SECRET);

    // While open, the rows are in the WAL; after closing, checkpointed into the main file.
    let while_open = database_bytes(dir.path());
    store.close().await;
    let after_close = database_bytes(dir.path());
    for bytes in [while_open, after_close] {
        assert!(
            contains(&bytes, "portico-base-url-marker"),
            "the check reads the rows"
        );
        assert!(
            !contains(&bytes, OPENAI_SECRET),
            "the API key is stored in plain text"
        );
        assert!(!contains(&bytes, "PLAINTEXT-canary"));
    }
}

#[tokio::test]
async fn reopening_needs_the_same_master_key_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("portico.db");
    let master = MasterKey::load_or_create(dir.path()).unwrap();
    let store = SqlStore::open(&path, master.clone()).await.unwrap();
    store.apply_catalog(&catalog()).await.unwrap();
    let providers = store.list_providers().await.unwrap();
    let keys = store.list_keys().await.unwrap();
    store.close().await;

    let other = MasterKey::from_env_value(&"42".repeat(32)).unwrap();
    let err = SqlStore::open(&path, other).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("PORTICO_MASTER_KEY"), "{msg}");
    assert!(!msg.contains(&"42".repeat(32)), "{msg}");

    // The same key, loaded again from the data dir, opens it with everything in place.
    let again = MasterKey::load_or_create(dir.path()).unwrap();
    let store = SqlStore::open(&path, again).await.unwrap();
    assert_eq!(store.list_providers().await.unwrap(), providers);
    assert_eq!(store.list_keys().await.unwrap(), keys);
    assert_eq!(
        store.apply_catalog(&catalog()).await.unwrap(),
        ApplyReport::default()
    );
    store.close().await;
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let master = MasterKey::generate();
    let a = SqlStore::open(&path, master.clone()).await.unwrap();
    let b = SqlStore::open(&path, master).await.unwrap();
    let cat = catalog();
    let (ra, rb) = tokio::join!(a.apply_catalog(&cat), b.apply_catalog(&cat));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // One of them did the work, the other found it done.
    assert!(ra == ApplyReport::default() || rb == ApplyReport::default());
    assert_eq!(a.list_keys().await.unwrap(), b.list_keys().await.unwrap());
    a.close().await;
    b.close().await;
}

const AWS_SECRET: &str = "aws-secret-PLAINTEXT-canary-9876543210";
const AWS_TOKEN: &str = "aws-session-PLAINTEXT-token-5555";

/// A bedrock provider with AWS credentials and a region setting.
fn bedrock() -> ProviderRecord {
    let mut p = provider("aws", ProviderKind::Bedrock, None);
    p.settings = json!({"aws_region": "eu-west-1"});
    p.credentials = BTreeMap::from([
        (
            "aws_access_key_id".to_owned(),
            Secret::new("AKIA-ID-canary"),
        ),
        ("aws_secret_access_key".to_owned(), Secret::new(AWS_SECRET)),
        ("aws_session_token".to_owned(), Secret::new(AWS_TOKEN)),
    ]);
    p
}

on_both_engines!(credentials_round_trip_and_changes_are_detected);
async fn credentials_round_trip_and_changes_are_detected(store: SqlStore) {
    let mut cat = CatalogApply {
        configs: Vec::new(),
        providers: vec![bedrock()],
        keys: vec![],
        budgets: Vec::new(),
        guardrails: Vec::new(),
    };
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap().changed_providers,
        ["aws"]
    );
    assert_eq!(store.list_providers().await.unwrap(), cat.providers);
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap(),
        ApplyReport::default(),
        "the same credentials are no change"
    );

    // A rotated secret alone is a change.
    cat.providers[0].credentials.insert(
        "aws_secret_access_key".to_owned(),
        Secret::new("aws-secret-rotated"),
    );
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap().changed_providers,
        ["aws"]
    );
    assert_eq!(store.list_providers().await.unwrap(), cat.providers);

    // So is a removed one, and removing them all stores none.
    cat.providers[0].credentials.remove("aws_session_token");
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap().changed_providers,
        ["aws"]
    );
    assert_eq!(store.list_providers().await.unwrap(), cat.providers);
    cat.providers[0].credentials.clear();
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap().changed_providers,
        ["aws"]
    );
    assert_eq!(store.list_providers().await.unwrap(), cat.providers);
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT credentials_enc FROM providers WHERE slug = 'aws'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(stored, None);
    assert_eq!(
        store.apply_catalog(&cat).await.unwrap(),
        ApplyReport::default()
    );
}

#[tokio::test]
async fn credentials_are_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let master = MasterKey::load_or_create(dir.path()).unwrap();
    let store = SqlStore::open(&path, master).await.unwrap();
    let mut aws = bedrock();
    aws.base_url = Some("http://127.0.0.1:9/portico-base-url-marker".to_owned());
    store
        .apply_catalog(&CatalogApply {
            configs: Vec::new(),
            providers: vec![aws.clone()],
            keys: vec![],
            budgets: Vec::new(),
            guardrails: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(store.list_providers().await.unwrap(), [aws]);

    let while_open = database_bytes(dir.path());
    store.close().await;
    let after_close = database_bytes(dir.path());
    for bytes in [while_open, after_close] {
        assert!(contains(&bytes, "portico-base-url-marker"));
        assert!(contains(&bytes, "eu-west-1"), "settings are not secret");
        for secret in [
            AWS_SECRET,
            AWS_TOKEN,
            "AKIA-ID-canary",
            "aws_secret_access_key",
        ] {
            assert!(
                !contains(&bytes, secret),
                "{secret} is stored in plain text"
            );
        }
    }
}

on_both_engines!(credentials_under_another_master_key_are_refused);
async fn credentials_under_another_master_key_are_refused(store: SqlStore) {
    store
        .apply_catalog(&CatalogApply {
            configs: Vec::new(),
            providers: vec![bedrock()],
            keys: vec![],
            budgets: Vec::new(),
            guardrails: Vec::new(),
        })
        .await
        .unwrap();
    // A blob written under another key (as if copied from another database).
    let other = MasterKey::generate();
    sqlx::query("UPDATE providers SET credentials_enc = $1 WHERE slug = 'aws'")
        .bind(other.encrypt(br#"{"aws_secret_access_key":"x"}"#))
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.list_providers().await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");

    // A blob that decrypts but is not a JSON object of strings is corrupt, and its text is
    // not quoted.
    sqlx::query("UPDATE providers SET credentials_enc = $1 WHERE slug = 'aws'")
        .bind(store.master.encrypt(b"[\"aws-secret-not-an-object\"]"))
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.list_providers().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(
        !err.to_string().contains("aws-secret-not-an-object"),
        "{err}"
    );
}

fn config_spec(id: &str, config: serde_json::Value) -> crate::ConfigSpec {
    crate::ConfigSpec {
        id: id.to_owned(),
        config,
    }
}

/// The catalog with a fallback config over its providers, attached to `backend`.
fn catalog_with_config() -> CatalogApply {
    let mut cat = catalog();
    cat.configs = vec![
        config_spec(
            "reliable",
            json!({"strategy": {"mode": "fallback"},
                   "targets": [{"provider": "@openai-prod"}, {"provider": "@mock"}]}),
        ),
        config_spec("retry-only", json!({"retry": {"attempts": 2}})),
    ];
    cat.keys[0].config = Some("reliable".to_owned());
    cat
}

on_both_engines!(configs_apply_idempotently_and_keys_refer_to_them);
async fn configs_apply_idempotently_and_keys_refer_to_them(store: SqlStore) {
    let report = store.apply_catalog(&catalog_with_config()).await.unwrap();
    assert_eq!(report.changed_configs, ["reliable", "retry-only"]);
    let again = store.apply_catalog(&catalog_with_config()).await.unwrap();
    assert_eq!(
        again,
        ApplyReport::default(),
        "a second apply changes nothing"
    );

    let configs = store.list_configs().await.unwrap();
    let ids: Vec<&str> = configs.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["reliable", "retry-only"]);
    assert_eq!(configs[1].config, json!({"retry": {"attempts": 2}}));
    assert_eq!(configs[0].source, RecordSource::File);
    assert_eq!(
        key_named(&store, "backend").await.config.as_deref(),
        Some("reliable")
    );
    assert_eq!(key_named(&store, "alice").await.config, None);

    // A changed config is a change, and keeps its creation time.
    let created = configs[1].created_at_ms;
    let mut cat = catalog_with_config();
    cat.configs[1].config = json!({"retry": {"attempts": 3}});
    let report = store.apply_catalog(&cat).await.unwrap();
    assert_eq!(report.changed_configs, ["retry-only"]);
    let stored = store.get_config("retry-only").await.unwrap().unwrap();
    assert_eq!(stored.config, json!({"retry": {"attempts": 3}}));
    assert_eq!(stored.created_at_ms, created);

    // Detaching and dropping a config removes it.
    let mut cat = catalog_with_config();
    cat.keys[0].config = None;
    cat.configs.remove(0);
    let report = store.apply_catalog(&cat).await.unwrap();
    assert_eq!(report.removed_configs, ["reliable"]);
    assert_eq!(key_named(&store, "backend").await.config, None);
    assert!(store.get_config("reliable").await.unwrap().is_none());
}

on_both_engines!(a_config_naming_an_unknown_provider_fails_the_apply);
async fn a_config_naming_an_unknown_provider_fails_the_apply(store: SqlStore) {
    let mut cat = catalog_with_config();
    cat.configs[0].config = json!({"strategy": {"mode": "fallback"},
        "targets": [{"provider": "@openai-prod"}, {"provider": "@nowhere"}]});
    let err = store.apply_catalog(&cat).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "config `reliable`: targets[1].provider: no provider `@nowhere` in the catalog; add it \
         first, or name one of: @mock, @openai-prod"
    );
    assert!(
        store.list_configs().await.unwrap().is_empty(),
        "nothing applied"
    );
    assert!(store.list_providers().await.unwrap().is_empty());

    // Removing a provider a config routes to fails the same way.
    store.apply_catalog(&catalog_with_config()).await.unwrap();
    let mut cat = catalog_with_config();
    cat.providers.retain(|p| p.slug != "openai-prod");
    let err = store.apply_catalog(&cat).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config `reliable`: targets[0].provider: no provider `@openai-prod`"),
        "{err}"
    );
}

on_both_engines!(invalid_or_dangling_configs_are_rejected_before_writing);
async fn invalid_or_dangling_configs_are_rejected_before_writing(store: SqlStore) {
    let mut cat = catalog_with_config();
    cat.configs[1].config = json!({"retry": {"attempts": 9}});
    match store.apply_catalog(&cat).await.unwrap_err() {
        StoreError::InvalidConfig { id, path, .. } => {
            assert_eq!(
                (id.as_str(), path.as_str()),
                ("retry-only", "retry.attempts")
            );
        }
        other => panic!("{other}"),
    }
    let mut cat = catalog_with_config();
    cat.keys[1].config = Some("missing".to_owned());
    let err = store.apply_catalog(&cat).await.unwrap_err();
    assert!(
        err.to_string().contains("config `missing` is not declared"),
        "{err}"
    );
    let mut cat = catalog_with_config();
    cat.configs.push(cat.configs[0].clone());
    let err = store.apply_catalog(&cat).await.unwrap_err();
    assert_eq!(err.to_string(), "config `reliable` is declared twice");
    assert!(store.list_configs().await.unwrap().is_empty());
}

on_both_engines!(a_file_config_an_api_key_uses_stays_until_the_key_lets_go);
async fn a_file_config_an_api_key_uses_stays_until_the_key_lets_go(store: SqlStore) {
    store.apply_catalog(&catalog_with_config()).await.unwrap();
    let key = store
        .create_key(&crate::NewKey {
            name: "api-key".to_owned(),
            key_type: KeyType::Service,
            user: None,
            hash: KeyHash::of("prt-api-key-secret-0001"),
            hint: key_hint("prt-api-key-secret-0001"),
            allowed_models: None,
            config: Some("retry-only".to_owned()),
            log_payloads: true,
            limits: Default::default(),
            expires_at_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(key.source, RecordSource::Api);
    let mut cat = catalog_with_config();
    cat.configs.remove(1);
    let err = store.apply_catalog(&cat).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "config `retry-only` was removed from the catalog file, but keys still use it: \
         `api-key`; attach another config to them (or none) first"
    );
    // Once the key is revoked, the config can go; the revoked key loses the reference.
    store.revoke_key(&key.id).await.unwrap();
    let report = store.apply_catalog(&cat).await.unwrap();
    assert_eq!(report.removed_configs, ["retry-only"]);
    assert_eq!(
        store.get_key("api-key").await.unwrap().unwrap().config,
        None
    );
}

fn new_key(name: &str, secret: &str) -> crate::NewKey {
    crate::NewKey {
        name: name.to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(secret),
        hint: key_hint(secret),
        allowed_models: None,
        config: None,
        log_payloads: true,
        limits: Default::default(),
        expires_at_ms: None,
    }
}

fn api_provider(slug: &str, api_key: Option<&str>) -> ProviderRecord {
    let mut p = provider(slug, ProviderKind::OpenAi, api_key);
    p.source = RecordSource::Api;
    p
}

on_both_engines!(api_providers_are_created_replaced_and_deleted);
async fn api_providers_are_created_replaced_and_deleted(store: SqlStore) {
    store.apply_catalog(&catalog()).await.unwrap();
    store
        .create_provider(&api_provider("added", Some("sk-added")))
        .await
        .unwrap();
    let err = store
        .create_provider(&api_provider("added", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let stored = store.get_provider("added").await.unwrap().unwrap();
    assert_eq!(stored.source, RecordSource::Api);
    assert_eq!(stored.api_key, Some(Secret::new("sk-added")));
    let times = store.provider_times().await.unwrap();
    assert!(times["added"].created_at_ms > 0);

    // No api_key on replace keeps the stored one; a new one replaces it.
    let mut replacement = api_provider("added", None);
    replacement.models = Some(vec![model("m1")]);
    store.replace_provider(&replacement).await.unwrap();
    let stored = store.get_provider("added").await.unwrap().unwrap();
    assert_eq!(stored.api_key, Some(Secret::new("sk-added")));
    assert_eq!(stored.models, Some(vec![model("m1")]));
    store
        .replace_provider(&api_provider("added", Some("sk-rotated")))
        .await
        .unwrap();
    let stored = store.get_provider("added").await.unwrap().unwrap();
    assert_eq!(stored.api_key, Some(Secret::new("sk-rotated")));
    assert_eq!(stored.models, None);

    // The file's providers are not the API's; unknown ones are not found.
    let err = store
        .replace_provider(&api_provider("openai-prod", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("catalog file"), "{err}");
    assert!(matches!(
        store.delete_provider("mock").await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    assert!(matches!(
        store.delete_provider("nope").await.unwrap_err(),
        StoreError::NotFound(_)
    ));

    // A config routing to it keeps it.
    store
        .create_config("to-added", &json!({"provider": "@added"}))
        .await
        .unwrap();
    let err = store.delete_provider("added").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "provider `@added` cannot be deleted: configs route to it: `to-added`; change them first"
    );
    store.delete_config("to-added").await.unwrap();
    store.delete_provider("added").await.unwrap();
    assert!(store.get_provider("added").await.unwrap().is_none());
    // A later apply leaves API providers alone and does not bring this one back.
    assert_eq!(
        store.apply_catalog(&catalog()).await.unwrap(),
        ApplyReport::default()
    );
}

on_both_engines!(api_keys_are_created_patched_and_revoked);
async fn api_keys_are_created_patched_and_revoked(store: SqlStore) {
    store.apply_catalog(&catalog_with_config()).await.unwrap();
    let created = store
        .create_key(&new_key("made", "prt-made-secret-00000001"))
        .await
        .unwrap();
    assert_eq!(created.source, RecordSource::Api);
    assert_eq!(created.hash, KeyHash::of("prt-made-secret-00000001"));
    assert_eq!(store.get_key("made").await.unwrap().unwrap().id, created.id);
    assert_eq!(
        store.get_key(&created.id).await.unwrap().unwrap().name,
        "made"
    );
    assert!(store.get_key("nobody").await.unwrap().is_none());

    let dup_name = store
        .create_key(&new_key("made", "prt-other-secret-0000002"))
        .await
        .unwrap_err();
    assert!(
        dup_name.to_string().contains("already exists"),
        "{dup_name}"
    );
    let dup_secret = store
        .create_key(&new_key("other", "prt-made-secret-00000001"))
        .await
        .unwrap_err();
    assert!(
        matches!(dup_secret, StoreError::Conflict(_)),
        "{dup_secret}"
    );
    let mut admin = new_key("boss", "prt-boss-secret-00000003");
    admin.key_type = KeyType::Admin;
    assert!(matches!(
        store.create_key(&admin).await.unwrap_err(),
        StoreError::Invalid(_)
    ));
    let mut user = new_key("alice2", "prt-alice2-secret-000004");
    user.key_type = KeyType::User;
    assert!(matches!(
        store.create_key(&user).await.unwrap_err(),
        StoreError::Invalid(_)
    ));
    let mut configured = new_key("c", "prt-c-secret-000000000005");
    configured.config = Some("missing".to_owned());
    assert!(matches!(
        store.create_key(&configured).await.unwrap_err(),
        StoreError::Invalid(_)
    ));

    let patched = store
        .update_key(
            "made",
            &crate::KeyPatch {
                allowed_models: Some(Some(vec!["@mock".to_owned()])),
                config: Some(Some("reliable".to_owned())),
                log_payloads: Some(false),
                user: None,
                budget: None,
                rate_limit: None,
                expires_at_ms: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.allowed_models, Some(vec!["@mock".to_owned()]));
    assert_eq!(patched.config.as_deref(), Some("reliable"));
    assert!(!patched.log_payloads);
    let cleared = store
        .update_key(
            &created.id,
            &crate::KeyPatch {
                allowed_models: Some(None),
                config: Some(None),
                ..crate::KeyPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.allowed_models, None);
    assert_eq!(cleared.config, None);
    assert!(!cleared.log_payloads, "fields not in the patch stay");
    let service_user = store
        .update_key(
            "made",
            &crate::KeyPatch {
                user: Some(Some("bob".to_owned())),
                ..crate::KeyPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(service_user, StoreError::Invalid(_)));

    // File keys and the admin key are refused.
    store
        .ensure_admin_key(KeyHash::of("prt-admin-secret-000000"), "…0000", false)
        .await
        .unwrap();
    for name in ["backend", "admin"] {
        let err = store.revoke_key(name).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{name}: {err}");
    }

    let revoked = store.revoke_key("made").await.unwrap();
    let at = revoked.revoked_at_ms.unwrap();
    let again = store.revoke_key("made").await.unwrap();
    assert_eq!(
        again.revoked_at_ms,
        Some(at),
        "revoking twice keeps the first time"
    );
    assert!(matches!(
        store.revoke_key("nobody").await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}

on_both_engines!(api_configs_are_validated_and_kept_while_in_use);
async fn api_configs_are_validated_and_kept_while_in_use(store: SqlStore) {
    store.apply_catalog(&catalog_with_config()).await.unwrap();
    let created = store
        .create_config("api-cfg", &json!({"retry": {"attempts": 1}}))
        .await
        .unwrap();
    assert_eq!(created.source, RecordSource::Api);
    assert!(matches!(
        store
            .create_config("api-cfg", &json!({"retry": {"attempts": 1}}))
            .await
            .unwrap_err(),
        StoreError::Conflict(_)
    ));
    match store
        .create_config(
            "bad",
            &json!({"strategy": {"mode": "fallback"}, "targets": [{"provider": "@mock"}, {"provider": "@gone"}]}),
        )
        .await
        .unwrap_err()
    {
        StoreError::InvalidConfig { path, message, .. } => {
            assert_eq!(path, "targets[1].provider");
            assert!(message.contains("@gone"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert!(store.get_config("bad").await.unwrap().is_none());

    let replaced = store
        .replace_config("api-cfg", &json!({"retry": {"attempts": 4}}))
        .await
        .unwrap();
    assert_eq!(replaced.config, json!({"retry": {"attempts": 4}}));
    assert_eq!(replaced.created_at_ms, created.created_at_ms);
    assert!(matches!(
        store
            .replace_config("api-cfg", &json!({"retry": {"attempts": 6}}))
            .await
            .unwrap_err(),
        StoreError::InvalidConfig { .. }
    ));
    assert!(matches!(
        store
            .replace_config("reliable", &json!({"retry": {"attempts": 1}}))
            .await
            .unwrap_err(),
        StoreError::Conflict(_)
    ));
    assert!(matches!(
        store.delete_config("nope").await.unwrap_err(),
        StoreError::NotFound(_)
    ));

    let mut key = new_key("user-of-cfg", "prt-cfg-user-secret-0001");
    key.config = Some("api-cfg".to_owned());
    store.create_key(&key).await.unwrap();
    let err = store.delete_config("api-cfg").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "config `api-cfg` cannot be deleted: keys still use it: `user-of-cfg`; attach another \
         config to them (or none) first"
    );
    store.revoke_key("user-of-cfg").await.unwrap();
    store.delete_config("api-cfg").await.unwrap();
    assert_eq!(
        store.get_key("user-of-cfg").await.unwrap().unwrap().config,
        None
    );
    // An apply leaves API configs alone.
    store
        .create_config("kept", &json!({"provider": "@mock"}))
        .await
        .unwrap();
    store.apply_catalog(&catalog_with_config()).await.unwrap();
    assert!(store.get_config("kept").await.unwrap().is_some());
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_the_files_sqlite_makes_beside_it_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/portico.db");
    let store = SqlStore::open(&path, MasterKey::generate()).await.unwrap();
    store.apply_catalog(&catalog()).await.unwrap();
    // While the pool is open, WAL mode keeps a -wal and a -shm beside the database.
    let wal = dir.path().join("data/portico.db-wal");
    let shm = dir.path().join("data/portico.db-shm");
    assert!(wal.exists() && shm.exists());
    for file in [&path, &wal, &shm] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    store.close().await;
    // An older, world-readable database is tightened when opened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqlStore::open(&path, MasterKey::generate()).await;
    // (A new master key does not open the old secrets; the mode is fixed before that check.)
    drop(store);
    assert_eq!(mode(&path), 0o600);
}

// Every row is stamped with the store's clock, so a test can assert the times it reads back.
on_both_engines!(rows_are_stamped_with_the_stores_clock);
async fn rows_are_stamped_with_the_stores_clock(store: SqlStore) {
    let clock = Arc::new(portico_core::ManualClock::at(1_000));
    let store = store.with_clock(clock.clone());
    store.apply_catalog(&catalog_with_config()).await.unwrap();
    for config in store.list_configs().await.unwrap() {
        let times = (config.created_at_ms, config.updated_at_ms);
        assert_eq!(times, (1_000, 1_000), "{}", config.id);
    }
    assert_eq!(key_named(&store, "backend").await.created_at_ms, 1_000);

    clock.set(2_000);
    let made = store
        .create_key(&new_key("made", "prt-made-by-the-clock-test"))
        .await
        .unwrap();
    assert_eq!(made.created_at_ms, 2_000);
    store
        .create_provider(&api_provider("api-p", Some("sk-x")))
        .await
        .unwrap();
    let config = store
        .create_config("api-cfg", &json!({"retry": {"attempts": 1}}))
        .await
        .unwrap();
    assert_eq!((config.created_at_ms, config.updated_at_ms), (2_000, 2_000));

    clock.set(3_000);
    let revoked = store.revoke_key("made").await.unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(3_000));
    store
        .replace_provider(&api_provider("api-p", None))
        .await
        .unwrap();
    let times = &store.provider_times().await.unwrap()["api-p"];
    assert_eq!((times.created_at_ms, times.updated_at_ms), (2_000, 3_000));
    let config = store
        .replace_config("api-cfg", &json!({"retry": {"attempts": 2}}))
        .await
        .unwrap();
    assert_eq!((config.created_at_ms, config.updated_at_ms), (2_000, 3_000));
}

#[tokio::test]
async fn rotating_the_master_key_re_encrypts_every_secret_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let old = MasterKey::generate();
    let store = SqlStore::open(&path, old.clone()).await.unwrap();
    store.apply_catalog(&catalog()).await.unwrap();
    store.create_provider(&bedrock()).await.unwrap();
    let before = store.list_providers().await.unwrap();
    let before_bytes = {
        store.close().await;
        database_bytes(dir.path())
    };
    let store = SqlStore::open(&path, old.clone()).await.unwrap();

    let new = MasterKey::generate();
    let report = store.rotate_master_key(&new).await.unwrap();
    // openai-prod (API key), aws (credentials); the canary too.
    let with_secrets = before
        .iter()
        .filter(|p| p.api_key.is_some() || !p.credentials.is_empty())
        .count();
    assert!(with_secrets >= 2, "{before:?}");
    assert_eq!(report.providers, with_secrets);
    assert!(report.values > report.providers, "{report:?}");
    store.close().await;

    // The new key opens it, with every secret as it was; the old one is refused.
    let reopened = SqlStore::open(&path, new.clone()).await.unwrap();
    assert_eq!(reopened.list_providers().await.unwrap(), before);
    reopened.close().await;
    let err = SqlStore::open(&path, old.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    assert!(err.to_string().contains("master-key rotate"), "{err}");
    // Still no secret in plain text, and the blobs changed.
    let after_bytes = database_bytes(dir.path());
    assert!(!contains(&after_bytes, OPENAI_SECRET));
    assert!(!contains(&after_bytes, AWS_SECRET));
    assert_ne!(before_bytes, after_bytes);

    // A store opened with the old key before the rotation cannot rotate again: its key no
    // longer opens the canary, and nothing changes.
    let stale = SqlStore::open(&path, new.clone()).await.unwrap();
    let third = MasterKey::generate();
    let stale_old = SqlStore {
        master: old,
        ..stale.clone()
    };
    let err = stale_old.rotate_master_key(&third).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    assert_eq!(stale.list_providers().await.unwrap(), before);
    stale.close().await;
}
