//! Budgets and rate limits in the file: `budget:` and `rate_limit:` of providers and keys,
//! and the top-level `budgets:` list (spec section 6), validated into `portico_core`'s
//! [`Limits`] and [`NamedBudget`].
//!
//! Rules: a budget sets `cost_usd` (USD, above 0), `tokens` (above 0) or both, and a
//! `period` of `day`, `week` or `month`; a rate limit sets `requests_per_minute`,
//! `tokens_per_minute` or both, above 0. A `budgets:` entry has a unique `name` (letters,
//! digits, `-`, `_`, `.`), a `match` of one or more `metadata.<key>: <value>` pairs (string
//! values, as `x-portkey-metadata` carries them), and a budget, a rate limit or both.

use std::collections::{BTreeMap, HashMap};

use portico_core::{BudgetSpec, Limits, NamedBudget, Period, RateLimitSpec};

use crate::error::{ConfigError, field_path, item_path};
use crate::file::{BudgetEntryFile, BudgetFile, RateLimitFile};
use crate::validate::{Validator, present};

/// Longest budget name (the same rule as a config id).
const MAX_NAME_CHARS: usize = 64;

impl Validator<'_> {
    /// `budget:` and `rate_limit:` of the object at `path`.
    pub(crate) fn limits(
        &self,
        budget: Option<BudgetFile>,
        rate_limit: Option<RateLimitFile>,
        path: &str,
    ) -> Result<Limits, ConfigError> {
        Ok(Limits {
            budget: budget
                .map(|b| self.budget(b, &field_path(path, "budget")))
                .transpose()?,
            rate_limit: rate_limit
                .map(|r| self.rate_limit(r, &field_path(path, "rate_limit")))
                .transpose()?,
        })
    }

    /// One `budget:` mapping (also `auth.jwt.budget`).
    pub(crate) fn budget(&self, raw: BudgetFile, path: &str) -> Result<BudgetSpec, ConfigError> {
        if let Some(usd) = raw.cost_usd
            && (!usd.is_finite() || usd <= 0.0)
        {
            return Err(self.invalid(
                &field_path(path, "cost_usd"),
                format!("{usd} is not a valid budget; cost_usd is USD per period, above 0"),
            ));
        }
        if raw.tokens == Some(0) {
            return Err(self.invalid(
                &field_path(path, "tokens"),
                "0 would refuse every request; tokens is the most tokens per period, above 0 \
                 (remove the budget to set none)",
            ));
        }
        if raw.cost_usd.is_none() && raw.tokens.is_none() {
            return Err(self.invalid(
                path,
                "sets neither cost_usd nor tokens; give one or both, like \
                 { cost_usd: 100, period: month }",
            ));
        }
        let period_path = field_path(path, "period");
        let Some(name) = present(raw.period) else {
            return Err(self.invalid(
                &period_path,
                "is required: day, week or month (calendar periods in UTC)",
            ));
        };
        let name = name.trim();
        let period = Period::parse(name).ok_or_else(|| {
            self.invalid(
                &period_path,
                format!(
                    "{name:?} is not a period; use day, week or month (calendar periods in UTC)"
                ),
            )
        })?;
        Ok(BudgetSpec {
            cost_usd: raw.cost_usd,
            tokens: raw.tokens,
            period,
        })
    }

    /// One `rate_limit:` mapping.
    pub(crate) fn rate_limit(
        &self,
        raw: RateLimitFile,
        path: &str,
    ) -> Result<RateLimitSpec, ConfigError> {
        for (value, field) in [
            (raw.requests_per_minute, "requests_per_minute"),
            (raw.tokens_per_minute, "tokens_per_minute"),
        ] {
            if value == Some(0) {
                return Err(self.invalid(
                    &field_path(path, field),
                    format!(
                        "0 would refuse every request; {field} must be above 0 (remove it to \
                         set no limit)"
                    ),
                ));
            }
        }
        if raw.requests_per_minute.is_none() && raw.tokens_per_minute.is_none() {
            return Err(self.invalid(
                path,
                "sets neither requests_per_minute nor tokens_per_minute; give one or both, like \
                 { requests_per_minute: 600 }",
            ));
        }
        Ok(RateLimitSpec {
            requests_per_minute: raw.requests_per_minute,
            tokens_per_minute: raw.tokens_per_minute,
        })
    }

    /// The `budgets:` list; names are unique.
    pub(crate) fn budgets(
        &self,
        raw: Vec<BudgetEntryFile>,
    ) -> Result<Vec<NamedBudget>, ConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, entry) in raw.into_iter().enumerate() {
            let path = item_path("budgets", i);
            let budget = self.named_budget(entry, &path)?;
            if let Some(first) = names.insert(budget.name.clone(), i) {
                return Err(self.invalid(
                    &field_path(&path, "name"),
                    format!(
                        "the name {:?} is already used by budgets[{first}]; budget names must be \
                         unique",
                        budget.name
                    ),
                ));
            }
            out.push(budget);
        }
        Ok(out)
    }

    /// One `budgets:` entry at `path` (empty for the admin API's body).
    pub(crate) fn named_budget(
        &self,
        raw: BudgetEntryFile,
        path: &str,
    ) -> Result<NamedBudget, ConfigError> {
        let name_path = field_path(path, "name");
        let Some(name) = present(raw.name) else {
            return Err(self.invalid(
                &name_path,
                "is required: the budget's name, like team-backend (its subject is \
                 budget:<name>)",
            ));
        };
        let valid = name.chars().count() <= MAX_NAME_CHARS
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(self.invalid(
                &name_path,
                format!(
                    "{name:?} is not a valid budget name; use 1 to {MAX_NAME_CHARS} letters, \
                     digits, `-`, `_` and `.`, starting with a letter or digit"
                ),
            ));
        }
        let match_path = field_path(path, "match");
        let Some(raw_match) = raw.matches.filter(|m| !m.is_empty()) else {
            return Err(self.invalid(
                &match_path,
                "is required: the metadata values a request must carry to fall under the \
                 budget, like { metadata.team: backend }",
            ));
        };
        let mut matches = BTreeMap::new();
        for (field, value) in raw_match {
            let at = field_path(&match_path, &field);
            let Some(key) = field.strip_prefix("metadata.").filter(|k| !k.is_empty()) else {
                return Err(self.invalid(
                    &at,
                    format!(
                        "{field:?} is not a metadata field; write metadata.<key>, like \
                         metadata.team (the keys of x-portkey-metadata)"
                    ),
                ));
            };
            let value = match value {
                serde_json::Value::String(s) if !s.trim().is_empty() => s,
                serde_json::Value::String(_) => {
                    return Err(self.invalid(&at, "is empty; give the value to match"));
                }
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                    return Err(self.invalid(
                        &at,
                        "must be a string: metadata values are strings (quote it)",
                    ));
                }
                _ => {
                    return Err(self.invalid(&at, "must be a string, the value to match"));
                }
            };
            matches.insert(key.to_owned(), value);
        }
        let limits = self.limits(raw.budget, raw.rate_limit, path)?;
        if limits.is_empty() {
            return Err(self.invalid(
                path,
                "sets neither budget nor rate_limit; give one or both, like budget: \
                 { cost_usd: 200, period: month }",
            ));
        }
        Ok(NamedBudget {
            name,
            matches,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use portico_core::{BudgetSpec, Limits, Period, RateLimitSpec};

    use crate::ConfigError;

    fn parse(text: &str) -> Result<crate::Catalog, ConfigError> {
        let env = |name: &str| (name == "TEAM_BUDGET").then(|| "250".to_owned());
        crate::parse_str(text, "c.yaml", &env)
    }

    #[track_caller]
    fn refused(text: &str, path: &str, needle: &str) {
        let err = parse(text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        let msg = err.to_string();
        assert_eq!(err.path(), Some(path), "{msg}");
        assert!(msg.starts_with(&format!("c.yaml: {path}: ")), "{msg}");
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }

    #[test]
    fn budgets_and_rate_limits_on_providers_keys_and_the_budgets_list() {
        let catalog = parse(
            r#"
providers:
  - slug: a
    kind: mock
    budget: { cost_usd: 500, tokens: 10000000, period: month }
    rate_limit: { requests_per_minute: 100 }
keys:
  - name: backend-service
    budget: { cost_usd: 100, period: week }
    rate_limit: { requests_per_minute: 600, tokens_per_minute: 200000 }
  - name: alice
    type: user
    user: alice@example.com
    budget: { tokens: "1000", period: day }
budgets:
  - name: team-backend
    match: { metadata.team: backend, metadata.env: prod }
    budget: { cost_usd: "${TEAM_BUDGET}", period: month }
    rate_limit: { requests_per_minute: 300, tokens_per_minute: 200000 }
"#,
        )
        .unwrap();
        assert_eq!(
            catalog.providers[0].limits,
            Limits {
                budget: Some(BudgetSpec {
                    cost_usd: Some(500.0),
                    tokens: Some(10_000_000),
                    period: Period::Month,
                }),
                rate_limit: Some(RateLimitSpec {
                    requests_per_minute: Some(100),
                    tokens_per_minute: None,
                }),
            }
        );
        assert_eq!(catalog.keys[0].limits.budget.unwrap().period, Period::Week);
        assert_eq!(catalog.keys[1].limits.budget.unwrap().tokens, Some(1000));
        let team = &catalog.budgets[0];
        assert_eq!(team.name, "team-backend");
        assert_eq!(team.matches.len(), 2);
        assert_eq!(team.matches["team"], "backend");
        assert_eq!(team.limits.budget.unwrap().cost_usd, Some(250.0));
        assert_eq!(
            team.match_json(),
            serde_json::json!({"metadata.team": "backend", "metadata.env": "prod"})
        );
    }

    #[test]
    fn limits_are_validated_with_field_paths() {
        let provider =
            |limits: &str| format!("providers:\n  - {{ slug: a, kind: mock, {limits} }}\n");
        refused(
            &provider("budget: { period: month }"),
            "providers[0].budget",
            "sets neither cost_usd nor tokens",
        );
        refused(
            &provider("budget: { cost_usd: 5 }"),
            "providers[0].budget.period",
            "is required: day, week or month",
        );
        refused(
            &provider("budget: { cost_usd: 5, period: year }"),
            "providers[0].budget.period",
            "\"year\" is not a period; use day, week or month",
        );
        refused(
            &provider("budget: { cost_usd: -1, period: day }"),
            "providers[0].budget.cost_usd",
            "above 0",
        );
        refused(
            &provider("budget: { tokens: 0, period: day }"),
            "providers[0].budget.tokens",
            "above 0",
        );
        refused(
            &provider("budget: { tokens: many, period: day }"),
            "providers[0].budget.tokens",
            "a whole number",
        );
        refused(
            &provider("budget: { usd: 5, period: day }"),
            "providers[0].budget.usd",
            "did you mean `cost_usd`?",
        );
        refused(
            &provider("rate_limit: {}"),
            "providers[0].rate_limit",
            "sets neither requests_per_minute nor tokens_per_minute",
        );
        refused(
            "keys:\n  - { name: k, rate_limit: { requests_per_minute: 0 } }\n",
            "keys[0].rate_limit.requests_per_minute",
            "above 0",
        );
        refused(
            "keys:\n  - { name: k, rate_limit: 5 }\n",
            "keys[0].rate_limit",
            "expected a mapping with requests_per_minute, tokens_per_minute",
        );
        refused(
            "keys:\n  - { name: a, type: user, user: u, budget: { tokens: 5, period: day } }\n  - { name: b, type: user, user: u, rate_limit: { requests_per_minute: 5 } }\n",
            "keys[1].rate_limit",
            "already has a budget or rate limit from keys[0]",
        );
    }

    #[test]
    fn budgets_list_entries_are_validated_with_field_paths() {
        let limits = "budget: { tokens: 5, period: day }";
        refused(
            &format!("budgets:\n  - {{ match: {{ metadata.team: a }}, {limits} }}\n"),
            "budgets[0].name",
            "is required",
        );
        refused(
            &format!(
                "budgets:\n  - {{ name: \"a b\", match: {{ metadata.team: a }}, {limits} }}\n"
            ),
            "budgets[0].name",
            "not a valid budget name",
        );
        refused(
            &format!("budgets:\n  - {{ name: t, {limits} }}\n"),
            "budgets[0].match",
            "is required",
        );
        refused(
            &format!("budgets:\n  - {{ name: t, match: {{ team: a }}, {limits} }}\n"),
            "budgets[0].match.team",
            "write metadata.<key>",
        );
        refused(
            &format!("budgets:\n  - {{ name: t, match: {{ metadata.tier: 1 }}, {limits} }}\n"),
            "budgets[0].match.metadata.tier",
            "quote it",
        );
        refused(
            "budgets:\n  - { name: t, match: { metadata.team: a } }\n",
            "budgets[0]",
            "sets neither budget nor rate_limit",
        );
        refused(
            &format!(
                "budgets:\n  - {{ name: t, match: {{ metadata.team: a }}, {limits} }}\n  - {{ name: t, match: {{ metadata.team: b }}, {limits} }}\n"
            ),
            "budgets[1].name",
            "already used by budgets[0]",
        );
        refused(
            "budgets:\n  - { name: t, match: [a], budget: { tokens: 5, period: day } }\n",
            "budgets[0].match",
            "a mapping of metadata.<key>: <value>",
        );
        refused(
            "budgets:\n  - { name: t, when: {} }\n",
            "budgets[0].when",
            "unknown field",
        );
    }

    #[test]
    fn the_admin_apis_bodies_follow_the_same_rules() {
        let budget = crate::parse_budget_json(
            &serde_json::json!({"name": "t", "match": {"metadata.team": "a"},
                                "rate_limit": {"tokens_per_minute": 10}}),
            "request body",
        )
        .unwrap();
        assert_eq!(
            budget.limits.rate_limit.unwrap().tokens_per_minute,
            Some(10)
        );
        let err = crate::parse_budget_json(
            &serde_json::json!({"name": "t", "match": {"metadata.team": "a"}, "budget": {"tokens": 1}}),
            "request body",
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("budget.period"));
        let limits = crate::parse_limits_json(
            Some(&serde_json::json!({"cost_usd": 1.5, "period": "day"})),
            Some(&serde_json::Value::Null),
            "request body",
        )
        .unwrap();
        assert_eq!(limits.budget.unwrap().cost_usd, Some(1.5));
        assert!(limits.rate_limit.is_none());
        let err =
            crate::parse_limits_json(None, Some(&serde_json::json!({"rpm": 3})), "request body")
                .unwrap_err();
        assert_eq!(err.path(), Some("rate_limit.rpm"));
        assert!(
            crate::parse_limits_json(None, None, "request body")
                .unwrap()
                .is_empty()
        );
    }
}
