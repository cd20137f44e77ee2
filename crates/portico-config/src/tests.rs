//! End-to-end tests of the pipeline: text in, [`Catalog`] or one-line [`ConfigError`] out.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use portico_core::{ProviderKind, Secret};
use serde_json::{Map, Value};

use crate::*;

const ORIGIN: &str = "catalog.yaml";

fn env() -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("OPENAI_API_KEY", "sk-openai-test"),
        ("PORTICO_ADMIN_KEY", "admin-0123456789abcdef"),
        ("BACKEND_KEY", "backend-0123456789abcdef"),
        ("MOCK_LATENCY", "20"),
        ("EMPTY", ""),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("GEMINI_API_KEY", "gemini-test-key"),
        ("AZURE_OPENAI_API_KEY", "azure-test-key"),
        ("AWS_ACCESS_KEY_ID", "AKIATESTKEYID"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-TOPSECRET"),
        ("AWS_SESSION_TOKEN", "aws-session-TOPSECRET"),
    ]);
    move |name| vars.get(name).map(|v| (*v).to_owned())
}

fn parse(text: &str) -> Result<Catalog, ConfigError> {
    parse_str(text, ORIGIN, &env())
}

/// A settings map of string values.
fn settings(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect()
}

/// A credentials map.
fn credentials(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
        .collect()
}

/// The provider entry of `catalog` with `slug`.
#[track_caller]
fn provider<'a>(catalog: &'a Catalog, slug: &str) -> &'a ProviderConfig {
    catalog
        .providers
        .iter()
        .find(|p| p.slug == slug)
        .unwrap_or_else(|| panic!("no provider {slug}"))
}

#[track_caller]
fn error_of(text: &str) -> ConfigError {
    match parse(text) {
        Ok(catalog) => panic!("expected an error, got {catalog:#?}"),
        Err(e) => e,
    }
}

/// Asserts the error is about `path`, and its one-line message starts with the origin and path
/// and contains each of `needles`.
#[track_caller]
fn assert_error(text: &str, path: &str, needles: &[&str]) -> String {
    let err = error_of(text);
    let msg = err.to_string();
    assert_eq!(err.path(), Some(path), "{msg}");
    assert!(
        msg.starts_with(&format!("{ORIGIN}: {path}: ")),
        "message does not start with origin and path: {msg}"
    );
    assert!(!msg.contains('\n'), "message spans lines: {msg}");
    for needle in needles {
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
    msg
}

const FULL: &str = r#"
# The spec's example, restricted to what this version implements.
listen: 127.0.0.1:8787
data_dir: .portico
admin_key: ${PORTICO_ADMIN_KEY}
auto_providers: false

providers:
  - slug: openai-prod
    kind: openai
    api_key: ${OPENAI_API_KEY}
    base_url: https://api.openai.com/v1/
    models:
      - gpt-4o-mini
      - id: gpt-4o
        name: GPT-4o
        pricing:
          input_per_mtok: 2.5
          output_per_mtok: 10
          cache_read_per_mtok: 1.25
          cache_write_per_mtok: 0
  - slug: local_llm
    kind: openai-compatible
    base_url: http://localhost:8000/v1
    models: [{ id: llama3, pricing: { input_per_mtok: 0.1 } }]
  - slug: sim
    kind: mock
    mock: { latency_ms: "${MOCK_LATENCY}", chunk_delay_ms: 5, failure_rate: 0.25 }
  - slug: ollama
    kind: ollama
  - slug: claude
    kind: anthropic
    api_key: ${ANTHROPIC_API_KEY}
    anthropic_version: "2023-01-01"
    anthropic_beta: "prompt-caching-2024-07-31, output-128k-2025-02-19"
  - slug: vertex
    kind: gemini
    api_key: ${GEMINI_API_KEY}
    vertex_project_id: my-project-123
    vertex_region: us-central1
  - slug: aws
    kind: bedrock
    aws_region: eu-west-1
    aws_access_key_id: ${AWS_ACCESS_KEY_ID}
    aws_secret_access_key: ${AWS_SECRET_ACCESS_KEY}
    aws_session_token: ${AWS_SESSION_TOKEN}
  - slug: azure
    kind: azure-openai
    api_key: ${AZURE_OPENAI_API_KEY}
    base_url: https://my-resource.openai.azure.com/
    azure_api_version: v1
    models: [gpt-4o-mini-deployment]

configs:
  - id: reliable
    config:
      strategy: { mode: fallback }
      targets: [ { provider: "@openai-prod" }, { provider: "@claude" } ]
      retry: { attempts: 3, on_status_codes: [429, 500, 502, 503] }

keys:
  - name: backend-service
    type: service
    key: ${BACKEND_KEY}
    allowed_models: ["@openai-prod", "@sim/echo", "@together/meta-llama/Llama-3.3-70B"]
    log_payloads: false
    config: reliable
  - name: alice
    type: user
    user: alice@example.com
"#;

#[test]
fn full_example_parses_into_the_expected_catalog() {
    let expected = Catalog {
        listen: Some("127.0.0.1:8787".parse().unwrap()),
        data_dir: Some(PathBuf::from(".portico")),
        admin_key: Some(Secret::new("admin-0123456789abcdef")),
        auto_providers: false,
        providers: vec![
            ProviderConfig {
                slug: "openai-prod".into(),
                kind: ProviderKind::OpenAi,
                api_key: Some(Secret::new("sk-openai-test")),
                base_url: Some("https://api.openai.com/v1".into()),
                models: Some(vec![
                    ModelConfig {
                        id: "gpt-4o-mini".into(),
                        name: None,
                        pricing: None,
                    },
                    ModelConfig {
                        id: "gpt-4o".into(),
                        name: Some("GPT-4o".into()),
                        pricing: Some(PricingConfig {
                            input_per_mtok: Some(2.5),
                            output_per_mtok: Some(10.0),
                            cache_read_per_mtok: Some(1.25),
                            cache_write_per_mtok: Some(0.0),
                        }),
                    },
                ]),
                mock: None,
                settings: Map::new(),
                credentials: BTreeMap::new(),
                limits: Default::default(),
            },
            ProviderConfig {
                slug: "local_llm".into(),
                kind: ProviderKind::OpenAiCompatible,
                api_key: None,
                base_url: Some("http://localhost:8000/v1".into()),
                models: Some(vec![ModelConfig {
                    id: "llama3".into(),
                    name: None,
                    pricing: Some(PricingConfig {
                        input_per_mtok: Some(0.1),
                        ..PricingConfig::default()
                    }),
                }]),
                mock: None,
                settings: Map::new(),
                credentials: BTreeMap::new(),
                limits: Default::default(),
            },
            ProviderConfig {
                slug: "sim".into(),
                kind: ProviderKind::Mock,
                api_key: None,
                base_url: None,
                models: None,
                mock: Some(MockSettings {
                    latency_ms: 20,
                    chunk_delay_ms: 5,
                    failure_rate: 0.25,
                }),
                settings: Map::new(),
                credentials: BTreeMap::new(),
                limits: Default::default(),
            },
            ProviderConfig {
                slug: "ollama".into(),
                kind: ProviderKind::Ollama,
                api_key: None,
                base_url: None,
                models: None,
                mock: None,
                settings: Map::new(),
                credentials: BTreeMap::new(),
                limits: Default::default(),
            },
            ProviderConfig {
                slug: "claude".into(),
                kind: ProviderKind::Anthropic,
                api_key: Some(Secret::new("sk-ant-test")),
                base_url: None,
                models: None,
                mock: None,
                settings: settings(&[
                    ("anthropic_version", "2023-01-01"),
                    (
                        "anthropic_beta",
                        "prompt-caching-2024-07-31,output-128k-2025-02-19",
                    ),
                ]),
                credentials: BTreeMap::new(),
                limits: Default::default(),
            },
            ProviderConfig {
                slug: "vertex".into(),
                kind: ProviderKind::Gemini,
                api_key: Some(Secret::new("gemini-test-key")),
                base_url: None,
                models: None,
                mock: None,
                settings: settings(&[
                    ("vertex_project_id", "my-project-123"),
                    ("vertex_region", "us-central1"),
                ]),
                credentials: BTreeMap::new(),
                limits: Default::default(),
            },
            ProviderConfig {
                slug: "aws".into(),
                kind: ProviderKind::Bedrock,
                api_key: None,
                base_url: None,
                models: None,
                mock: None,
                settings: settings(&[("aws_region", "eu-west-1")]),
                credentials: credentials(&[
                    ("aws_access_key_id", "AKIATESTKEYID"),
                    ("aws_secret_access_key", "aws-secret-TOPSECRET"),
                    ("aws_session_token", "aws-session-TOPSECRET"),
                ]),
                limits: Default::default(),
            },
            ProviderConfig {
                slug: "azure".into(),
                kind: ProviderKind::AzureOpenAi,
                api_key: Some(Secret::new("azure-test-key")),
                base_url: Some("https://my-resource.openai.azure.com".into()),
                models: Some(vec![ModelConfig {
                    id: "gpt-4o-mini-deployment".into(),
                    name: None,
                    pricing: None,
                }]),
                mock: None,
                settings: settings(&[("azure_api_version", "v1")]),
                credentials: BTreeMap::new(),
                limits: Default::default(),
            },
        ],
        configs: vec![RoutingConfigEntry {
            id: "reliable".into(),
            config: serde_json::json!({
                "strategy": {"mode": "fallback"},
                "targets": [{"provider": "@openai-prod"}, {"provider": "@claude"}],
                "retry": {"attempts": 3, "on_status_codes": [429, 500, 502, 503]}
            }),
        }],
        keys: vec![
            KeyConfig {
                name: "backend-service".into(),
                kind: KeyKind::Service,
                user: None,
                key: Some(Secret::new("backend-0123456789abcdef")),
                allowed_models: Some(vec![
                    "@openai-prod".into(),
                    "@sim/echo".into(),
                    "@together/meta-llama/Llama-3.3-70B".into(),
                ]),
                log_payloads: false,
                config: Some("reliable".into()),
                limits: Default::default(),
                expires_at_ms: None,
            },
            KeyConfig {
                name: "alice".into(),
                kind: KeyKind::User,
                user: Some("alice@example.com".into()),
                key: None,
                allowed_models: None,
                log_payloads: true,
                config: None,
                limits: Default::default(),
                expires_at_ms: None,
            },
        ],
        budgets: Vec::new(),
        auth: Default::default(),
        guardrails: Vec::new(),
        webhook_allow: Vec::new(),
    };
    assert_eq!(parse(FULL).unwrap(), expected);
}

#[test]
fn empty_file_is_an_empty_catalog_with_auto_providers() {
    for text in ["", "# only a comment\n", "providers:\nkeys:\n"] {
        let catalog = parse(text).unwrap();
        assert_eq!(
            catalog,
            Catalog {
                auto_providers: true,
                ..Catalog::default()
            },
            "{text:?}"
        );
    }
}

#[test]
fn substitution_defaults_and_escapes() {
    let catalog = parse(
        r#"
data_dir: ${DATA_DIR:-/var/lib/portico}
providers:
  - slug: local
    kind: openai-compatible
    base_url: http://${HOST:-localhost}:8000/v1
    models: ["$${NOT_A_VAR}", "cost$"]
keys:
  - name: ${KEY_NAME:-ci}
    key: $${literal-0123456789}
"#,
    )
    .unwrap();
    assert_eq!(catalog.data_dir, Some(PathBuf::from("/var/lib/portico")));
    assert_eq!(
        catalog.providers[0].base_url.as_deref(),
        Some("http://localhost:8000/v1")
    );
    let models = catalog.providers[0].models.as_ref().unwrap();
    assert_eq!(models[0].id, "${NOT_A_VAR}");
    assert_eq!(models[1].id, "cost$");
    assert_eq!(catalog.keys[0].name, "ci");
    assert_eq!(
        catalog.keys[0].key.as_ref().unwrap().expose(),
        "${literal-0123456789}"
    );
}

#[test]
fn blank_optional_values_count_as_absent() {
    let catalog = parse(
        r#"
admin_key: ${PORTICO_ADMIN_KEY_UNSET:-}
listen: ${EMPTY}
auto_providers: ${AUTO:-}
providers:
  - { slug: compat, kind: openai-compatible, base_url: "http://h/v1", api_key: "${EMPTY}" }
keys:
  - { name: k, key: "${EMPTY}", log_payloads: "${LOG:-false}" }
"#,
    )
    .unwrap();
    assert_eq!(catalog.admin_key, None);
    assert_eq!(catalog.listen, None);
    assert!(catalog.auto_providers);
    assert_eq!(catalog.providers[0].api_key, None);
    assert_eq!(catalog.keys[0].key, None);
    assert!(!catalog.keys[0].log_payloads);
}

#[test]
fn missing_variable_names_the_variable_and_the_field() {
    let msg = assert_error(
        "providers:\n  - slug: a\n    kind: openai\n    api_key: ${ANTHROPIC_KEY}\n",
        "providers[0].api_key",
        &["environment variable `ANTHROPIC_KEY` is not set"],
    );
    assert!(matches!(
        error_of("admin_key: ${NOPE}\n"),
        ConfigError::Substitution {
            source: SubstituteError::Unset(_),
            ..
        }
    ));
    assert!(msg.contains("${ANTHROPIC_KEY:-default}"), "{msg}");
    assert_error("data_dir: ${OOPS\n", "data_dir", &["is not closed"]);
}

#[test]
fn merge_keys_share_settings_between_entries() {
    let catalog = parse(
        r#"
providers:
  - &base { slug: one, kind: openai-compatible, base_url: "http://h/v1" }
  - { <<: *base, slug: two }
"#,
    )
    .unwrap();
    assert_eq!(catalog.providers[1].slug, "two");
    assert_eq!(
        catalog.providers[1].base_url.as_deref(),
        Some("http://h/v1")
    );
}

#[test]
fn guardrails_are_compiled_with_field_paths() {
    let catalog = parse(
        "guardrails:\n  - id: short\n    checks:\n      - id: default.wordCount\n        parameters: { maxWords: 5 }\n    deny: true\nwebhook_allow: [\"hooks.internal\"]\n",
    )
    .unwrap();
    assert_eq!(catalog.guardrails[0].id, "short");
    assert!(catalog.guardrails[0].deny);
    assert_eq!(catalog.webhook_allow, vec!["hooks.internal".to_owned()]);
    assert_error(
        "guardrails:\n  - id: g\n    checks:\n      - id: default.regexMatch\n        parameters: { rule: \"(\" }\n",
        "guardrails[0].checks[0].parameters.rule",
        &["not a valid regex"],
    );
    assert_error(
        "guardrails:\n  - checks: []\n",
        "guardrails[0].id",
        &["is required"],
    );
    assert_error(
        "guardrails:\n  - { id: a, checks: [] }\n  - { id: a, checks: [] }\n",
        "guardrails[1].id",
        &["already used"],
    );
}

#[test]
fn configs_are_validated_with_field_paths() {
    let cases = [
        (
            "configs:\n  - id: r\n    config: { strategy: { mode: loadbalance }, targets: [ { provider: \"@a\" }, { provider: \"@b\", weight: -1 } ] }\n",
            "configs[0].config.targets[1].weight",
            "",
        ),
        (
            "configs:\n  - id: r\n    config: { retry: { attempts: 9 } }\n",
            "configs[0].config.retry.attempts",
            "",
        ),
        (
            "configs:\n  - id: r\n    config: { strategy: { mode: fallback }, targets: [], bogus: 1 }\n",
            "configs[0].config",
            "",
        ),
        (
            "configs:\n  - id: r\n    config: { retry: { attempts: 1 } }\n  - id: r\n    config: { retry: { attempts: 2 } }\n",
            "configs[1].id",
            "already used by configs[0]",
        ),
        (
            "configs:\n  - id: \"{bad}\"\n    config: { retry: { attempts: 1 } }\n",
            "configs[0].id",
            "not a valid config id",
        ),
        ("configs:\n  - id: r\n", "configs[0].config", "is required"),
        (
            "configs:\n  - config: { retry: { attempts: 1 } }\n",
            "configs[0].id",
            "is required",
        ),
        (
            "configs:\n  - id: r\n    config: { retry: { attempts: 1 } }\n    strategy: x\n",
            "configs[0].strategy",
            "unknown field",
        ),
        (
            "configs:\n  - id: r\n    config: { retry: { attempts: 1 } }\nkeys:\n  - { name: k, config: other }\n",
            "keys[0].config",
            "no config \"other\" under `configs:`",
        ),
        (
            "keys:\n  - { name: k, config: other }\n",
            "keys[0].config",
            "the file declares none",
        ),
    ];
    for (text, path, needle) in cases {
        let err = error_of(text);
        let msg = err.to_string();
        // The unknown-field case inside `config` reports the path of the field itself.
        let expected_path = if text.contains("bogus") {
            "configs[0].config.bogus"
        } else {
            path
        };
        assert_eq!(err.path(), Some(expected_path), "{msg}");
        assert!(
            msg.starts_with(&format!("{ORIGIN}: {expected_path}: ")),
            "{msg}"
        );
        assert!(msg.contains(needle), "{msg}");
    }
}

#[test]
fn a_key_names_a_declared_config() {
    let catalog = parse(
        "configs:\n  - id: only-retry\n    config: { retry: { attempts: 2 } }\nkeys:\n  - { name: k, config: only-retry }\n",
    )
    .unwrap();
    assert_eq!(catalog.configs.len(), 1);
    assert_eq!(catalog.configs[0].id, "only-retry");
    assert_eq!(catalog.keys[0].config.as_deref(), Some("only-retry"));
}

#[test]
fn unknown_fields_list_the_allowed_ones() {
    let msg = assert_error(
        "providers:\n  - { slug: a, kind: mock, base_ur: x }\n",
        "providers[0].base_ur",
        &[
            "unknown field",
            "slug, kind, api_key, base_url, models, mock",
            "did you mean `base_url`?",
        ],
    );
    // Budgets are supported (limits.rs has their rules) and offered.
    assert!(msg.contains("budget, rate_limit"), "{msg}");

    assert_error(
        "provider: []\n",
        "provider",
        &[
            "listen, data_dir, admin_key, auto_providers, providers, configs, keys",
            "`providers`",
        ],
    );
    assert_error(
        "keys:\n  - { name: k, kind: user }\n",
        "keys[0].kind",
        &[
            "name, type, user, key, allowed_models, log_payloads",
            "did you mean `type`?",
        ],
    );
    assert_error(
        "providers:\n  - { slug: a, kind: mock, models: [{ id: m, price: {} }] }\n",
        "providers[0].models[0].price",
        &["id, name, pricing"],
    );
    assert_error(
        "providers:\n  - { slug: a, kind: mock, models: [{ id: m, pricing: { input: 1 } }] }\n",
        "providers[0].models[0].pricing.input",
        &["input_per_mtok, output_per_mtok"],
    );
    assert_error(
        "providers:\n  - { slug: a, kind: mock, mock: { latency: 1 } }\n",
        "providers[0].mock.latency",
        &[
            "latency_ms, chunk_delay_ms, failure_rate",
            "did you mean `latency_ms`?",
        ],
    );
}

#[test]
fn ill_typed_fields_name_their_path() {
    assert_error(
        "providers:\n  - { slug: a, kind: mock, mock: { latency_ms: -5 } }\n",
        "providers[0].mock.latency_ms",
        &["expected a whole number, 0 or more, found -5"],
    );
    assert_error(
        "providers:\n  - { slug: a, kind: mock, mock: { failure_rate: lots } }\n",
        "providers[0].mock.failure_rate",
        &["expected a number, found the string \"lots\""],
    );
    assert_error(
        "providers:\n  - slug: a\n    kind: mock\n    models:\n      - id: m\n        pricing: { output_per_mtok: [1] }\n",
        "providers[0].models[0].pricing.output_per_mtok",
        &["expected a number, found a list"],
    );
    assert_error(
        "auto_providers: maybe\n",
        "auto_providers",
        &["true or false"],
    );
    assert_error(
        "providers:\n  - { slug: [a], kind: mock }\n",
        "providers[0].slug",
        &["expected a string"],
    );
    assert_error(
        "keys:\n  - { name: k, allowed_models: [5] }\n",
        "keys[0].allowed_models[0]",
        &["expected a string"],
    );
    assert_error(
        "providers: oops\n",
        "providers",
        &["must be a list of provider entries"],
    );
    assert_error("keys: [k]\n", "keys[0]", &["expected a key entry"]);
}

/// Every validation rule, with the field path its message must name.
#[test]
fn every_rule_has_a_message_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        // Top level.
        (
            "listen: localhost:8787\n",
            "listen",
            "is not an IP address and port",
        ),
        // Provider slug and kind.
        (
            "providers:\n  - { kind: mock }\n",
            "providers[0].slug",
            "is required",
        ),
        (
            "providers:\n  - { slug: My Provider, kind: mock }\n",
            "providers[0].slug",
            "\"My Provider\" is not a valid slug",
        ),
        (
            "providers:\n  - { slug: a }\n",
            "providers[0].kind",
            "is required: one of openai, openai-compatible",
        ),
        (
            "providers:\n  - { slug: a, kind: claude }\n",
            "providers[0].kind",
            "unknown provider kind \"claude\"; expected one of: openai, openai-compatible, mistral",
        ),
        (
            "providers:\n  - { slug: a, kind: OpenAI }\n",
            "providers[0].kind",
            "kinds are lowercase: write openai",
        ),
        // Kind-specific fields on the wrong kind.
        (
            "providers:\n  - { slug: a, kind: openai, api_key: k, aws_region: us-east-1 }\n",
            "providers[0].aws_region",
            "is only allowed on kind bedrock (this provider is kind openai); remove it, or set `kind: bedrock`",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, aws_secret_access_key: s }\n",
            "providers[0].aws_secret_access_key",
            "is only allowed on kind bedrock (this provider is kind mock)",
        ),
        (
            "providers:\n  - { slug: a, kind: openai, api_key: k, azure_api_version: v1 }\n",
            "providers[0].azure_api_version",
            "is only allowed on kind azure-openai",
        ),
        (
            "providers:\n  - { slug: a, kind: anthropic, api_key: k, vertex_region: us-east5 }\n",
            "providers[0].vertex_region",
            "is only allowed on kind gemini (this provider is kind anthropic)",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini, api_key: k, anthropic_beta: x }\n",
            "providers[0].anthropic_beta",
            "is only allowed on kind anthropic (this provider is kind gemini)",
        ),
        // bedrock.
        (
            "providers:\n  - { slug: a, kind: bedrock, aws_region: US East }\n",
            "providers[0].aws_region",
            "\"US East\" is not an AWS region; write one like us-east-1",
        ),
        (
            "providers:\n  - { slug: a, kind: bedrock, aws_region: us-east-1, aws_access_key_id: AKIA }\n",
            "providers[0].aws_secret_access_key",
            "is required with aws_access_key_id",
        ),
        (
            "providers:\n  - { slug: a, kind: bedrock, aws_region: us-east-1, aws_secret_access_key: s }\n",
            "providers[0].aws_access_key_id",
            "is required with aws_secret_access_key",
        ),
        (
            "providers:\n  - { slug: a, kind: bedrock, aws_region: us-east-1, aws_session_token: t }\n",
            "providers[0].aws_session_token",
            "is only used with aws_access_key_id and aws_secret_access_key",
        ),
        (
            "providers:\n  - { slug: a, kind: bedrock, aws_region: us-east-1, api_key: k, aws_access_key_id: i, aws_secret_access_key: s }\n",
            "providers[0].api_key",
            "either api_key (a Bedrock API key, sent as a bearer token) or aws_access_key_id",
        ),
        // azure-openai.
        (
            "providers:\n  - { slug: a, kind: azure-openai, base_url: \"https://r.openai.azure.com\", azure_tenant_id: t-1 }\n",
            "providers[0].azure_client_id",
            "(missing: azure_client_id, azure_client_secret)",
        ),
        (
            "providers:\n  - { slug: a, kind: azure-openai, base_url: \"https://r.openai.azure.com\", azure_client_secret: s }\n",
            "providers[0].azure_tenant_id",
            "azure_tenant_id, azure_client_id and azure_client_secret together",
        ),
        (
            "providers:\n  - { slug: a, kind: azure-openai, base_url: \"https://r.openai.azure.com\", azure_client_id: \"a b\" }\n",
            "providers[0].azure_client_id",
            "is not an Entra ID",
        ),
        (
            "providers:\n  - { slug: a, kind: azure-openai, base_url: \"https://r.openai.azure.com\", api_key: k, azure_tenant_id: t, azure_client_id: c, azure_client_secret: s }\n",
            "providers[0].api_key",
            "either api_key or Entra ID",
        ),
        (
            "providers:\n  - { slug: a, kind: anthropic, api_key: k, azure_client_secret: s }\n",
            "providers[0].azure_client_secret",
            "is only allowed on kind azure-openai",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini, vertex_project_id: p-1, vertex_region: us-central1, vertex_service_account_json: \"{not json\" }\n",
            "providers[0].vertex_service_account_json",
            "is not JSON",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini, vertex_project_id: p-1, vertex_region: us-central1, vertex_service_account_json: '{\"type\": \"authorized_user\"}' }\n",
            "providers[0].vertex_service_account_json",
            "is not a service-account key",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini, vertex_project_id: p-1, vertex_region: us-central1, vertex_service_account_json: '{\"type\": \"service_account\", \"client_email\": \"x@y\"}' }\n",
            "providers[0].vertex_service_account_json",
            "has no `private_key`",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini, api_key: k, vertex_service_account_json: '{\"type\": \"service_account\", \"client_email\": \"x@y\", \"private_key\": \"k\"}' }\n",
            "providers[0].vertex_project_id",
            "is required with vertex_service_account_json",
        ),
        (
            "providers:\n  - { slug: a, kind: azure-openai, api_key: k }\n",
            "providers[0].base_url",
            "is required for kind azure-openai: your resource's endpoint, like https://NAME.openai.azure.com",
        ),
        (
            "providers:\n  - { slug: a, kind: azure-openai, api_key: k, base_url: \"https://r.openai.azure.com/openai/\" }\n",
            "providers[0].base_url",
            "give only the resource endpoint",
        ),
        (
            "providers:\n  - { slug: a, kind: azure-openai, api_key: k, base_url: \"https://r.openai.azure.com/openai/deployments/d\" }\n",
            "providers[0].base_url",
            "includes the API path",
        ),
        (
            "providers:\n  - { slug: a, kind: azure-openai, api_key: k, base_url: \"https://r.openai.azure.com\", azure_api_version: latest }\n",
            "providers[0].azure_api_version",
            "\"latest\" is not an Azure OpenAI API version",
        ),
        // gemini (Vertex AI).
        (
            "providers:\n  - { slug: a, kind: gemini, api_key: k, vertex_project_id: p-1 }\n",
            "providers[0].vertex_region",
            "is required with vertex_project_id",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini, api_key: k, vertex_region: us-central1 }\n",
            "providers[0].vertex_project_id",
            "is required with vertex_region",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini, api_key: k, vertex_project_id: My Project, vertex_region: us-central1 }\n",
            "providers[0].vertex_project_id",
            "\"My Project\" is not a Google Cloud project ID",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini, api_key: k, vertex_project_id: p-1, vertex_region: \"us/central\" }\n",
            "providers[0].vertex_region",
            "is not a Google Cloud region",
        ),
        // anthropic.
        (
            "providers:\n  - { slug: a, kind: anthropic }\n",
            "providers[0].api_key",
            "api_key: ${ANTHROPIC_API_KEY}",
        ),
        (
            "providers:\n  - { slug: a, kind: anthropic, api_key: k, anthropic_version: v1 }\n",
            "providers[0].anthropic_version",
            "\"v1\" is not an Anthropic API version; write a date like 2023-06-01",
        ),
        (
            "providers:\n  - { slug: a, kind: anthropic, api_key: k, anthropic_beta: \"a,,b\" }\n",
            "providers[0].anthropic_beta",
            "is not a list of beta names",
        ),
        (
            "providers:\n  - { slug: a, kind: gemini }\n",
            "providers[0].api_key",
            "api_key: ${GEMINI_API_KEY}",
        ),
        // api_key.
        (
            "providers:\n  - { slug: a, kind: openai }\n",
            "providers[0].api_key",
            "is required for kind openai",
        ),
        (
            "providers:\n  - { slug: a, kind: groq, api_key: \"\" }\n",
            "providers[0].api_key",
            "api_key: ${GROQ_API_KEY}",
        ),
        // base_url.
        (
            "providers:\n  - { slug: a, kind: openai-compatible }\n",
            "providers[0].base_url",
            "is required for kind openai-compatible",
        ),
        (
            "providers:\n  - { slug: a, kind: ollama, base_url: not a url }\n",
            "providers[0].base_url",
            "\"not a url\" is not an absolute http(s) URL",
        ),
        (
            "providers:\n  - { slug: a, kind: ollama, base_url: \"localhost:11434\" }\n",
            "providers[0].base_url",
            "is not an absolute http(s) URL",
        ),
        (
            "providers:\n  - { slug: a, kind: ollama, base_url: \"ftp://h/v1\" }\n",
            "providers[0].base_url",
            "is not an absolute http(s) URL",
        ),
        (
            "providers:\n  - { slug: a, kind: ollama, base_url: \"http://h/v1?x=1\" }\n",
            "providers[0].base_url",
            "has a query",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, base_url: \"http://h/v1\" }\n",
            "providers[0].base_url",
            "remove base_url",
        ),
        // models.
        (
            "providers:\n  - { slug: a, kind: mock, models: [] }\n",
            "providers[0].models",
            "is an empty list",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, models: [\"\"] }\n",
            "providers[0].models[0]",
            "is required",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, models: [{ name: X }] }\n",
            "providers[0].models[0].id",
            "is required",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, models: [\" m\"] }\n",
            "providers[0].models[0]",
            "leading or trailing spaces",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, models: [m, { id: m }] }\n",
            "providers[0].models[1].id",
            "already listed as providers[0].models[0]",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, models: [{ id: m, pricing: { input_per_mtok: -1 } }] }\n",
            "providers[0].models[0].pricing.input_per_mtok",
            "-1 is not a valid price",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, models: [{ id: m, pricing: { cache_read_per_mtok: .nan } }] }\n",
            "providers[0].models[0].pricing.cache_read_per_mtok",
            "NaN is not a valid price",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, models: [{ id: m, pricing: { cache_write_per_mtok: .inf } }] }\n",
            "providers[0].models[0].pricing.cache_write_per_mtok",
            "is not a valid price",
        ),
        // mock.
        (
            "providers:\n  - { slug: a, kind: ollama, mock: { latency_ms: 1 } }\n",
            "providers[0].mock",
            "only allowed on kind mock (this provider is kind ollama)",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, mock: { failure_rate: 1.5 } }\n",
            "providers[0].mock.failure_rate",
            "1.5 is out of range",
        ),
        (
            "providers:\n  - { slug: a, kind: mock, mock: { failure_rate: -0.1 } }\n",
            "providers[0].mock.failure_rate",
            "out of range",
        ),
        // Keys.
        (
            "keys:\n  - { type: service }\n",
            "keys[0].name",
            "is required",
        ),
        (
            "keys:\n  - { name: \"a\\u0007b\" }\n",
            "keys[0].name",
            "control characters",
        ),
        (
            "keys:\n  - { name: \" k\" }\n",
            "keys[0].name",
            "leading or trailing spaces",
        ),
        (
            "keys:\n  - { name: k, type: admin }\n",
            "keys[0].type",
            "\"admin\" is not a key type; use service, user or gateway",
        ),
        (
            "keys:\n  - { name: k, type: user }\n",
            "keys[0].user",
            "is required for `type: user` keys",
        ),
        (
            "keys:\n  - { name: k, user: bob }\n",
            "keys[0].user",
            "only allowed on `type: user` keys",
        ),
        (
            "keys:\n  - { name: k, key: short-secret }\n",
            "keys[0].key",
            "at least 16 characters",
        ),
        (
            "admin_key: short-secret\n",
            "admin_key",
            "at least 16 characters",
        ),
        (
            "keys:\n  - { name: k, allowed_models: [] }\n",
            "keys[0].allowed_models",
            "is an empty list",
        ),
        (
            "keys:\n  - { name: k, allowed_models: [\"@a\", gpt-4o] }\n",
            "keys[0].allowed_models[1]",
            "\"gpt-4o\" must start with `@`",
        ),
        (
            "keys:\n  - { name: k, allowed_models: [\"@Bad Slug/x\"] }\n",
            "keys[0].allowed_models[0]",
            "invalid provider slug",
        ),
        (
            "keys:\n  - { name: k, allowed_models: [\"@\"] }\n",
            "keys[0].allowed_models[0]",
            "invalid provider slug",
        ),
        (
            "keys:\n  - { name: k, allowed_models: [\"@a/\"] }\n",
            "keys[0].allowed_models[0]",
            "has no model after `/`",
        ),
    ];
    for (text, path, needle) in cases {
        assert_error(text, path, &[needle]);
    }
}

#[test]
fn duplicates_are_rejected() {
    assert_error(
        "providers:\n  - { slug: a, kind: mock }\n  - { slug: b, kind: mock }\n  - { slug: a, kind: ollama }\n",
        "providers[2].slug",
        &["the slug \"a\" is already used by providers[0]; slugs must be unique"],
    );
    assert_error(
        "keys:\n  - { name: alice }\n  - { name: alice }\n",
        "keys[1].name",
        &["the name \"alice\" is already used by keys[0]"],
    );
}

#[test]
fn secrets_are_never_echoed() {
    let secret = "sk-live-TOPSECRET";
    let cases = [
        // Wrongly typed: serde would print the number.
        (
            "admin_key: 12345678901234567890\n".to_owned(),
            "12345678901234567890",
        ),
        (
            "providers:\n  - { slug: a, kind: openai, api_key: 98765432109876 }\n".to_owned(),
            "98765432109876",
        ),
        ("keys:\n  - { name: k, key: true }\n".to_owned(), "true"),
        (
            format!("keys:\n  - {{ name: k, key: [\"{secret}\"] }}\n"),
            secret,
        ),
        // Too short.
        (
            "keys:\n  - { name: k, key: TOPSECRET }\n".to_owned(),
            "TOPSECRET",
        ),
        ("admin_key: TOPSECRET\n".to_owned(), "TOPSECRET"),
        // Stray whitespace.
        (
            format!("providers:\n  - {{ slug: a, kind: openai, api_key: \"{secret}\\n\" }}\n"),
            secret,
        ),
        (
            format!("keys:\n  - {{ name: k, key: \"{secret} 0123456789\" }}\n"),
            secret,
        ),
        // Broken `${` inside a secret.
        (format!("admin_key: \"{secret}${{\"\n"), secret),
        (
            format!("admin_key: \"{secret}${{TOP-SECRET}}\"\n"),
            "TOP-SECRET",
        ),
    ];
    for (text, leaked) in &cases {
        let err = error_of(text);
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains(leaked), "{text:?} leaked: {shown}");
        assert!(err.path().is_some(), "{shown}");
    }
    // A parsed catalog does not print its secrets either.
    let shown = format!("{:?}", parse(FULL).unwrap());
    assert!(!shown.contains("sk-openai-test"), "{shown}");
    assert!(!shown.contains("backend-0123456789abcdef"), "{shown}");
}

#[test]
fn credentials_in_a_bad_base_url_are_not_echoed() {
    let msg = assert_error(
        "providers:\n  - { slug: a, kind: ollama, base_url: \"ftp://user:hunter2@h/\" }\n",
        "providers[0].base_url",
        &["the URL is not an absolute http(s) URL"],
    );
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn base_url_is_normalised() {
    let catalog = parse(
        "providers:\n  - { slug: a, kind: openai-compatible, base_url: \" HTTP://Example.COM:8080/v1// \" }\n  - { slug: b, kind: openai-compatible, base_url: \"http://h:1\" }\n",
    )
    .unwrap();
    assert_eq!(
        catalog.providers[0].base_url.as_deref(),
        Some("http://example.com:8080/v1")
    );
    assert_eq!(catalog.providers[1].base_url.as_deref(), Some("http://h:1"));
}

#[test]
fn yaml_syntax_errors_give_line_and_column() {
    let err = error_of("listen: 127.0.0.1:8787\nproviders:\n  - slug: a\n   kind: mock\n");
    let ConfigError::Syntax {
        location: Some((line, column)),
        ..
    } = &err
    else {
        panic!("expected a syntax error with a location, got {err:?}");
    };
    assert_eq!(*line, 4, "{err}");
    assert!(*column > 0, "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "catalog.yaml: line 4, column {column}: invalid YAML: "
        )),
        "{msg}"
    );
    // The position is shown once, up front (the parser's context may add another one).
    assert!(!msg.contains(&format!("line 4 column {column}")), "{msg}");

    let err = error_of("keys: [unclosed\n");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");

    let err = error_of("listen: a\nlisten: b\n");
    assert!(err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn load_file_reads_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.yaml");
    std::fs::write(&path, FULL).unwrap();
    let catalog = load_file(&path, &env()).unwrap();
    assert_eq!(catalog.providers.len(), 8);

    std::fs::write(&path, "listen: nowhere\n").unwrap();
    let msg = load_file(&path, &env()).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}: listen: ", path.display())),
        "{msg}"
    );

    let missing = dir.path().join("missing.yaml");
    let err = load_file(&missing, &env()).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.starts_with("cannot read catalog file "), "{msg}");
}

#[test]
fn the_document_must_be_a_mapping() {
    let err = error_of("- a\n- b\n");
    assert_eq!(err.path(), Some(""));
    assert_eq!(
        err.to_string(),
        "catalog.yaml: the file must be a mapping of sections (listen, providers, keys, ...), \
         found a list"
    );
}

#[test]
fn every_kind_is_accepted_with_its_defaults() {
    let catalog = parse(
        r#"
providers:
  - { slug: claude, kind: anthropic, api_key: k }
  - { slug: gem, kind: gemini, api_key: k }
  - { slug: azure, kind: azure-openai, api_key: k, base_url: "https://r.openai.azure.com" }
  - { slug: aws, kind: bedrock, aws_region: us-west-2 }
  - { slug: aws-key, kind: bedrock, aws_region: us-west-2, api_key: bedrock-api-key }
"#,
    )
    .unwrap();
    let claude = provider(&catalog, "claude");
    assert_eq!(claude.kind, ProviderKind::Anthropic);
    assert_eq!(
        claude.settings,
        settings(&[("anthropic_version", DEFAULT_ANTHROPIC_VERSION)])
    );
    assert_eq!(provider(&catalog, "gem").settings, Map::new());
    assert_eq!(
        provider(&catalog, "azure").settings,
        settings(&[("azure_api_version", DEFAULT_AZURE_API_VERSION)])
    );
    assert_eq!(DEFAULT_AZURE_API_VERSION, "2024-10-21");
    assert_eq!(DEFAULT_ANTHROPIC_VERSION, "2023-06-01");
    let aws = provider(&catalog, "aws");
    assert_eq!(aws.api_key, None);
    assert!(aws.credentials.is_empty());
    assert_eq!(
        provider(&catalog, "aws-key").api_key,
        Some(Secret::new("bedrock-api-key"))
    );
}

#[test]
fn cloud_providers_may_leave_their_credentials_to_the_cloud_chains() {
    // Bedrock: no region and no keys; the adapter reads AWS_REGION, the profile and the
    // default credentials chain at run time.
    let text = "providers:\n  - { slug: aws, kind: bedrock }\n";
    let catalog = parse_str(text, ORIGIN, &|_: &str| None).unwrap();
    assert_eq!(catalog.providers[0].settings, Map::new());
    assert!(catalog.providers[0].credentials.is_empty());

    // Azure OpenAI without api_key: Entra ID client credentials, or a managed identity.
    let catalog = parse(
        "providers:\n  - { slug: az, kind: azure-openai, base_url: \"https://r.openai.azure.com\", azure_tenant_id: contoso.onmicrosoft.com, azure_client_id: 00000000-0000-0000-0000-000000000001, azure_client_secret: entra-secret-TOPSECRET }\n  - { slug: mi, kind: azure-openai, base_url: \"https://r.openai.azure.com\" }\n",
    )
    .unwrap();
    let az = provider(&catalog, "az");
    assert_eq!(az.api_key, None);
    assert_eq!(
        az.settings["azure_tenant_id"],
        serde_json::json!("contoso.onmicrosoft.com")
    );
    assert_eq!(
        az.credentials.get("azure_client_secret"),
        Some(&Secret::new("entra-secret-TOPSECRET"))
    );
    assert!(!format!("{az:?}").contains("TOPSECRET"));
    assert_eq!(provider(&catalog, "mi").api_key, None);

    // Vertex AI without api_key: a service account, or application default credentials.
    let account = r#"{"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nTOPSECRET\n-----END PRIVATE KEY-----\n"}"#;
    let env = move |name: &str| (name == "SA").then(|| account.to_owned());
    let catalog = parse_str(
        "providers:\n  - { slug: v, kind: gemini, vertex_project_id: p-1, vertex_region: us-central1, vertex_service_account_json: \"${SA}\" }\n  - { slug: adc, kind: gemini, vertex_project_id: p-1, vertex_region: global }\n",
        ORIGIN,
        &env,
    )
    .unwrap();
    let v = provider(&catalog, "v");
    assert_eq!(
        v.credentials
            .get("vertex_service_account_json")
            .map(Secret::expose),
        Some(account)
    );
    assert!(!format!("{v:?}").contains("TOPSECRET"));
    assert_eq!(provider(&catalog, "adc").api_key, None);
}

#[test]
fn kind_specific_secrets_are_never_echoed() {
    let cases = [
        "providers:\n  - { slug: a, kind: bedrock, aws_region: us-east-1, aws_access_key_id: AKIA, aws_secret_access_key: \"aws-secret-TOPSECRET \" }\n",
        "providers:\n  - { slug: a, kind: bedrock, aws_region: us-east-1, aws_access_key_id: AKIA, aws_secret_access_key: 123456789012345 }\n",
        "providers:\n  - { slug: a, kind: openai, api_key: k, aws_session_token: aws-session-TOPSECRET }\n",
        "providers:\n  - { slug: a, kind: bedrock, aws_region: us-east-1, aws_session_token: aws-session-TOPSECRET }\n",
    ];
    for text in cases {
        let err = error_of(text);
        let shown = format!("{err} / {err:?}");
        for leaked in ["TOPSECRET", "123456789012345"] {
            assert!(!shown.contains(leaked), "{text:?} leaked: {shown}");
        }
    }
    let shown = format!("{:?}", parse(FULL).unwrap());
    assert!(!shown.contains("aws-secret-TOPSECRET"), "{shown}");
    assert!(!shown.contains("aws-session-TOPSECRET"), "{shown}");
}

#[test]
fn blank_kind_specific_fields_count_as_absent() {
    let catalog = parse(
        "providers:\n  - { slug: a, kind: openai, api_key: k, aws_region: \"${EMPTY}\", anthropic_beta: \"\" }\n",
    )
    .unwrap();
    assert_eq!(catalog.providers[0].settings, Map::new());
}

#[test]
fn a_provider_object_is_checked_like_a_file_entry() {
    let ok = parse_provider_json(
        &serde_json::json!({"slug": "groq-api", "kind": "groq", "api_key": "gsk-x",
                            "models": ["llama-3.3-70b", {"id": "m2", "pricing": {"input_per_mtok": 1}}]}),
        "request body",
    )
    .unwrap();
    assert_eq!(ok.slug, "groq-api");
    assert_eq!(ok.api_key, Some(Secret::new("gsk-x")));
    assert_eq!(ok.models.unwrap().len(), 2);

    let cases = [
        (
            serde_json::json!({"slug": "a", "kind": "mock", "base_ur": "x"}),
            "base_ur",
        ),
        (
            serde_json::json!({"slug": "a", "kind": "openai-compatible", "base_url": "nope"}),
            "base_url",
        ),
        (serde_json::json!({"slug": "A!", "kind": "mock"}), "slug"),
        (
            serde_json::json!({"slug": "a", "kind": "mock", "models": [{"id": "m", "pricing": {"input_per_mtok": -1}}]}),
            "models[0].pricing.input_per_mtok",
        ),
        (
            serde_json::json!({"slug": "a", "kind": "mock", "mock": {"latency_ms": "x"}}),
            "mock.latency_ms",
        ),
        (
            serde_json::json!({"slug": "a", "kind": "openai"}),
            "api_key",
        ),
    ];
    for (value, path) in cases {
        let err = parse_provider_json(&value, "request body").unwrap_err();
        assert_eq!(err.path(), Some(path), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("request body: {path}: ")),
            "{err}"
        );
    }
    // `${VAR}` is not substituted: the text is kept as the key.
    let literal = parse_provider_json(
        &serde_json::json!({"slug": "o", "kind": "openai", "api_key": "${OPENAI_API_KEY}"}),
        "request body",
    )
    .unwrap();
    assert_eq!(literal.api_key, Some(Secret::new("${OPENAI_API_KEY}")));
}
