//! An apply's report object by object (the plan `portico apply` prints), dry runs, starts
//! without a catalog file, and guardrails written in the apply's transaction.

use std::collections::BTreeMap;

use portico_core::{BudgetSpec, KeyHash, Limits, Period, ProviderKind, Secret, key_hint};
use serde_json::json;

use super::SqlStore;
use super::test_support::on_both_engines;
use crate::{
    ApplyOptions, ApplyReport, CatalogApply, Change, ChangeAction, ConfigSpec, GuardrailSpec,
    KeySpec, KeyType, ProviderRecord, RecordSource, Store, StoreError,
};

const OPENAI_SECRET: &str = "sk-openai-first-secret";
const ROTATED_SECRET: &str = "sk-openai-rotated-secret";

fn provider(slug: &str, kind: ProviderKind, source: RecordSource) -> ProviderRecord {
    ProviderRecord {
        slug: slug.to_owned(),
        kind,
        base_url: None,
        api_key: None,
        settings: json!({}),
        credentials: BTreeMap::new(),
        models: None,
        source,
        limits: Limits::default(),
    }
}

/// A file key; `secret: None` stands for a generated one (a fresh candidate each apply).
fn key(name: &str, secret: Option<&str>) -> KeySpec {
    let candidate = format!("prt-generated-{name}-{}", uuid::Uuid::now_v7());
    let text = secret.unwrap_or(&candidate);
    KeySpec {
        name: name.to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(text),
        hint: key_hint(text),
        fixed: secret.is_some(),
        allowed_models: None,
        log_payloads: true,
        config: None,
        limits: Limits::default(),
        expires_at_ms: None,
    }
}

/// A guardrail of the file: `checks` as given, `deny` as said.
fn guardrail(id: &str, check: &str, deny: bool) -> GuardrailSpec {
    GuardrailSpec {
        id: id.to_owned(),
        guardrail: json!({"id": id, "checks": [{"id": check, "parameters": {}}], "deny": deny}),
    }
}

/// `@openai` (file), `@mock` (built in), a config routing to `@openai`, two guardrails, and
/// two keys: one with a fixed secret, one generated.
fn first() -> CatalogApply {
    let mut openai = provider("openai", ProviderKind::OpenAi, RecordSource::File);
    openai.api_key = Some(Secret::new(OPENAI_SECRET));
    let mut backend = key("backend", Some("prt-backend-fixed-one"));
    backend.config = Some("reliable".to_owned());
    CatalogApply {
        providers: vec![
            openai,
            provider("mock", ProviderKind::Mock, RecordSource::Default),
        ],
        configs: vec![ConfigSpec {
            id: "reliable".to_owned(),
            config: json!({"strategy": {"mode": "fallback"}, "targets": [{"provider": "@openai"}]}),
        }],
        keys: vec![backend, key("ci", None)],
        guardrails: vec![
            guardrail("pii-check", "portico.pii", true),
            guardrail("legacy", "default.wordCount", false),
        ],
        ..CatalogApply::default()
    }
}

/// `first()` changed: `@openai`'s key and base URL, `@mock` dropped, the config's retry added,
/// `pii-check` no longer denies, `legacy` dropped, `words` added, `backend` rotated with a
/// budget, `ci` dropped, `ops` added.
fn second() -> CatalogApply {
    let mut cat = first();
    cat.providers[0].api_key = Some(Secret::new(ROTATED_SECRET));
    cat.providers[0].base_url = Some("http://127.0.0.1:9/v1".to_owned());
    cat.providers.truncate(1);
    cat.configs[0].config = json!({
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "@openai"}],
        "retry": {"attempts": 2}
    });
    cat.keys[0] = key("backend", Some("prt-backend-fixed-two"));
    cat.keys[0].config = Some("reliable".to_owned());
    cat.keys[0].limits.budget = Some(BudgetSpec {
        cost_usd: Some(10.0),
        tokens: None,
        period: Period::Month,
    });
    cat.keys[1] = key("ops", Some("prt-ops-fixed-secret"));
    cat.guardrails = vec![
        guardrail("pii-check", "portico.pii", false),
        guardrail("words", "default.wordCount", true),
    ];
    cat
}

/// The report as plan lines: `~ provider openai: api_key (secret), base_url (file)`.
fn plan(report: &ApplyReport) -> Vec<String> {
    report.changes.iter().map(line).collect()
}

fn line(c: &Change) -> String {
    let symbol = match c.action {
        ChangeAction::Create => "+",
        ChangeAction::Update => "~",
        ChangeAction::Delete | ChangeAction::Revoke => "-",
    };
    let mut out = format!("{symbol} {} {}", c.object.as_str(), c.name);
    if !c.fields.is_empty() {
        let fields: Vec<String> = c
            .fields
            .iter()
            .map(|f| {
                if f.secret {
                    format!("{} (secret)", f.name)
                } else {
                    f.name.clone()
                }
            })
            .collect();
        out.push_str(&format!(": {}", fields.join(", ")));
    }
    out.push_str(&format!(" ({})", c.source.as_str()));
    if c.action == ChangeAction::Revoke {
        out.push_str(" revoked");
    }
    out
}

/// What the store holds, times included, to compare before and after.
async fn everything(store: &SqlStore) -> String {
    let times: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT name, updated_at, COALESCE(revoked_at, 0) FROM keys ORDER BY name")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{times:?}",
        store.list_providers().await.unwrap(),
        store.provider_times().await.unwrap(),
        store.list_configs().await.unwrap(),
        store.list_guardrails().await.unwrap(),
        store.list_keys().await.unwrap(),
    )
}

on_both_engines!(every_write_is_one_change_naming_the_fields_that_differ);
async fn every_write_is_one_change_naming_the_fields_that_differ(store: SqlStore) {
    let report = store.apply_catalog(&first()).await.unwrap();
    assert_eq!(
        plan(&report),
        [
            "+ provider mock (default)",
            "+ provider openai (file)",
            "+ config reliable (file)",
            "+ guardrail legacy (file)",
            "+ guardrail pii-check (file)",
            "+ key backend (file)",
            "+ key ci (file)",
        ]
    );
    let ci = report.changes.iter().find(|c| c.name == "ci").unwrap();
    assert_eq!(
        ci.note.as_deref(),
        Some("its secret is generated and shown once")
    );

    let report = store.apply_catalog(&second()).await.unwrap();
    assert_eq!(
        plan(&report),
        [
            "- provider mock (default)",
            "~ provider openai: base_url, api_key (secret) (file)",
            "~ config reliable: config.retry (file)",
            "- guardrail legacy (file)",
            "~ guardrail pii-check: deny (file)",
            "+ guardrail words (file)",
            "~ key backend: key (secret), budget (file)",
            "- key ci (file) revoked",
            "+ key ops (file)",
        ]
    );
    // The name lists of the report say the same.
    assert_eq!(report.changed_providers, ["openai"]);
    assert_eq!(report.removed_providers, ["mock"]);
    assert_eq!(report.rotated_keys, ["backend"]);
    assert_eq!(report.revoked_keys, ["ci"]);
    assert_eq!(report.changed_guardrails, ["pii-check", "words"]);
    assert_eq!(report.removed_guardrails, ["legacy"]);
    // A secret is named, never carried.
    let debug = format!("{report:?}");
    assert!(!debug.contains(ROTATED_SECRET) && !debug.contains(OPENAI_SECRET));

    // Nothing to do: nothing reported, nothing written.
    let before = everything(&store).await;
    assert_eq!(
        store.apply_catalog(&second()).await.unwrap(),
        ApplyReport::default()
    );
    assert_eq!(everything(&store).await, before);

    // A revoked key declared again is restored, and says so.
    let mut again = second();
    again.keys.push(key("ci", None));
    let report = store.apply_catalog(&again).await.unwrap();
    assert_eq!(plan(&report), ["~ key ci: revoked_at (file)"]);
    assert_eq!(
        report.changes[0].note.as_deref(),
        Some("declared again: restored with its id and spend")
    );
}

on_both_engines!(a_dry_run_reports_what_the_apply_then_does_and_writes_nothing);
async fn a_dry_run_reports_what_the_apply_then_does_and_writes_nothing(store: SqlStore) {
    store.apply_catalog(&first()).await.unwrap();
    let before = everything(&store).await;

    let dry_run = ApplyOptions {
        dry_run: true,
        ..ApplyOptions::default()
    };
    let planned = store.apply_catalog_with(&second(), dry_run).await.unwrap();
    assert_eq!(planned.changes.len(), 9, "{:?}", plan(&planned));
    assert_eq!(everything(&store).await, before, "a dry run wrote");

    let applied = store.apply_catalog(&second()).await.unwrap();
    assert_eq!(applied, planned);
    assert_ne!(everything(&store).await, before);

    // A dry run that would fail fails the same way, and still writes nothing.
    let mut broken = second();
    broken.configs[0].config = json!({"targets": [{"provider": "@nowhere"}]});
    let after = everything(&store).await;
    let err = store
        .apply_catalog_with(&broken, dry_run)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidConfig { .. }), "{err}");
    assert_eq!(everything(&store).await, after);
}

on_both_engines!(a_start_without_a_file_keeps_the_file_records);
async fn a_start_without_a_file_keeps_the_file_records(store: SqlStore) {
    store.apply_catalog(&first()).await.unwrap();
    let keep = ApplyOptions {
        keep_file_records: true,
        ..ApplyOptions::default()
    };
    let mut groq = provider("groq", ProviderKind::Groq, RecordSource::Env);
    groq.api_key = Some(Secret::new("gsk-from-env"));
    let environment = CatalogApply {
        providers: vec![
            groq,
            provider("mock", ProviderKind::Mock, RecordSource::Default),
        ],
        ..CatalogApply::default()
    };
    let report = store.apply_catalog_with(&environment, keep).await.unwrap();
    assert_eq!(plan(&report), ["+ provider groq (env)"]);
    let slugs: Vec<String> = store
        .list_providers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.slug)
        .collect();
    assert_eq!(slugs, ["groq", "mock", "openai"]);
    assert_eq!(store.list_configs().await.unwrap().len(), 1);
    assert_eq!(store.list_guardrails().await.unwrap().len(), 2);
    assert!(
        store
            .list_keys()
            .await
            .unwrap()
            .iter()
            .all(|k| k.revoked_at_ms.is_none())
    );

    // A variable gone from the environment takes its provider along; the file's stay.
    let report = store
        .apply_catalog_with(
            &CatalogApply {
                providers: vec![provider("mock", ProviderKind::Mock, RecordSource::Default)],
                ..CatalogApply::default()
            },
            keep,
        )
        .await
        .unwrap();
    assert_eq!(plan(&report), ["- provider groq (env)"]);
    assert!(store.get_provider("openai").await.unwrap().is_some());

    // Such an apply declares no record of a file.
    let err = store.apply_catalog_with(&first(), keep).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

on_both_engines!(guardrails_are_written_in_the_apply_s_transaction);
async fn guardrails_are_written_in_the_apply_s_transaction(store: SqlStore) {
    store.apply_catalog(&first()).await.unwrap();
    let before = everything(&store).await;

    // The guardrails are written before the configs are checked; the check fails the apply,
    // and none of them stays.
    let mut broken = second();
    broken.configs[0].config = json!({"targets": [{"provider": "@nowhere"}]});
    let err = store.apply_catalog(&broken).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidConfig { .. }), "{err}");
    assert_eq!(everything(&store).await, before, "a failed apply wrote");

    // A guardrail of the admin API in the way: the whole apply is refused, providers, configs
    // and keys written before it included.
    store
        .create_guardrail("by-api", &json!({"checks": [], "deny": false}))
        .await
        .unwrap();
    let before = everything(&store).await;
    let mut clash = second();
    clash
        .guardrails
        .push(guardrail("by-api", "default.wordCount", true));
    let err = store.apply_catalog(&clash).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("guardrail `by-api`"), "{err}");
    assert_eq!(everything(&store).await, before, "a refused apply wrote");

    // Declared twice: refused before anything is written.
    let mut twice = second();
    twice
        .guardrails
        .push(guardrail("words", "portico.pii", true));
    let err = store.apply_catalog(&twice).await.unwrap_err();
    assert!(err.to_string().contains("declared twice"), "{err}");

    // The apply itself, then the same file again: nothing to do. The API's guardrail stays.
    store.apply_catalog(&second()).await.unwrap();
    assert_eq!(
        store.apply_catalog(&second()).await.unwrap(),
        ApplyReport::default()
    );
    let ids: Vec<(String, RecordSource)> = store
        .list_guardrails()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.id, g.source))
        .collect();
    assert_eq!(
        ids,
        [
            ("by-api".to_owned(), RecordSource::Api),
            ("pii-check".to_owned(), RecordSource::File),
            ("words".to_owned(), RecordSource::File),
        ]
    );
}
