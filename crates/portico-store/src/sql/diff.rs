//! Field by field: where a declared provider, key, config or guardrail differs from its
//! stored row, with the fields named as the catalog file names them.
//!
//! An apply writes an object exactly when this finds a difference, and reports exactly these
//! fields, so the plan and the writes cannot disagree. Each function destructures what is
//! declared, so a field added to a declaration does not compile until it is compared here
//! too.

use std::collections::{BTreeSet, HashMap};

use portico_core::{Limits, NamedBudget};

use super::apply::ProviderState;
use super::limits::limits_of;
use super::rows::{KeyRow, ModelRow, ProviderRow};
use crate::{
    ApplyReport, BudgetRecord, Change, ChangeAction, FieldChange, KeySpec, MasterKey, ObjectKind,
    RecordSource, StoreError,
};

/// The fields found to differ, in the order they are checked.
#[derive(Debug, Default)]
struct Fields(Vec<FieldChange>);

impl Fields {
    fn check(&mut self, name: impl Into<String>, differs: bool) {
        if differs {
            self.0.push(FieldChange {
                name: name.into(),
                secret: false,
            });
        }
    }

    fn check_secret(&mut self, name: impl Into<String>, differs: bool) {
        if differs {
            self.0.push(FieldChange {
                name: name.into(),
                secret: true,
            });
        }
    }
}

impl ProviderState {
    /// The fields where `row` (with its `models`) differs from this declared provider;
    /// empty when the row already stores exactly this.
    pub(super) fn changed_fields(
        &self,
        row: &ProviderRow,
        models: Option<&Vec<ModelRow>>,
        master: &MasterKey,
    ) -> Result<Vec<FieldChange>, StoreError> {
        let ProviderState {
            kind,
            base_url,
            api_key,
            credentials,
            settings,
            models: declared_models,
            source,
            limits,
        } = self;
        let mut out = Fields::default();
        out.check("kind", *kind != row.kind);
        out.check("base_url", *base_url != row.base_url);
        out.check_secret("api_key", *api_key != row.api_key(master)?);
        let stored = row.credentials(master)?;
        let names: BTreeSet<&String> = credentials.keys().chain(stored.keys()).collect();
        for name in names {
            out.check_secret(name.as_str(), credentials.get(name) != stored.get(name));
        }
        // A mock's settings are the file's `mock:` fields.
        let prefix = if *kind == "mock" { "mock." } else { "" };
        settings_fields(settings, &row.settings, prefix, &mut out);
        let stored_models = (row.has_models != 0).then(|| models.cloned().unwrap_or_default());
        out.check("models", *declared_models != stored_models);
        if *limits != row.limits {
            let before = out.0.len();
            limits_fields(
                &limits_of("providers", limits.as_deref())?,
                &limits_of("providers", row.limits.as_deref())?,
                &mut out,
            );
            // The same limits written another way are still rewritten, as before.
            out.check("limits", out.0.len() == before);
        }
        out.check("source", *source != row.source);
        Ok(out.0)
    }
}

/// `budget` and `rate_limit`, where they differ.
fn limits_fields(declared: &Limits, stored: &Limits, out: &mut Fields) {
    let Limits { budget, rate_limit } = declared;
    out.check("budget", *budget != stored.budget);
    out.check("rate_limit", *rate_limit != stored.rate_limit);
}

/// Settings are JSON objects kept as text: a difference in the text is a change (as it
/// always was), named by the members that differ, or `settings` when no member tells.
fn settings_fields(declared: &str, stored: &str, prefix: &str, out: &mut Fields) {
    if declared == stored {
        return;
    }
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    let before = out.0.len();
    if let (Some(serde_json::Value::Object(d)), Some(serde_json::Value::Object(s))) =
        (parse(declared), parse(stored))
    {
        let names: BTreeSet<&String> = d.keys().chain(s.keys()).collect();
        for name in names {
            out.check(format!("{prefix}{name}"), d.get(name) != s.get(name));
        }
    }
    if out.0.len() == before {
        out.check("settings", true);
    }
}

/// The fields where the stored key `row` (with its `stored_limits`) differs from its
/// declaration `spec`; `allowed_models` is the declaration's list as the JSON text it is
/// stored as.
pub(super) fn key_fields(
    spec: &KeySpec,
    row: &KeyRow,
    allowed_models: Option<&String>,
    stored_limits: &Limits,
) -> Vec<FieldChange> {
    let KeySpec {
        name: _,
        key_type,
        user,
        hash,
        hint: _,
        fixed,
        allowed_models: _,
        log_payloads,
        config,
        limits,
        expires_at_ms,
    } = spec;
    let mut out = Fields::default();
    out.check("type", row.key_type != key_type.as_str());
    out.check("user", row.user_id != *user);
    // A fixed secret in the file wins; a generated one was printed once and must stay.
    out.check_secret("key", *fixed && row.key_hash != hash.to_hex());
    out.check(
        "allowed_models",
        row.allowed_models.as_ref() != allowed_models,
    );
    out.check("log_payloads", (row.log_payloads != 0) != *log_payloads);
    out.check("config", row.config_id != *config);
    limits_fields(limits, stored_limits, &mut out);
    out.check("expires_at", row.expires_at != *expires_at_ms);
    // Declared again after the file dropped it: restored, same id and spend.
    out.check("revoked_at", row.revoked_at.is_some());
    out.0
}

/// The fields where a stored config (its JSON text) differs from the declared one, which is
/// `declared_text` once written: `config.targets`, `config.retry`, ... by top-level member, or
/// `config` when the whole differs otherwise.
pub(super) fn config_fields(
    declared: &serde_json::Value,
    declared_text: &str,
    stored_text: &str,
) -> Vec<FieldChange> {
    json_fields(declared, declared_text, stored_text, "config.", "config")
}

/// The fields where a stored guardrail (its JSON text) differs from the declared one, which
/// is `declared_text` once written: `checks`, `deny`, ... as the file's `guardrails:` entry
/// names them, or `guardrail` when the whole differs otherwise.
pub(super) fn guardrail_fields(
    declared: &serde_json::Value,
    declared_text: &str,
    stored_text: &str,
) -> Vec<FieldChange> {
    json_fields(declared, declared_text, stored_text, "", "guardrail")
}

/// A JSON object stored as text, compared by top-level member (named `{prefix}{member}`);
/// `whole` when the texts differ but no member tells (or one is not an object).
fn json_fields(
    declared: &serde_json::Value,
    declared_text: &str,
    stored_text: &str,
    prefix: &str,
    whole: &str,
) -> Vec<FieldChange> {
    let mut out = Fields::default();
    if declared_text == stored_text {
        return out.0;
    }
    if let (serde_json::Value::Object(d), Ok(serde_json::Value::Object(s))) = (
        declared,
        serde_json::from_str::<serde_json::Value>(stored_text),
    ) {
        let names: BTreeSet<&String> = d.keys().chain(s.keys()).collect();
        for name in names {
            out.check(format!("{prefix}{name}"), d.get(name) != s.get(name));
        }
    }
    if out.0.is_empty() {
        out.check(whole, true);
    }
    out.0
}

/// The budgets of the `budgets:` list an apply wrote, from the names it reports and the
/// budgets stored `before` it.
pub(super) fn budget_changes(
    before: &[BudgetRecord],
    declared: &[NamedBudget],
    report: &ApplyReport,
) -> Vec<Change> {
    let before: HashMap<&str, &NamedBudget> = before
        .iter()
        .map(|r| (r.budget.name.as_str(), &r.budget))
        .collect();
    let mut out = Vec::new();
    for name in &report.changed_budgets {
        let change = match (
            before.get(name.as_str()),
            declared.iter().find(|b| b.name == *name),
        ) {
            (Some(stored), Some(budget)) => {
                let NamedBudget {
                    name: _,
                    matches,
                    limits,
                } = budget;
                let mut fields = Fields::default();
                fields.check("match", *matches != stored.matches);
                limits_fields(limits, &stored.limits, &mut fields);
                Change::new(
                    ChangeAction::Update,
                    ObjectKind::Budget,
                    name,
                    RecordSource::File,
                )
                .with_fields(fields.0)
            }
            _ => Change::new(
                ChangeAction::Create,
                ObjectKind::Budget,
                name,
                RecordSource::File,
            ),
        };
        out.push(change);
    }
    for name in &report.removed_budgets {
        out.push(Change::new(
            ChangeAction::Delete,
            ObjectKind::Budget,
            name,
            RecordSource::File,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(fields: &[FieldChange]) -> Vec<(&str, bool)> {
        fields.iter().map(|f| (f.name.as_str(), f.secret)).collect()
    }

    #[test]
    fn settings_are_named_by_member_and_a_mock_by_its_file_fields() {
        let mut out = Fields::default();
        settings_fields(
            r#"{"aws_region":"eu-west-1","x":1}"#,
            r#"{"aws_region":"us-east-1","x":1}"#,
            "",
            &mut out,
        );
        assert_eq!(names(&out.0), [("aws_region", false)]);

        let mut out = Fields::default();
        settings_fields(r#"{"latency_ms":5}"#, r#"{}"#, "mock.", &mut out);
        assert_eq!(names(&out.0), [("mock.latency_ms", false)]);

        // Text that differs with equal members (written by another version) is still a change.
        let mut out = Fields::default();
        settings_fields(r#"{"a":1}"#, r#"{ "a": 1 }"#, "", &mut out);
        assert_eq!(names(&out.0), [("settings", false)]);

        let mut out = Fields::default();
        settings_fields(r#"{"a":1}"#, r#"{"a":1}"#, "", &mut out);
        assert!(out.0.is_empty());
    }

    #[test]
    fn configs_are_named_by_top_level_member() {
        let declared = json!({"retry": {"attempts": 2}, "targets": [{"provider": "@a"}]});
        let text = declared.to_string();
        assert!(config_fields(&declared, &text, &text).is_empty());
        let stored = json!({"retry": {"attempts": 3}, "targets": [{"provider": "@a"}], "x": 1});
        assert_eq!(
            names(&config_fields(&declared, &text, &stored.to_string())),
            [("config.retry", false), ("config.x", false)]
        );
        assert_eq!(
            names(&config_fields(&declared, &text, "not json")),
            [("config", false)]
        );
    }

    #[test]
    fn guardrails_are_named_by_their_fields_in_the_file() {
        let declared = json!({"id": "pii", "checks": [{"id": "portico.pii"}], "deny": true});
        let text = declared.to_string();
        assert!(guardrail_fields(&declared, &text, &text).is_empty());
        let stored = json!({"id": "pii", "checks": [{"id": "portico.pii"}], "deny": false});
        assert_eq!(
            names(&guardrail_fields(&declared, &text, &stored.to_string())),
            [("deny", false)]
        );
        assert_eq!(
            names(&guardrail_fields(&declared, &text, "[]")),
            [("guardrail", false)]
        );
    }
}
