//! Key states: gateway keys, expiry, rotation, and the SQLite migration that added them
//! (0006 rebuilds `keys`).

use std::borrow::Cow;
use std::sync::Arc;

use portico_core::{KeyHash, ManualClock, key_hint};

use super::test_support::on_both_engines;
use super::*;
use crate::{KeyPatch, KeySpec, NewKey};

fn new_key(name: &str, key_type: KeyType, secret: &str) -> NewKey {
    NewKey {
        name: name.to_owned(),
        key_type,
        user: (key_type == KeyType::User).then(|| "alice@example.com".to_owned()),
        hash: KeyHash::of(secret),
        hint: key_hint(secret),
        allowed_models: None,
        config: None,
        log_payloads: true,
        limits: Default::default(),
        expires_at_ms: None,
    }
}

fn file_key(name: &str, secret: &str, expires_at_ms: Option<i64>) -> KeySpec {
    KeySpec {
        name: name.to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(secret),
        hint: key_hint(secret),
        fixed: true,
        allowed_models: None,
        log_payloads: true,
        config: None,
        limits: Default::default(),
        expires_at_ms,
    }
}

on_both_engines!(gateway_keys_are_stored_and_listed_and_take_no_user);
async fn gateway_keys_are_stored_and_listed_and_take_no_user(store: SqlStore) {
    let made = store
        .create_key(&new_key(
            "edge-1",
            KeyType::Gateway,
            "prt-gw-edge-secret-0001",
        ))
        .await
        .unwrap();
    assert_eq!(made.key_type, KeyType::Gateway);
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed[0].key_type, KeyType::Gateway);
    assert_eq!(KeyType::parse("gateway"), Some(KeyType::Gateway));

    let mut with_user = new_key("edge-2", KeyType::Gateway, "prt-gw-edge-secret-0002");
    with_user.user = Some("bob".to_owned());
    let err = store.create_key(&with_user).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

on_both_engines!(expiry_is_set_on_create_changed_and_cleared_by_a_patch);
async fn expiry_is_set_on_create_changed_and_cleared_by_a_patch(store: SqlStore) {
    let mut key = new_key("temp", KeyType::Service, "prt-svc-temp-secret-0001");
    key.expires_at_ms = Some(1_900_000_000_000);
    let made = store.create_key(&key).await.unwrap();
    assert_eq!(made.expires_at_ms, Some(1_900_000_000_000));

    let patched = store
        .update_key(
            "temp",
            &KeyPatch {
                expires_at_ms: Some(Some(1_950_000_000_000)),
                ..KeyPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.expires_at_ms, Some(1_950_000_000_000));
    let untouched = store
        .update_key(
            "temp",
            &KeyPatch {
                log_payloads: Some(false),
                ..KeyPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        untouched.expires_at_ms,
        Some(1_950_000_000_000),
        "absent: kept"
    );
    let cleared = store
        .update_key(
            &made.id,
            &KeyPatch {
                expires_at_ms: Some(None),
                ..KeyPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.expires_at_ms, None);
}

on_both_engines!(the_files_expiry_is_applied_and_a_second_apply_changes_nothing);
async fn the_files_expiry_is_applied_and_a_second_apply_changes_nothing(store: SqlStore) {
    let apply = |expires| CatalogApply {
        keys: vec![file_key("svc", "prt-file-key-secret-0001", expires)],
        ..CatalogApply::default()
    };
    store
        .apply_catalog(&apply(Some(1_900_000_000_000)))
        .await
        .unwrap();
    let key = store.get_key("svc").await.unwrap().unwrap();
    assert_eq!(key.expires_at_ms, Some(1_900_000_000_000));
    let again = store
        .apply_catalog(&apply(Some(1_900_000_000_000)))
        .await
        .unwrap();
    assert_eq!(again, ApplyReport::default());
    store.apply_catalog(&apply(None)).await.unwrap();
    let key = store.get_key("svc").await.unwrap().unwrap();
    assert_eq!(key.expires_at_ms, None, "removed from the file: no expiry");
}

on_both_engines!(rotation_replaces_the_secret_and_keeps_the_key);
async fn rotation_replaces_the_secret_and_keeps_the_key(store: SqlStore) {
    let clock = Arc::new(ManualClock::at(1_000));
    let store = store.with_clock(Arc::clone(&clock) as Arc<dyn portico_core::Clock>);
    let mut key = new_key("rotating", KeyType::User, "prt-user-old-secret-0001");
    key.expires_at_ms = Some(9_000_000);
    let made = store.create_key(&key).await.unwrap();
    clock.advance(5_000);

    let new_secret = "prt-user-new-secret-0002";
    let rotated = store
        .rotate_key("rotating", KeyHash::of(new_secret), &key_hint(new_secret))
        .await
        .unwrap();
    assert_eq!(rotated.id, made.id);
    assert_eq!(rotated.name, made.name);
    assert_eq!(rotated.user, made.user);
    assert_eq!(rotated.created_at_ms, made.created_at_ms);
    assert_eq!(rotated.expires_at_ms, Some(9_000_000), "the expiry stays");
    assert_eq!(rotated.hash, KeyHash::of(new_secret));
    assert_eq!(rotated.hint, key_hint(new_secret));
    let hashes: Vec<KeyHash> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.hash)
        .collect();
    assert!(!hashes.contains(&KeyHash::of("prt-user-old-secret-0001")));

    // By id too; a secret another key has is refused.
    let other = store
        .create_key(&new_key(
            "other",
            KeyType::Service,
            "prt-svc-other-secret-01",
        ))
        .await
        .unwrap();
    let err = store
        .rotate_key(
            &made.id,
            KeyHash::of("prt-svc-other-secret-01"),
            &key_hint("prt-svc-other-secret-01"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    // A revoked key stays revoked.
    store.revoke_key(&other.id).await.unwrap();
    let err = store
        .rotate_key("other", KeyHash::of("prt-svc-x-0000000000001"), "h")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is revoked"), "{err}");
    let err = store
        .rotate_key("nobody", KeyHash::of("prt-svc-x-0000000000002"), "h")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

on_both_engines!(keys_of_the_file_are_rotated_in_the_file);
async fn keys_of_the_file_are_rotated_in_the_file(store: SqlStore) {
    store
        .apply_catalog(&CatalogApply {
            keys: vec![file_key("svc", "prt-file-key-secret-0001", None)],
            ..CatalogApply::default()
        })
        .await
        .unwrap();
    let err = store
        .rotate_key("svc", KeyHash::of("prt-file-key-secret-0002"), "h")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("declared in the catalog file"),
        "{err}"
    );
}

#[tokio::test]
async fn migration_0006_keeps_every_key_of_an_older_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let master = MasterKey::generate();
    {
        // A database as the version before 0006 left it.
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let mut older = sqlx::migrate!("./migrations/sqlite");
        older.migrations = Cow::Owned(
            older
                .migrations
                .iter()
                .filter(|m| m.version < 6)
                .cloned()
                .collect(),
        );
        older.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO configs (id, config, source, created_at, updated_at) \
             VALUES ('cfg', '{\"retry\":{\"attempts\":1}}', 'api', 1, 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        for (id, name, key_type, user, config, revoked) in [
            ("k1", "svc", "service", None, Some("cfg"), None),
            (
                "k2",
                "alice",
                "user",
                Some("alice@example.com"),
                None,
                Some(77_i64),
            ),
        ] {
            sqlx::query(
                "INSERT INTO keys (id, name, key_type, user_id, key_hash, hint, allowed_models, \
                 log_payloads, source, created_at, updated_at, revoked_at, config_id) \
                 VALUES ($1, $2, $3, $4, $5, 'hint', '[\"@mock\"]', 0, 'api', 5, 6, $6, $7)",
            )
            .bind(id)
            .bind(name)
            .bind(key_type)
            .bind(user)
            .bind(KeyHash::of(&format!("secret-of-{name}-000000")).to_hex())
            .bind(revoked)
            .bind(config)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query("INSERT INTO key_limits (key_id, limits) VALUES ('k1', '{}')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = SqlStore::open(&path, master).await.unwrap();
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let alice = &keys[0];
    assert_eq!(
        (alice.id.as_str(), alice.key_type, alice.user.as_deref()),
        ("k2", KeyType::User, Some("alice@example.com"))
    );
    assert_eq!(alice.revoked_at_ms, Some(77));
    assert_eq!(alice.expires_at_ms, None);
    let svc = &keys[1];
    assert_eq!(svc.config.as_deref(), Some("cfg"));
    assert_eq!(svc.hash, KeyHash::of("secret-of-svc-000000"));
    assert_eq!(svc.allowed_models, Some(vec!["@mock".to_owned()]));
    assert!(!svc.log_payloads);
    assert_eq!(svc.created_at_ms, 5);
    // The rebuilt table takes gateway keys and keeps its constraints.
    store
        .create_key(&new_key(
            "edge",
            KeyType::Gateway,
            "prt-gw-edge-secret-0009",
        ))
        .await
        .unwrap();
    let err = store
        .create_key(&new_key(
            "svc",
            KeyType::Service,
            "prt-svc-another-secret-1",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let fk = store.delete_config("cfg").await.unwrap_err();
    assert!(fk.to_string().contains("svc"), "{fk}");
    store.close().await;
}
