use super::*;
use portico_core::{ProviderKind, Usage};

fn usage(prompt: u64, completion: u64, cached: u64, written: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        cache_write_tokens: written,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

const PRICE: ModelPrice = ModelPrice {
    input_per_mtok: 3.0,
    output_per_mtok: 15.0,
    cache_read_per_mtok: Some(0.3),
    cache_write_per_mtok: Some(3.75),
};

#[test]
fn cost_prices_uncached_input_and_output() {
    // 1M input at $3 + 0.5M output at $15.
    assert!(close(PRICE.cost(&usage(1_000_000, 500_000, 0, 0)), 10.5));
}

#[test]
fn cost_splits_cache_reads_and_writes_out_of_prompt_tokens() {
    // 1,000 prompt tokens = 600 uncached + 300 read + 100 written.
    let got = PRICE.cost(&usage(1_000, 200, 300, 100));
    let want = (600.0 * 3.0 + 300.0 * 0.3 + 100.0 * 3.75 + 200.0 * 15.0) / 1e6;
    assert!(close(got, want), "{got} != {want}");
}

#[test]
fn missing_cache_prices_fall_back_to_the_input_price() {
    let price = ModelPrice {
        cache_read_per_mtok: None,
        cache_write_per_mtok: None,
        ..PRICE
    };
    let split = price.cost(&usage(1_000, 0, 300, 100));
    let plain = price.cost(&usage(1_000, 0, 0, 0));
    assert!(close(split, plain));
    assert!(close(plain, 1_000.0 * 3.0 / 1e6));
}

#[test]
fn more_cached_than_prompt_tokens_gives_no_negative_input() {
    let got = PRICE.cost(&usage(100, 0, 150, 0));
    assert!(close(got, 150.0 * 0.3 / 1e6), "{got}");
}

#[test]
fn free_costs_nothing() {
    assert_eq!(
        ModelPrice::FREE.cost(&usage(10_000, 10_000, 5_000, 100)),
        0.0
    );
}

#[test]
fn cost_usd_override_wins_builtin_next_unknown_none() {
    let u = Some(usage(1_000_000, 0, 0, 0));
    let cheap = PriceOverride {
        input_per_mtok: Some(1.0),
        output_per_mtok: Some(1.0),
        cache_read_per_mtok: None,
        cache_write_per_mtok: None,
    };
    assert_eq!(
        cost_usd(Some(&cheap), ProviderKind::OpenAi, "gpt-4o", u),
        Some(1.0)
    );
    assert_eq!(cost_usd(None, ProviderKind::OpenAi, "gpt-4o", u), Some(2.5));
    assert_eq!(
        cost_usd(None, ProviderKind::OpenAi, "my-finetune-xyz", u),
        None
    );
    assert_eq!(cost_usd(None, ProviderKind::OpenAi, "gpt-4o", None), None);
    assert_eq!(
        cost_usd(None, ProviderKind::OpenAiCompatible, "gpt-4o", u),
        None
    );
    // An override applies even where the table knows nothing.
    assert_eq!(
        cost_usd(Some(&cheap), ProviderKind::OpenAiCompatible, "local", u),
        Some(1.0)
    );
}

#[test]
fn partial_override_fills_from_builtin_or_stays_unknown() {
    let builtin = PriceTable::builtin().lookup(ProviderKind::Anthropic, "claude-sonnet-4-6");
    let input_only = PriceOverride {
        input_per_mtok: Some(2.0),
        ..PriceOverride::default()
    };
    let resolved = input_only.resolve(builtin).unwrap();
    assert_eq!(resolved.input_per_mtok, 2.0);
    assert_eq!(resolved.output_per_mtok, 15.0);
    assert_eq!(resolved.cache_read_per_mtok, Some(0.3));
    assert_eq!(input_only.resolve(None), None);
    let full = PriceOverride {
        input_per_mtok: Some(1.0),
        output_per_mtok: Some(2.0),
        ..PriceOverride::default()
    };
    assert_eq!(
        full.resolve(None),
        Some(ModelPrice {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
            cache_read_per_mtok: None,
            cache_write_per_mtok: None,
        })
    );
}

fn price(kind: ProviderKind, model: &str) -> Option<ModelPrice> {
    PriceTable::builtin().lookup(kind, model)
}

fn input(kind: ProviderKind, model: &str) -> Option<f64> {
    price(kind, model).map(|p| p.input_per_mtok)
}

#[test]
fn dated_snapshots_fall_back_unless_listed_themselves() {
    use ProviderKind::*;
    assert_eq!(input(OpenAi, "gpt-4o-2024-08-06"), Some(2.5));
    // Listed on its own at its own (older, higher) price.
    assert_eq!(input(OpenAi, "gpt-4o-2024-05-13"), Some(5.0));
    assert_eq!(input(Anthropic, "claude-sonnet-4-5-20250929"), Some(3.0));
    assert_eq!(input(Anthropic, "claude-opus-4-20250514"), Some(15.0));
    assert_eq!(input(Anthropic, "claude-3-5-haiku-latest"), Some(0.8));
}

#[test]
fn names_match_case_insensitively_and_trimmed() {
    use ProviderKind::*;
    assert_eq!(input(OpenAi, "GPT-4o"), Some(2.5));
    assert_eq!(input(Anthropic, " Claude-Opus-5-5 "), Some(4.0));
    assert_eq!(input(Mistral, "Mistral-Large-Latest"), Some(0.5));
}

#[test]
fn gemini_prefixes_and_versions() {
    use ProviderKind::Gemini;
    assert_eq!(input(Gemini, "models/gemini-2.5-pro"), Some(1.25));
    assert_eq!(input(Gemini, "gemini-2.5-pro"), Some(1.25));
    assert_eq!(input(Gemini, "gemini-2.0-flash-001"), Some(0.1));
    assert_eq!(
        input(Gemini, "publishers/google/models/gemini-2.5-flash"),
        Some(0.3)
    );
}

#[test]
fn bedrock_profiles_versions_and_regional_surcharge() {
    use ProviderKind::Bedrock;
    let global = price(Bedrock, "global.anthropic.claude-sonnet-4-5-20250929-v1:0").unwrap();
    assert_eq!(global.input_per_mtok, 3.0);
    assert_eq!(global.cache_read_per_mtok, Some(0.3));
    for regional in [
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
    ] {
        let p = price(Bedrock, regional).unwrap();
        assert!(close(p.input_per_mtok, 3.3), "{regional}: {p:?}");
        assert!(close(p.output_per_mtok, 16.5), "{regional}: {p:?}");
    }
    // Older models have no global profile and no surcharge.
    assert_eq!(
        input(Bedrock, "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        Some(0.8)
    );
    assert_eq!(input(Bedrock, "amazon.nova-pro-v1:0"), Some(0.8));
    assert_eq!(input(Bedrock, "US.Amazon.Nova-Lite-V1:0"), Some(0.06));
    assert_eq!(input(Bedrock, "claude-sonnet-4-5"), None);
}

#[test]
fn azure_uses_openai_prices_by_deployment_name() {
    assert_eq!(input(ProviderKind::AzureOpenAi, "gpt-4o-mini"), Some(0.15));
    assert_eq!(input(ProviderKind::AzureOpenAi, "my-prod-deployment"), None);
}

#[test]
fn groq_owner_prefix_is_optional() {
    assert_eq!(input(ProviderKind::Groq, "openai/gpt-oss-120b"), Some(0.15));
    assert_eq!(input(ProviderKind::Groq, "gpt-oss-120b"), Some(0.15));
}

#[test]
fn unknown_models_and_kinds_are_none() {
    use ProviderKind::*;
    assert_eq!(price(OpenAi, "gpt-unknown"), None);
    assert_eq!(price(OpenAi, ""), None);
    assert_eq!(price(Anthropic, "gpt-4o"), None);
    assert_eq!(price(OpenAiCompatible, "gpt-4o"), None);
    assert_eq!(
        price(Together, "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        None
    );
    let long = "x".repeat(10_000);
    assert_eq!(price(OpenAi, &long), None);
}

#[test]
fn ollama_and_mock_are_free() {
    assert_eq!(
        price(ProviderKind::Ollama, "llama3.2"),
        Some(ModelPrice::FREE)
    );
    assert_eq!(
        price(ProviderKind::Mock, "anything"),
        Some(ModelPrice::FREE)
    );
}

#[test]
fn builtin_data_file_parses_with_sane_entries() {
    // `builtin()` falls back to an empty table on a bad file: parse directly to see the error.
    let table = PriceTable::from_json(include_str!("../prices.json")).unwrap();
    assert_eq!(table.checked(), "2026-11");
    let mut count = 0;
    for (kind, id, p) in table.entries() {
        count += 1;
        assert!(p.input_per_mtok > 0.0, "{kind:?}/{id}");
        assert!(p.output_per_mtok >= 0.0, "{kind:?}/{id}");
        for cache in [p.cache_read_per_mtok, p.cache_write_per_mtok]
            .into_iter()
            .flatten()
        {
            assert!(cache >= 0.0 && cache.is_finite(), "{kind:?}/{id}");
        }
        // Each id finds itself through the public lookup.
        let found = table
            .lookup(kind, id)
            .unwrap_or_else(|| panic!("{kind:?}/{id} not found"));
        if kind != ProviderKind::Bedrock {
            assert_eq!(found, p, "{kind:?}/{id}");
        }
        // Cache reads are discounted input wherever the provider lists them.
        if let Some(read) = p.cache_read_per_mtok {
            assert!(read < p.input_per_mtok, "{kind:?}/{id}");
        }
    }
    assert!(count > 80, "{count} entries");
}

#[test]
fn each_provider_lists_its_flagships() {
    use ProviderKind::*;
    let flagships: &[(ProviderKind, &[&str])] = &[
        (
            OpenAi,
            &[
                "gpt-6.1-sol",
                "gpt-6-astra",
                "gpt-6-luna",
                "gpt-5.5",
                "gpt-5.4-mini",
                "gpt-4o",
                "gpt-4o-mini",
                "text-embedding-3-small",
            ],
        ),
        (
            Anthropic,
            &[
                "claude-fable-5-1",
                "claude-opus-5-5",
                "claude-sonnet-5-5",
                "claude-haiku-5-5",
                "claude-haiku-4-5",
                "claude-sonnet-4-5",
            ],
        ),
        (
            Gemini,
            &[
                "gemini-3.8-flash",
                "gemini-3.5-flash",
                "gemini-3.1-pro-preview",
                "gemini-2.5-pro",
                "gemini-2.5-flash",
            ],
        ),
        (
            Bedrock,
            &[
                "global.anthropic.claude-opus-5-5",
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "anthropic.claude-haiku-4-5-20251001-v1:0",
                "amazon.nova-pro-v1:0",
            ],
        ),
        (
            Mistral,
            &[
                "mistral-large-latest",
                "mistral-medium-latest",
                "mistral-small-latest",
                "codestral-latest",
            ],
        ),
        (
            Groq,
            &[
                "llama-3.3-70b-versatile",
                "llama-3.1-8b-instant",
                "openai/gpt-oss-120b",
            ],
        ),
        (DeepSeek, &["deepseek-flash", "deepseek-v4-pro"]),
    ];
    for (kind, models) in flagships {
        for model in *models {
            assert!(
                price(*kind, model).is_some(),
                "{kind:?}/{model} has no price"
            );
        }
    }
}

#[test]
fn bad_data_files_are_refused() {
    let file = |entry: &str| {
        format!(
            r#"{{"about": "", "checked": "x", "sources": {{}}, "providers": {{"openai": [{entry}]}}}}"#
        )
    };
    for (entry, why) in [
        (
            r#"{"id": "a", "input_per_mtok": 0, "output_per_mtok": 1}"#,
            "zero input",
        ),
        (
            r#"{"id": "a", "input_per_mtok": 1, "output_per_mtok": -1}"#,
            "negative output",
        ),
        (
            r#"{"id": "A", "input_per_mtok": 1, "output_per_mtok": 1}"#,
            "upper-case id",
        ),
        (
            r#"{"id": "a", "aliases": ["a"], "input_per_mtok": 1, "output_per_mtok": 1}"#,
            "duplicate",
        ),
        (
            r#"{"id": "a", "input_per_mtok": 1, "output_per_mtok": 1, "typo": 1}"#,
            "unknown field",
        ),
    ] {
        assert!(
            PriceTable::from_json(&file(entry)).is_err(),
            "{why} accepted"
        );
    }
    let unknown_provider =
        r#"{"about": "", "checked": "x", "sources": {}, "providers": {"together": []}}"#;
    assert!(PriceTable::from_json(unknown_provider).is_err());
}
