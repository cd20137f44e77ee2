//! The catalog as a JSON document, for applying a file to a running instance (`portico apply`,
//! `POST /admin/v1/apply`).
//!
//! The pipeline of [`parse_str`](crate::parse_str) is split between the two ends:
//!
//! - the CLI reads the YAML, checks its shape and replaces `${VAR}` from *its own* environment
//!   (where the user keeps the secrets the file names): [`substitute_to_json`];
//! - the instance checks the shape again and validates the rest, with *its* environment for
//!   the rules that depend on where Portico runs (a bedrock region from `AWS_REGION`):
//!   [`parse_json_document`]. Nothing is substituted there: a request must not read the
//!   server's environment, and a `$${` the CLI turned into a literal `${` stays literal.
//!
//! The JSON keeps the file's order of fields, so when a file has several problems the one
//! reported is the one `portico serve --config` reports, with the same field path.

use crate::Catalog;
use crate::error::ConfigError;
use crate::file;
use crate::schema;
use crate::yaml::Value;

/// Reads catalog text, checks its shape and replaces `${VAR}` from `env`: the document as JSON
/// text, fields in the file's order, ready for [`parse_json_document`] on a running instance.
///
/// Errors are those of [`parse_str`](crate::parse_str) for the same stages (YAML syntax,
/// unknown or not-yet-supported fields, unset variables), worded the same way.
///
/// Two things JSON cannot write are carried as text: a non-text mapping key (as its YAML
/// text) and a non-finite float (`.inf` as `inf`, `.nan` as `NaN`), which the numeric fields
/// read back like any number written as a string.
pub fn substitute_to_json(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let doc = file::substituted(text, origin, env)?;
    serde_json::to_string(&doc).map_err(|e| {
        ConfigError::invalid(origin, "", format!("cannot write the catalog as JSON: {e}"))
    })
}

/// Validates a catalog document made by [`substitute_to_json`] (or written by hand as JSON),
/// exactly as [`parse_str`](crate::parse_str) validates a file after substitution. `origin`
/// names the document in messages (the client's file name, so errors read as they would from
/// `portico serve --config`); `env` serves the rules that depend on the environment Portico
/// runs in, never substitution. JSON `null` is the empty catalog, like an empty file.
pub fn parse_json_document(
    json: &[u8],
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, ConfigError> {
    // Read straight into the ordered document tree, not through `serde_json::Value`, whose
    // maps are sorted: the first error found must be the first in the file.
    let doc: Value = serde_json::from_slice(json).map_err(|e| {
        ConfigError::invalid(
            origin,
            "",
            format!("not a valid JSON document ({e}); send the catalog file's content as JSON"),
        )
    })?;
    schema::check(&doc, origin)?;
    file::read(doc, origin, env)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use portico_core::Secret;

    use super::*;
    use crate::parse_str;

    const ORIGIN: &str = "portico.yaml";

    fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<&str, &str> = pairs.iter().copied().collect();
        move |name| vars.get(name).map(|v| (*v).to_owned())
    }

    /// The file read both ways: by `portico serve --config` and through the document.
    fn both(
        text: &str,
        vars: &[(&'static str, &'static str)],
    ) -> (Result<Catalog, ConfigError>, Result<Catalog, ConfigError>) {
        let env = env(vars);
        let direct = parse_str(text, ORIGIN, &env);
        let via_document = substitute_to_json(text, ORIGIN, &env)
            .and_then(|json| parse_json_document(json.as_bytes(), ORIGIN, &env));
        (direct, via_document)
    }

    const FULL: &str = r#"
listen: 127.0.0.1:9999
admin_key: ${ADMIN}
auto_providers: "false"
providers:
  - slug: openai-prod
    kind: openai
    api_key: ${OPENAI}
    base_url: https://api.openai.com/v1/
    models:
      - gpt-4o-mini
      - id: gpt-4o
        name: GPT-4o
        pricing: { input_per_mtok: 2.5, output_per_mtok: 10, cache_read_per_mtok: "1.25" }
  - slug: slow
    kind: mock
    mock: { latency_ms: "${LATENCY:-7}", failure_rate: 0.5 }
  - slug: br
    kind: bedrock
    aws_access_key_id: AKIDEXAMPLE
    aws_secret_access_key: ${AWS_SECRET}
configs:
  - id: reliable
    config:
      strategy: { mode: fallback }
      targets: [ { provider: "@openai-prod" }, { provider: "@slow", weight: 2 } ]
keys:
  - name: backend
    key: ${BACKEND}
    config: reliable
    allowed_models: ["@openai-prod", "@slow/echo"]
  - name: alice
    type: user
    user: alice@example.com
    log_payloads: false
    budget: { cost_usd: 5, period: month }
budgets:
  - name: team-backend
    match: { metadata.team: backend }
    rate_limit: { requests_per_minute: "${RPM:-300}" }
"#;

    const VARS: &[(&str, &str)] = &[
        ("ADMIN", "admin-0123456789abcdef"),
        ("OPENAI", "sk-openai-$${not-a-var}"),
        ("AWS_SECRET", "aws-secret-value"),
        ("BACKEND", "backend-0123456789abcdef"),
        ("AWS_REGION", "eu-west-1"),
    ];

    #[test]
    fn a_document_validates_to_the_catalog_the_file_gives() {
        let (direct, via_document) = both(FULL, VARS);
        let direct = direct.unwrap();
        assert_eq!(via_document.unwrap(), direct);
        assert_eq!(direct.providers.len(), 3);
        assert!(!direct.auto_providers);
        // Every section travels, budgets and limits included.
        assert_eq!(direct.budgets.len(), 1);
        assert!(direct.keys[1].limits.budget.is_some());
    }

    #[test]
    fn substituted_text_is_not_substituted_again() {
        // The variable's value holds `$${`; after substitution it is literal text, and the
        // instance must keep it as it is rather than read its own environment.
        let env = env(&[("SECRET", "pa${HOME}ss")]);
        let text = "providers:\n  - slug: a\n    kind: openai\n    api_key: ${SECRET}\n  - slug: b\n    kind: openai\n    api_key: \"x$${y}\"\n";
        let json = substitute_to_json(text, ORIGIN, &env).unwrap();
        let catalog = parse_json_document(json.as_bytes(), ORIGIN, &|_| None).unwrap();
        assert_eq!(
            catalog.providers[0].api_key,
            Some(Secret::new("pa${HOME}ss"))
        );
        assert_eq!(catalog.providers[1].api_key, Some(Secret::new("x${y}")));
    }

    #[test]
    fn the_document_keeps_the_file_order() {
        let json = substitute_to_json(
            "providers:\n  - slug: a\n    kind: mock\n    api_key: k\n",
            ORIGIN,
            &|_| None,
        )
        .unwrap();
        let slug = json.find("\"slug\"").unwrap();
        let kind = json.find("\"kind\"").unwrap();
        let api_key = json.find("\"api_key\"").unwrap();
        assert!(slug < kind && kind < api_key, "{json}");
    }

    #[test]
    fn errors_are_the_ones_serve_reports() {
        let cases: &[&str] = &[
            // Validation: the field path and the fix.
            "providers:\n  - slug: a\n    kind: openai-compatible\n    base_url: not a url\n",
            // Of two type errors in one entry, the first in the file.
            "providers:\n  - slug: [1]\n    api_key: [2]\n",
            "providers:\n  - api_key: [2]\n    slug: [1]\n",
            // A price JSON cannot write as a number.
            "providers:\n  - slug: a\n    kind: mock\n    models:\n      - id: m\n        pricing: { input_per_mtok: .inf }\n",
            "providers:\n  - slug: a\n    kind: mock\n    mock: { failure_rate: .nan }\n",
            // Shape and substitution: found before anything is sent.
            "providers:\n  - slug: a\n    kind: openai\n    base_ur: x\n",
            "providers:\n  - slug: a\n    kind: openai\n    api_key: ${NOT_SET}\n",
            "providers: [\n",
            "keys:\n  - name: k\n    config: nowhere\n",
        ];
        for text in cases {
            let (direct, via_document) = both(text, &[]);
            let direct = direct.expect_err(text).to_string();
            let via_document = via_document.expect_err(text).to_string();
            assert_eq!(via_document, direct, "{text}");
            assert!(direct.starts_with("portico.yaml: "), "{direct}");
        }
        let (direct, _) = both(cases[1], &[]);
        assert!(
            direct
                .unwrap_err()
                .to_string()
                .contains("providers[0].slug"),
            "the first error in the file"
        );
    }

    #[test]
    fn a_bedrock_provider_without_region_is_left_to_the_instance() {
        // No rule depends on the environment any more: the region of a bedrock provider
        // without `aws_region` is found where the gateway runs (AWS_REGION, the profile).
        let json = substitute_to_json(
            "providers:\n  - slug: b\n    kind: bedrock\n",
            ORIGIN,
            &|_| None,
        )
        .unwrap();
        let with_region = env(&[("AWS_REGION", "us-east-1")]);
        assert!(parse_json_document(json.as_bytes(), ORIGIN, &with_region).is_ok());
        assert!(parse_json_document(json.as_bytes(), ORIGIN, &|_| None).is_ok());
    }

    #[test]
    fn an_empty_file_is_an_empty_catalog_and_bad_json_is_named() {
        let json = substitute_to_json("# nothing yet\n", ORIGIN, &|_| None).unwrap();
        assert_eq!(json, "null");
        let catalog = parse_json_document(json.as_bytes(), ORIGIN, &|_| None).unwrap();
        assert_eq!(catalog, parse_str("", ORIGIN, &|_| None).unwrap());
        assert!(catalog.auto_providers);

        let err = parse_json_document(b"{\"providers\": [", "request body", &|_| None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("request body: not a valid JSON document"),
            "{err}"
        );
        let err = parse_json_document(b"[1, 2]", "request body", &|_| None).unwrap_err();
        assert!(err.to_string().contains("must be a mapping"), "{err}");
    }
}
