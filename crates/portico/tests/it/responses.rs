//! `POST /v1/responses` (OpenAI's Responses API) through the real binary: passed through
//! untouched to an OpenAI provider, translated for every other kind (whole and streamed, with
//! tool calls), conversations continued with `previous_response_id` on any provider (the
//! gateway keeps the responses, across restarts), `store: false`, `GET`/`DELETE`, routing,
//! budgets, the cache, guardrails and the request log as on every endpoint, and the OpenAI Python SDK
//! as the client (tests/python/openai_responses_e2e.py).

use std::time::Duration;

use portico_testkit::{MockReply, MockUpstream};
use serde_json::{Value, json};

use crate::support::{
    Gateway, SERVICE_KEY, admin_get, every_kind_providers, run_python_checks, start_in,
    wait_for_logs,
};

/// A second key, to check that one caller cannot see another's responses.
const OTHER_KEY: &str = "prt-test-responses-other-0123456789";
/// A key with a budget of 500 tokens a day.
const BUDGETED_KEY: &str = "prt-test-responses-budget-0123456789";

/// Every provider kind on the mock (`@oa` openai, `@az`, `@an`, `@ge`, `@be`), two keys, and
/// a config that falls back from a failing target.
fn catalog(upstream: &MockUpstream) -> String {
    format!(
        r#"
providers:
{providers}
keys:
  - name: service
    key: {SERVICE_KEY}
  - name: other
    key: {OTHER_KEY}
  - name: budgeted
    key: {BUDGETED_KEY}
    budget: {{ tokens: 500, period: day }}
"#,
        providers = every_kind_providers(upstream)
    )
}

async fn start() -> Gateway {
    let upstream = MockUpstream::start().await;
    let text = catalog(&upstream);
    Gateway::start_with(upstream, &text).await
}

/// The translated kinds and the path each one's upstream is called on.
const TRANSLATED: [(&str, &str); 4] = [
    ("az", "/openai/deployments/m/chat/completions"),
    ("an", "/v1/messages"),
    ("ge", "/v1beta/models/m:generateContent"),
    ("be", "/model/m/converse"),
];

async fn create(gw: &Gateway, key: &str, body: &Value) -> (u16, Value) {
    let response = gw
        .http
        .post(gw.url("/v1/responses"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The events of a streamed answer: (name, data).
async fn stream(gw: &Gateway, body: &Value) -> Vec<(String, Value)> {
    let response = gw.post("/v1/responses", body.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = response.text().await.unwrap();
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        let data: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {block}"));
        assert_eq!(data["type"], name.as_str(), "{block}");
        events.push((name, data));
    }
    events
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().clone())
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect()
}

async fn get(gw: &Gateway, key: &str, path: &str) -> (u16, Value) {
    let response = gw
        .http
        .get(gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn every_provider_kind_answers_whole_and_streamed() {
    let gw = start().await;
    for (slug, path) in [("oa", "/v1/responses")].into_iter().chain(TRANSLATED) {
        let body = json!({"model": format!("@{slug}/m"), "input": "hello there",
            "instructions": "Be brief.", "max_output_tokens": 100});
        let (status, answer) = create(&gw, SERVICE_KEY, &body).await;
        assert_eq!(status, 200, "{slug}: {answer}");
        assert_eq!(answer["object"], "response", "{slug}");
        assert_eq!(answer["status"], "completed", "{slug}");
        assert!(
            answer["id"].as_str().unwrap().starts_with("resp_"),
            "{slug}"
        );
        assert_eq!(
            output_text(&answer),
            "echo: hello there",
            "{slug}: {answer}"
        );
        assert!(
            answer["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{slug}"
        );
        assert!(
            answer["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{slug}"
        );
        let seen = gw.upstream.last_request().unwrap();
        assert_eq!(seen.path, path, "{slug}");
        if slug == "oa" {
            // Untouched but for the model.
            let mut expected = body.clone();
            expected["model"] = json!("m");
            assert_eq!(seen.json_body(), &expected);
        } else {
            assert_eq!(answer["instructions"], "Be brief.", "{slug}");
            assert_eq!(answer["max_output_tokens"], 100, "{slug}");
        }

        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let events = stream(&gw, &streamed).await;
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names.first(),
            Some(&"response.created"),
            "{slug}: {names:?}"
        );
        assert_eq!(
            names.last(),
            Some(&"response.completed"),
            "{slug}: {names:?}"
        );
        let deltas: String = events
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(deltas, "echo: hello there", "{slug}");
        for (i, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i, "{slug}");
        }
        let done = &events.last().unwrap().1["response"];
        assert_eq!(output_text(done), "echo: hello there", "{slug}");
        assert!(
            done["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{slug}"
        );
    }
    // Each request is logged with its endpoint, provider, model, tokens and cost.
    let records: Vec<Value> = wait_for_logs(&gw.portico, "", 10)
        .await
        .into_iter()
        .filter(|r| r["endpoint"] == "responses")
        .collect();
    assert_eq!(records.len(), 10);
    for record in &records {
        assert_eq!(record["endpoint"], "responses", "{record}");
        assert_eq!(record["status"], 200, "{record}");
        assert!(record["prompt_tokens"].as_u64().unwrap() > 0, "{record}");
    }
    let streamed = records.iter().filter(|r| r["stream"] == true).count();
    assert_eq!(streamed, 5);
}

/// A tool round trip: the first turn calls the tool, the second sends its output with
/// `previous_response_id` only.
async fn tool_round_trip(gw: &Gateway, first: &str, second: &str) -> (Value, Value) {
    let tools = json!([{"type": "function", "name": "weather", "description": "The weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let (status, turn1) = create(
        gw,
        SERVICE_KEY,
        &json!({"model": format!("@{first}/m"), "input": "weather in Oslo?", "tools": tools}),
    )
    .await;
    assert_eq!(status, 200, "{first}: {turn1}");
    let call = turn1["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("{first}: no call in {turn1}"))
        .clone();
    assert_eq!(call["name"], "weather", "{first}");
    let (status, turn2) = create(
        gw,
        SERVICE_KEY,
        &json!({"model": format!("@{second}/m"), "previous_response_id": turn1["id"],
            "tools": tools,
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 21C"}]}),
    )
    .await;
    assert_eq!(status, 200, "{first}→{second}: {turn2}");
    assert_eq!(
        output_text(&turn2),
        "tool result: sunny, 21C",
        "{first}→{second}"
    );
    assert_eq!(turn2["previous_response_id"], turn1["id"]);
    (turn1, turn2)
}

#[tokio::test]
async fn previous_response_id_continues_a_conversation_on_every_kind() {
    let gw = start().await;
    for (slug, _) in TRANSLATED {
        tool_round_trip(&gw, slug, slug).await;
        // The second upstream call carried the whole conversation.
        let seen = gw.upstream.last_request().unwrap().body_text();
        assert!(seen.contains("weather in Oslo?"), "{slug}: {seen}");
        assert!(seen.contains("sunny, 21C"), "{slug}: {seen}");
    }
}

#[tokio::test]
async fn an_openai_upstream_keeps_its_own_conversation_and_others_get_the_items() {
    let gw = start().await;
    // OpenAI kept the first turn itself: the second goes with `previous_response_id` as sent.
    let (turn1, _) = tool_round_trip(&gw, "oa", "oa").await;
    let seen = gw.upstream.last_request().unwrap().json_body().clone();
    assert_eq!(seen["previous_response_id"], turn1["id"]);
    assert_eq!(seen["input"].as_array().unwrap().len(), 1, "{seen}");

    // Begun on Anthropic, continued on OpenAI: OpenAI never saw the first turn, so it gets
    // the conversation's items in `input` instead of the id.
    let (turn1, _) = tool_round_trip(&gw, "an", "oa").await;
    let seen = gw.upstream.last_request().unwrap().json_body().clone();
    assert!(seen.get("previous_response_id").is_none(), "{seen}");
    let input = seen["input"].as_array().unwrap();
    assert_eq!(input.len(), 3, "{seen}");
    assert_eq!(input[0]["content"], "weather in Oslo?");
    assert_eq!(input[1]["type"], "function_call");
    assert!(
        input[1].get("id").is_none(),
        "item ids stay with their upstream: {seen}"
    );
    assert_eq!(input[2]["type"], "function_call_output");
    assert_ne!(turn1["id"], Value::Null);

    // And the other way: begun on OpenAI, continued on Gemini.
    tool_round_trip(&gw, "oa", "ge").await;
    let seen = gw.upstream.last_request().unwrap().body_text();
    assert!(
        seen.contains("weather in Oslo?") && seen.contains("sunny, 21C"),
        "{seen}"
    );
}

#[tokio::test]
async fn kept_responses_are_found_deleted_and_private_to_their_key() {
    let gw = start().await;
    let (_, kept) = create(
        &gw,
        SERVICE_KEY,
        &json!({"model": "@an/m", "input": "keep me"}),
    )
    .await;
    let id = kept["id"].as_str().unwrap();
    let (status, found) = get(&gw, SERVICE_KEY, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(found, kept);
    let (status, items) = get(&gw, SERVICE_KEY, &format!("/v1/responses/{id}/input_items")).await;
    assert_eq!(status, 200);
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["content"], "keep me");

    // Another key neither sees it nor continues it.
    let (status, error) = get(&gw, OTHER_KEY, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 404, "{error}");
    let (status, error) = create(
        &gw,
        OTHER_KEY,
        &json!({"model": "@an/m", "input": "more", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["code"], "previous_response_not_found");
    assert_eq!(error["error"]["param"], "previous_response_id");

    // `store: false` is not kept.
    let (_, unkept) = create(
        &gw,
        SERVICE_KEY,
        &json!({"model": "@an/m", "input": "forget me", "store": false}),
    )
    .await;
    assert_eq!(unkept["store"], false);
    let (status, _) = get(
        &gw,
        SERVICE_KEY,
        &format!("/v1/responses/{}", unkept["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 404);

    // Delete: only its owner, then it is gone.
    let delete = |key: &'static str| {
        gw.http
            .delete(gw.url(&format!("/v1/responses/{id}")))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(delete(OTHER_KEY).await.unwrap().status(), 404);
    let deleted: Value = delete(SERVICE_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response", "deleted": true})
    );
    assert_eq!(
        get(&gw, SERVICE_KEY, &format!("/v1/responses/{id}"))
            .await
            .0,
        404
    );
    assert_eq!(delete(SERVICE_KEY).await.unwrap().status(), 404);

    // Without a key: 401.
    let response = gw
        .http
        .get(gw.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn what_cannot_be_translated_is_a_400_and_nothing_reaches_the_upstream() {
    let gw = start().await;
    let (status, error) = create(
        &gw,
        SERVICE_KEY,
        &json!({"model": "@an/m", "input": "search", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "tools");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("web_search")
    );
    assert_eq!(gw.upstream.hits(), 0);
    // The same request passes through to OpenAI, which runs its own tools.
    let (status, _) = create(
        &gw,
        SERVICE_KEY,
        &json!({"model": "@oa/m", "input": "search", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        gw.upstream.last_request().unwrap().json_body()["tools"][0]["type"],
        "web_search"
    );
}

#[tokio::test]
async fn configs_the_cache_and_guardrails_apply_to_responses() {
    let gw = start().await;
    let send = |config: Value, body: Value| {
        gw.http
            .post(gw.url("/v1/responses"))
            .bearer_auth(SERVICE_KEY)
            .header("x-portkey-config", config.to_string())
            .json(&body)
            .send()
    };
    // Fallback: the first target fails, the second (translated) answers.
    gw.upstream
        .enqueue_for("/v1/responses", MockReply::error(500, "down"));
    let fallback = json!({"strategy": {"mode": "fallback"},
        "targets": [{"provider": "@oa", "override_params": {"model": "m"}},
                    {"provider": "@an", "override_params": {"model": "m"}}]});
    let response = send(fallback, json!({"input": "fall back"})).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-portkey-provider"], "@an");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(output_text(&answer), "echo: fall back");

    // The cache answers a repeated request.
    let cache = json!({"cache": {"mode": "simple", "max_age": 60}});
    let body = json!({"model": "@ge/m", "input": "cache me"});
    let first = send(cache.clone(), body.clone()).await.unwrap();
    assert_eq!(first.headers()["x-portkey-cache-status"], "MISS");
    let first: Value = first.json().await.unwrap();
    let hits = gw.upstream.hits();
    let again = send(cache, body).await.unwrap();
    assert_eq!(again.headers()["x-portkey-cache-status"], "HIT");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(gw.upstream.hits(), hits);

    // An input guardrail reads the input items and refuses with 446.
    let deny = json!({"input_guardrails": [{"default.contains": {"words": ["forbidden"], "operator": "none"}, "deny": true}]});
    let response = send(
        deny.clone(),
        json!({"model": "@an/m", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "a forbidden word"}]}]}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 446);
    assert_eq!(gw.upstream.hits(), hits);
    // An output guardrail reads a streamed Response's text.
    let deny_out = json!({"output_guardrails": [{"default.contains": {"words": ["echo"], "operator": "none"}, "deny": true}]});
    let response = send(
        deny_out,
        json!({"model": "@be/m", "input": "x", "stream": true}),
    )
    .await
    .unwrap();
    let text = response.text().await.unwrap();
    assert!(
        text.contains("event: error") && text.contains("hooks_failed"),
        "{text}"
    );
    assert!(!text.contains("response.completed"), "{text}");
}

#[tokio::test]
async fn budgets_estimate_from_max_output_tokens() {
    let gw = start().await;
    // About 20 tokens of body and 100 of answer: within 500 (the default estimate of an
    // answer, 1,024 tokens, would not be).
    let (status, answer) = create(
        &gw,
        BUDGETED_KEY,
        &json!({"model": "@an/m", "input": "small", "max_output_tokens": 100}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let hits = gw.upstream.hits();
    let (status, error) = create(
        &gw,
        BUDGETED_KEY,
        &json!({"model": "@an/m", "input": "large", "max_output_tokens": 2000}),
    )
    .await;
    assert_eq!(status, 412, "{error}");
    assert_eq!(error["error"]["code"], "budget_exceeded");
    assert_eq!(
        gw.upstream.hits(),
        hits,
        "a refused request never reaches the provider"
    );
}

#[tokio::test]
async fn kept_responses_survive_a_restart() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = catalog(&upstream);
    let mut first = start_in(dir.path(), &text, &[]).await;
    let http = reqwest::Client::new();
    let answer: Value = http
        .post(first.url("/v1/responses"))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"model": "@an/m", "input": "remember this"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();
    first.sigterm().unwrap();
    first.wait_exit(Duration::from_secs(20)).await.unwrap();

    let second = start_in(dir.path(), &text, &[]).await;
    let found = http
        .get(second.url(&format!("/v1/responses/{id}")))
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200, "{}", second.stderr_text());
    assert_eq!(found.json::<Value>().await.unwrap(), answer);
    let next: Value = http
        .post(second.url("/v1/responses"))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"model": "@ge/m", "input": "and now?", "previous_response_id": id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(output_text(&next), "echo: and now?", "{next}");
    let seen = upstream.last_request().unwrap().body_text();
    assert!(
        seen.contains("remember this") && seen.contains("echo: remember this"),
        "{seen}"
    );
    let logs: Value = admin_get(&second, "/admin/v1/logs")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        logs["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["endpoint"] == "responses"),
        "{logs}"
    );
}

#[tokio::test]
async fn the_openai_python_sdk_speaks_responses_to_every_kind() {
    let gw = start().await;
    for model in ["@oa/m", "@an/m", "@ge/m"] {
        let passed = run_python_checks(
            "openai",
            "openai_responses_e2e.py",
            &[
                ("PORTICO_BASE_URL", gw.url("/v1")),
                ("PORTICO_KEY", SERVICE_KEY.to_owned()),
                ("PORTICO_MODEL", model.to_owned()),
            ],
            &[],
        )
        .await;
        assert_eq!(
            passed,
            [
                "create",
                "stream",
                "tool_round_trip",
                "retrieve_delete",
                "401"
            ],
            "{model}"
        );
    }
}
