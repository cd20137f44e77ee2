//! Every request's cost: priced from the built-in table for each provider kind, streamed or
//! not, from the catalog's override where it sets one, and null when the price is unknown.

use portico_core::{ProviderKind, Usage};
use portico_pricing::PriceTable;
use portico_testkit::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, SERVICE_KEY, access_record, every_kind_providers};

/// Every translating kind (`@oa`, `@az`, `@an`, `@ge`, `@be`) plus `@custom`, whose allow-list
/// prices one model in the catalog and leaves another unpriced.
fn catalog(upstream: &MockUpstream) -> String {
    format!(
        r#"providers:{kinds}
  - slug: custom
    kind: openai
    api_key: sk-ptsecret-cost-custom-000
    base_url: {base}
    models:
      - id: in-house-model
        pricing: {{ input_per_mtok: 1000.0, output_per_mtok: 2000.0 }}
      - id: unpriced-model
keys:
  - name: service
    key: {SERVICE_KEY}
"#,
        kinds = every_kind_providers(upstream),
        base = upstream.base_url(),
    )
}

/// Provider slug, its kind, and a model the built-in table prices.
const PRICED: [(&str, ProviderKind, &str); 5] = [
    ("oa", ProviderKind::OpenAi, "gpt-4o-mini"),
    ("az", ProviderKind::AzureOpenAi, "gpt-4o-mini"),
    ("an", ProviderKind::Anthropic, "claude-sonnet-4-5"),
    ("ge", ProviderKind::Gemini, "gemini-2.5-flash"),
    (
        "be",
        ProviderKind::Bedrock,
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
    ),
];

/// Sends one chat request and returns the access-log record once written.
async fn record_for(gw: &Gateway, model: &str, stream: bool) -> Value {
    let body = json!({"model": model, "stream": stream,
        "messages": [{"role": "user", "content": "what does this cost"}]});
    let resp = gw.post("/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200, "{model}");
    let id = resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Read the body to the end: a stream's record is written when it ends.
    let _ = resp.text().await.unwrap();
    access_record(gw, &id).await
}

fn usage_of(record: &Value) -> Usage {
    let n = |field: &str| record[field].as_u64().unwrap_or(0);
    Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        cached_tokens: n("cached_tokens"),
        cache_write_tokens: n("cache_write_tokens"),
    }
}

#[tokio::test]
async fn each_provider_kind_is_priced_streamed_or_not() {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    let gw = Gateway::start_with(upstream, &catalog).await;
    for (slug, kind, model) in PRICED {
        let price = PriceTable::builtin()
            .lookup(kind, model)
            .unwrap_or_else(|| panic!("the table has no price for {kind:?} {model}"));
        for stream in [false, true] {
            let record = record_for(&gw, &format!("@{slug}/{model}"), stream).await;
            let usage = usage_of(&record);
            assert!(
                usage.prompt_tokens > 0 && usage.completion_tokens > 0,
                "@{slug} stream={stream}: no usage in {record}"
            );
            let cost = record["cost_usd"]
                .as_f64()
                .unwrap_or_else(|| panic!("@{slug} stream={stream}: no cost in {record}"));
            let expected = price.cost(&usage);
            assert!(cost > 0.0, "@{slug}: {record}");
            assert!(
                (cost - expected).abs() < 1e-12,
                "@{slug} stream={stream}: {cost} != {expected}"
            );
        }
    }
}

#[tokio::test]
async fn the_catalog_override_wins_and_an_unknown_price_is_null() {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    let gw = Gateway::start_with(upstream, &catalog).await;
    for stream in [false, true] {
        let record = record_for(&gw, "@custom/in-house-model", stream).await;
        let usage = usage_of(&record);
        // 1000 USD per million input tokens and 2000 per million output tokens.
        let expected = (usage.prompt_tokens as f64 * 1000.0
            + usage.completion_tokens as f64 * 2000.0)
            / 1_000_000.0;
        let cost = record["cost_usd"].as_f64().unwrap();
        assert!((cost - expected).abs() < 1e-9, "{cost} != {expected}");

        let record = record_for(&gw, "@custom/unpriced-model", stream).await;
        assert!(record["prompt_tokens"].as_u64().unwrap() > 0);
        assert_eq!(record["cost_usd"], Value::Null, "never a made-up price");
    }
}
