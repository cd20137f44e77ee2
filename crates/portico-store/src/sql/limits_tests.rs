//! Budgets and rate limits: a provider's and a key's limits through applies and the
//! admin methods, the named budgets of the `budgets:` list, and the ledger's rows.

use std::collections::BTreeMap;

use portico_core::{
    BudgetSpec, KeyHash, Limits, NamedBudget, Period, ProviderKind, RateLimitSpec, SpendState,
    Subject, WindowBucket, key_hint,
};

use super::test_support::on_both_engines;
use super::*;
use crate::{KeyPatch, KeySpec, NewKey, SpendStore};

fn budget(tokens: u64, period: Period) -> Limits {
    Limits {
        budget: Some(BudgetSpec {
            cost_usd: Some(12.5),
            tokens: Some(tokens),
            period,
        }),
        rate_limit: None,
    }
}

fn rate(requests: u64) -> Limits {
    Limits {
        budget: None,
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: Some(requests),
            tokens_per_minute: None,
        }),
    }
}

fn provider(slug: &str, limits: Limits) -> ProviderRecord {
    ProviderRecord {
        slug: slug.to_owned(),
        kind: ProviderKind::Mock,
        base_url: None,
        api_key: None,
        settings: serde_json::json!({}),
        credentials: BTreeMap::new(),
        models: None,
        source: RecordSource::File,
        limits,
    }
}

fn key(name: &str, limits: Limits) -> KeySpec {
    let secret = format!("prt-{name}-secret-0000");
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
        limits,
        expires_at_ms: None,
    }
}

fn team(name: &str, value: &str, limits: Limits) -> NamedBudget {
    NamedBudget {
        name: name.to_owned(),
        matches: BTreeMap::from([("team".to_owned(), value.to_owned())]),
        limits,
    }
}

on_both_engines!(limits_of_providers_keys_and_budgets_are_applied_idempotently);
async fn limits_of_providers_keys_and_budgets_are_applied_idempotently(store: SqlStore) {
    let mut catalog = CatalogApply {
        providers: vec![
            provider("p", budget(100, Period::Day)),
            provider("q", Limits::default()),
        ],
        keys: vec![key("svc", rate(60)), key("plain", Limits::default())],
        configs: Vec::new(),
        budgets: vec![team("team-backend", "backend", budget(5, Period::Week))],
        guardrails: Vec::new(),
    };
    let report = store.apply_catalog(&catalog).await.unwrap();
    assert_eq!(report.changed_budgets, ["team-backend"]);
    let provider_p = store.get_provider("p").await.unwrap().unwrap();
    assert_eq!(provider_p.limits, budget(100, Period::Day));
    assert!(
        store
            .get_provider("q")
            .await
            .unwrap()
            .unwrap()
            .limits
            .is_empty()
    );
    let svc = store.get_key("svc").await.unwrap().unwrap();
    assert_eq!(svc.limits, rate(60));
    let listed = store.list_keys().await.unwrap();
    assert_eq!(
        listed.iter().find(|k| k.name == "svc").unwrap().limits,
        rate(60)
    );
    assert!(
        listed
            .iter()
            .find(|k| k.name == "plain")
            .unwrap()
            .limits
            .is_empty()
    );
    let budgets = store.list_budgets().await.unwrap();
    assert_eq!(budgets.len(), 1);
    assert_eq!(budgets[0].budget, catalog.budgets[0]);
    assert_eq!(budgets[0].source, RecordSource::File);

    // The same catalog again changes nothing.
    assert_eq!(
        store.apply_catalog(&catalog).await.unwrap(),
        ApplyReport::default()
    );

    // Changed limits are written; the key keeps its id (and so its spend).
    catalog.providers[0].limits = rate(5);
    catalog.keys[0].limits = budget(7, Period::Month);
    catalog.budgets = vec![team("team-search", "search", rate(3))];
    let report = store.apply_catalog(&catalog).await.unwrap();
    assert_eq!(report.changed_providers, ["p"]);
    assert_eq!(report.changed_budgets, ["team-search"]);
    assert_eq!(report.removed_budgets, ["team-backend"]);
    assert_eq!(
        store.get_provider("p").await.unwrap().unwrap().limits,
        rate(5)
    );
    let again = store.get_key("svc").await.unwrap().unwrap();
    assert_eq!(again.id, svc.id);
    assert_eq!(again.limits, budget(7, Period::Month));
    catalog.keys[0].limits = Limits::default();
    store.apply_catalog(&catalog).await.unwrap();
    assert!(
        store
            .get_key("svc")
            .await
            .unwrap()
            .unwrap()
            .limits
            .is_empty()
    );

    // A file budget cannot take an API budget's name.
    store
        .create_budget(&team("api-team", "x", rate(1)))
        .await
        .unwrap();
    catalog.budgets.push(team("api-team", "y", rate(2)));
    assert!(matches!(
        store.apply_catalog(&catalog).await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    catalog.budgets.push(team("team-search", "z", rate(2)));
    let err = store.apply_catalog(&catalog).await.unwrap_err();
    assert!(err.to_string().contains("declared twice"), "{err}");
}

on_both_engines!(api_keys_and_providers_carry_their_limits);
async fn api_keys_and_providers_carry_their_limits(store: SqlStore) {
    let secret = "prt-api-limited-000000001";
    let created = store
        .create_key(&NewKey {
            name: "limited".to_owned(),
            key_type: KeyType::Service,
            user: None,
            hash: KeyHash::of(secret),
            hint: key_hint(secret),
            allowed_models: None,
            config: None,
            log_payloads: true,
            limits: budget(10, Period::Day),
            expires_at_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(created.limits, budget(10, Period::Day));
    let patched = store
        .update_key(
            "limited",
            &KeyPatch {
                rate_limit: Some(rate(9).rate_limit),
                ..KeyPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        patched.limits,
        Limits {
            budget: budget(10, Period::Day).budget,
            rate_limit: rate(9).rate_limit,
        }
    );
    let cleared = store
        .update_key(
            "limited",
            &KeyPatch {
                budget: Some(None),
                rate_limit: Some(None),
                ..KeyPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(cleared.limits.is_empty());
    let untouched = store
        .update_key(
            "limited",
            &KeyPatch {
                log_payloads: Some(false),
                ..KeyPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(untouched.limits.is_empty());

    let mut api = provider("api-p", rate(4));
    api.source = RecordSource::Api;
    store.create_provider(&api).await.unwrap();
    assert_eq!(
        store.get_provider("api-p").await.unwrap().unwrap().limits,
        rate(4)
    );
    api.limits = Limits::default();
    store.replace_provider(&api).await.unwrap();
    assert!(
        store
            .get_provider("api-p")
            .await
            .unwrap()
            .unwrap()
            .limits
            .is_empty()
    );
}

on_both_engines!(named_budgets_are_created_replaced_and_deleted_through_the_api);
async fn named_budgets_are_created_replaced_and_deleted_through_the_api(store: SqlStore) {
    let created = store.create_budget(&team("t", "a", rate(1))).await.unwrap();
    assert_eq!(created.source, RecordSource::Api);
    assert!(matches!(
        store
            .create_budget(&team("t", "b", rate(1)))
            .await
            .unwrap_err(),
        StoreError::Conflict(_)
    ));
    let replaced = store
        .replace_budget(&team("t", "b", budget(3, Period::Month)))
        .await
        .unwrap();
    assert_eq!(replaced.budget.matches["team"], "b");
    assert_eq!(replaced.created_at_ms, created.created_at_ms);
    assert_eq!(
        store.get_budget("t").await.unwrap().unwrap().budget,
        replaced.budget
    );
    store.delete_budget("t").await.unwrap();
    assert!(store.get_budget("t").await.unwrap().is_none());
    assert!(matches!(
        store.delete_budget("t").await.unwrap_err(),
        StoreError::NotFound(_)
    ));
    // A budget of the file is the file's.
    store
        .apply_catalog(&CatalogApply {
            budgets: vec![team("file-team", "f", rate(1))],
            ..CatalogApply::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        store
            .replace_budget(&team("file-team", "g", rate(1)))
            .await
            .unwrap_err(),
        StoreError::Conflict(_)
    ));
    assert!(matches!(
        store.delete_budget("file-team").await.unwrap_err(),
        StoreError::Conflict(_)
    ));
}

on_both_engines!(the_ledger_is_saved_and_loaded_by_subject);
async fn the_ledger_is_saved_and_loaded_by_subject(store: SqlStore) {
    assert!(store.load_spend().await.unwrap().is_empty());
    let state = |subject: Subject, tokens: u64| SpendState {
        subject,
        period: Some(Period::Month),
        period_start_ms: 1_796_083_200_000,
        cost_usd: 1.25,
        tokens,
        window: vec![WindowBucket {
            second: 1_796_562_000,
            requests: 2,
            tokens: 40,
        }],
        updated_at_ms: 1_796_562_000_500,
    };
    let key = state(Subject::Key("svc".into()), 10);
    let mut user = state(Subject::User("alice@example.com".into()), 20);
    user.period = None;
    user.window.clear();
    store
        .save_spend(&[key.clone(), user.clone()])
        .await
        .unwrap();
    let mut newer = key.clone();
    newer.tokens = 99;
    store.save_spend(&[newer.clone()]).await.unwrap();
    let loaded = store.load_spend().await.unwrap();
    assert_eq!(
        loaded,
        [newer, user],
        "upserted by subject, ordered by subject"
    );
    store.save_spend(&[]).await.unwrap();
}
