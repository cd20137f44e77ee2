//! The OpenAI-compatible proxy: routing, rewriting, headers, auth and error shapes.

use portico_testkit::{MockReply, MockUpstream};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Gateway, PROVIDER_KEY, SERVICE_KEY, access_record, chat};

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"].is_string(),
        "not OpenAI-shaped: {body}"
    );
    assert!(
        body["error"]["type"].is_string(),
        "not OpenAI-shaped: {body}"
    );
    (status, body)
}

#[tokio::test]
async fn chat_is_routed_with_the_model_rewritten_and_provider_credentials() {
    let gw = Gateway::start().await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "trace-abc")
        .header(
            "x-portkey-metadata",
            r#"{"team":"backend","_user":"alice"}"#,
        )
        .header(
            "traceparent",
            "00-eb5e6fe65d7c8873253ff919b49302c5-04f36ce0395ccefc-01",
        )
        .json(
            &json!({"model": "@openai-mock/gpt-4o-mini", "temperature": 0.3,
                      "messages": [{"role": "user", "content": "hi there"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["x-portkey-trace-id"], "trace-abc");
    assert_eq!(headers["x-portkey-provider"], "@openai-mock");
    let request_id = headers["x-portkey-request-id"].to_str().unwrap();
    assert!(uuid_like(request_id), "{request_id}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hi there");

    assert_eq!(gw.upstream.hits(), 1);
    let sent = gw.upstream.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.bearer(), Some(PROVIDER_KEY));
    let sent_body = sent.json_body();
    assert_eq!(sent_body["model"], "gpt-4o-mini");
    assert_eq!(sent_body["temperature"], 0.3);
    assert_eq!(
        sent_body["messages"],
        json!([{"role": "user", "content": "hi there"}])
    );
    for (name, value) in &sent.headers {
        assert!(!name.as_str().starts_with("x-portkey"), "forwarded {name}");
        assert!(
            !value.to_str().unwrap_or("").contains(SERVICE_KEY),
            "gateway key leaked in {name}"
        );
    }
}

#[tokio::test]
async fn generated_trace_ids_differ_per_request() {
    let gw = Gateway::start().await;
    let a = gw
        .post("/v1/chat/completions", chat("@openai-mock/m", "a"))
        .await;
    let b = gw
        .post("/v1/chat/completions", chat("@openai-mock/m", "b"))
        .await;
    let (ta, tb) = (
        &a.headers()["x-portkey-trace-id"],
        &b.headers()["x-portkey-trace-id"],
    );
    assert_ne!(ta, tb);
    assert_ne!(
        a.headers()["x-portkey-request-id"],
        b.headers()["x-portkey-request-id"]
    );
}

#[tokio::test]
async fn provider_header_routes_a_bare_model_name() {
    let gw = Gateway::start().await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .header("x-portkey-api-key", SERVICE_KEY)
        .header("x-portkey-provider", "@openai-mock")
        .json(&chat("gpt-4o", "bare"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@openai-mock");
    assert_eq!(
        gw.upstream.last_request().unwrap().json_body()["model"],
        "gpt-4o"
    );
}

#[tokio::test]
async fn missing_or_unknown_keys_are_401_and_never_reach_the_upstream() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    let none = gw
        .http
        .post(&url)
        .json(&chat("@openai-mock/m", "x"))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(none).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["code"], "missing_api_key");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );

    let wrong = gw
        .http
        .post(&url)
        .bearer_auth("prt-wrong")
        .json(&chat("@openai-mock/m", "x"));
    let (status, body) = error_of(wrong.send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(
        !body.to_string().contains("prt-wrong"),
        "the presented key is echoed: {body}"
    );
    assert_eq!(gw.upstream.hits(), 0);
}

#[tokio::test]
async fn the_admin_key_also_works_on_the_data_plane() {
    let gw = Gateway::start().await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(ADMIN_KEY)
        .json(&chat("@openai-mock/m", "as admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn unknown_providers_and_models_are_404_in_the_address_form() {
    let gw = Gateway::start().await;
    let (status, body) = error_of(
        gw.post("/v1/chat/completions", chat("@nope/gpt-4o", "x"))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "provider_not_found");
    assert_eq!(body["error"]["param"], "model");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("@provider/model"), "{message}");
    assert!(
        message.contains("@openai-mock"),
        "should list the providers: {message}"
    );

    let (status, body) = error_of(gw.post("/v1/chat/completions", chat("gpt-4o", "x")).await).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("@provider/model")
    );

    let (status, body) = error_of(
        gw.post("/v1/chat/completions", chat("@restricted/gpt-other", "x"))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("@restricted/gpt-allowed"),
        "should list the allowed models: {message}"
    );
    assert_eq!(gw.upstream.hits(), 0);
}

#[tokio::test]
async fn a_key_limited_to_one_provider_gets_403_elsewhere() {
    let gw = Gateway::start().await;
    let send = |model: &'static str| {
        gw.http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth("prt-test-narrow-key-0123456789")
            .json(&chat(model, "x"))
            .send()
    };
    let (status, body) = error_of(send("@openai-mock/gpt-4o").await.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(send("@restricted/gpt-allowed").await.unwrap().status(), 200);
    assert_eq!(gw.upstream.hits(), 1);
}

#[tokio::test]
async fn malformed_requests_are_400_naming_the_problem() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    let raw = |body: &'static str| {
        gw.http
            .post(&url)
            .bearer_auth(SERVICE_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, body) = error_of(raw("{\"model\": ").await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{body}"
    );

    let (status, body) = error_of(raw(r#"{"messages": []}"#).await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "model");

    let (status, body) = error_of(
        raw(r#"{"model": "@openai-mock/m", "stream": "yes"}"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "stream");

    for bad in ["{not json", r#"{"team": 5}"#, "[]"] {
        let resp = gw
            .http
            .post(&url)
            .bearer_auth(SERVICE_KEY)
            .header("x-portkey-metadata", bad)
            .json(&chat("@openai-mock/m", "x"))
            .send()
            .await
            .unwrap();
        let (status, body) = error_of(resp).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["param"], "x-portkey-metadata", "{bad}");
    }
    assert_eq!(gw.upstream.hits(), 0);
}

#[tokio::test]
async fn models_lists_what_the_key_may_use() {
    let gw = Gateway::start().await;
    let list = |key: &'static str| gw.http.get(gw.url("/v1/models")).bearer_auth(key).send();
    let body: Value = list(SERVICE_KEY).await.unwrap().json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"@restricted/gpt-allowed"), "{ids:?}");
    assert!(ids.contains(&"@restricted/gpt-priced"), "{ids:?}");
    assert!(
        ids.contains(&"@mock/echo"),
        "the built-in mock is listed: {ids:?}"
    );
    assert!(body["data"][0]["object"] == "model");

    let body: Value = list("prt-test-narrow-key-0123456789")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["@restricted/gpt-allowed", "@restricted/gpt-priced"]);

    let (status, _) = error_of(gw.http.get(gw.url("/v1/models")).send().await.unwrap()).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn embeddings_and_completions_are_forwarded() {
    let gw = Gateway::start().await;
    let resp = gw
        .post(
            "/v1/embeddings",
            json!({"model": "@openai-mock/text-embedding-3-small", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let sent = gw.upstream.last_request().unwrap();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.json_body()["model"], "text-embedding-3-small");

    let resp = gw
        .post(
            "/v1/completions",
            json!({"model": "@openai-mock/gpt-3.5-turbo-instruct", "prompt": "Say hi"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["choices"][0]["text"].is_string(), "{body}");
    assert_eq!(gw.upstream.last_request().unwrap().path, "/v1/completions");
}

#[tokio::test]
async fn upstream_errors_keep_their_status_message_and_retry_after() {
    let gw = Gateway::start().await;
    gw.upstream
        .enqueue(MockReply::error(429, "Rate limit reached for gpt-4o").header("retry-after", "7"));
    let resp = gw
        .post("/v1/chat/completions", chat("@openai-mock/gpt-4o", "x"))
        .await;
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["x-portkey-provider"], "@openai-mock");
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["message"], "Rate limit reached for gpt-4o");

    gw.upstream.enqueue(MockReply::raw(
        503,
        "text/html",
        "<html>upstream down</html>",
    ));
    let (status, body) = error_of(
        gw.post("/v1/chat/completions", chat("@openai-mock/gpt-4o", "x"))
            .await,
    )
    .await;
    assert_eq!(status, 503);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream down"),
        "{body}"
    );

    gw.upstream
        .enqueue(MockReply::raw(200, "application/json", "this is not json"));
    let (status, body) = error_of(
        gw.post("/v1/chat/completions", chat("@openai-mock/gpt-4o", "x"))
            .await,
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "upstream_malformed_response");
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    // A port that was just free: bind, note it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        "providers:\n  - slug: dead\n    kind: openai-compatible\n    base_url: http://127.0.0.1:{port}/v1\nkeys:\n  - name: service\n    key: {SERVICE_KEY}\n"
    );
    let gw = Gateway::start_with(upstream, &catalog).await;
    let (status, body) =
        error_of(gw.post("/v1/chat/completions", chat("@dead/m", "x")).await).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    assert!(body["error"]["message"].as_str().unwrap().contains("@dead"));
}

#[tokio::test]
async fn the_built_in_mock_answers_without_any_upstream() {
    let gw = Gateway::start().await;
    let resp = gw
        .post("/v1/chat/completions", chat("@mock/echo", "ping"))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@mock");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("ping"),
        "{body}"
    );
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(gw.upstream.hits(), 0);
}

#[tokio::test]
async fn health_and_unknown_routes() {
    let gw = Gateway::start().await;
    let health = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let (status, body) = error_of(gw.http.post(gw.url("/v1/nothing")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nothing")
    );
    let (status, _) = error_of(
        gw.http
            .get(gw.url("/v1/chat/completions"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn a_silent_upstream_is_cut_by_the_read_timeout_with_504() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portico.yaml");
    std::fs::write(&config, crate::support::standard_catalog(&upstream)).unwrap();
    let data = dir.path().join("data");
    let portico = portico_testkit::PorticoProcess::start(
        &crate::support::bin(),
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[("PORTICO_UPSTREAM_READ_TIMEOUT_MS", "300")],
    )
    .await
    .unwrap();
    upstream.enqueue(MockReply::hang());
    let resp = reqwest::Client::new()
        .post(portico.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&chat("@openai-mock/m", "x"))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PORTICO_UPSTREAM_READ_TIMEOUT_MS")
    );
}

#[tokio::test]
async fn every_request_is_recorded_in_the_access_log_without_secrets() {
    let gw = Gateway::start().await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "trace-log-1")
        .header(
            "x-portkey-metadata",
            r#"{"team":"backend","_user":"alice"}"#,
        )
        .json(&chat("@openai-mock/gpt-4o-mini", "log me"))
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(resp.status(), 200);
    let record = access_record(&gw, &id).await;
    assert_eq!(record["trace_id"], "trace-log-1");
    assert_eq!(record["metadata"]["team"], "backend");
    assert_eq!(record["user"], "alice");
    assert_eq!(record["key_name"], "service");
    assert_eq!(record["provider"], "openai-mock");
    assert_eq!(record["model"], "gpt-4o-mini");
    assert_eq!(record["endpoint"], "chat.completions");
    assert_eq!(record["status"], 200);
    assert_eq!(record["stream"], false);
    assert_eq!(record["outcome"], "completed");
    assert!(record["prompt_tokens"].as_u64().unwrap() > 0);

    let streamed = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "@openai-mock/gpt-4o-mini", "stream": true,
                   "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "stream me"}]}),
        )
        .await;
    let id = streamed.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    streamed.text().await.unwrap();
    let record = access_record(&gw, &id).await;
    assert_eq!(record["stream"], true);
    assert_eq!(record["outcome"], "completed");
    assert!(record["ttft_ms"].is_u64());
    assert!(
        record["completion_tokens"].as_u64().unwrap() > 0,
        "{record}"
    );

    let failed = gw.post("/v1/chat/completions", chat("@nope/x", "x")).await;
    let id = failed.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let record = access_record(&gw, &id).await;
    assert_eq!(record["status"], 404);
    assert_eq!(record["outcome"], "failed");
    assert_eq!(record["error_code"], "provider_not_found");

    let stderr = gw.portico.stderr_text();
    assert!(
        !stderr.contains(SERVICE_KEY),
        "the gateway key is in the log"
    );
    assert!(
        !stderr.contains(PROVIDER_KEY),
        "the provider key is in the log"
    );
    assert!(
        !stderr.contains(crate::support::ADMIN_KEY),
        "the admin key is in the log"
    );
}

/// The names of the process's threads, from `/proc`.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn one_worker_thread_serves_whole_streamed_and_concurrent_requests() {
    let upstream = MockUpstream::start().await;
    let catalog = crate::support::standard_catalog(&upstream);
    let dir = tempfile::tempdir().unwrap();
    let portico =
        crate::support::start_in(dir.path(), &catalog, &[("PORTICO_WORKER_THREADS", "1")]).await;
    // The current-thread scheduler runs requests on the main thread: no tokio workers.
    let names = thread_names(portico.pid());
    assert!(
        !names.iter().any(|n| n.starts_with("tokio-rt-worker")),
        "{names:?}"
    );
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(portico.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .json(&body)
            .send()
    };
    let answers = futures::future::join_all(
        (0..16).map(|i| post(chat("@openai-mock/gpt-4o-mini", &format!("n{i}")))),
    )
    .await;
    for (i, resp) in answers.into_iter().enumerate() {
        let resp = resp.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            format!("echo: n{i}")
        );
    }
    upstream.enqueue(MockReply::sse(portico_testkit::SseScript::chat_text(&[
        "one ", "thread",
    ])));
    let resp = post(json!({"model": "@openai-mock/gpt-4o", "stream": true,
                           "messages": [{"role": "user", "content": "x"}]}))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let chat = portico_testkit::sse::collect_chat_stream(&text).unwrap();
    assert_eq!(chat.content, "one thread");
    assert_eq!(upstream.hits(), 17);

    // More than one thread: the multi-thread scheduler, with that many workers.
    let dir_two = tempfile::tempdir().unwrap();
    let two =
        crate::support::start_in(dir_two.path(), &catalog, &[("PORTICO_WORKER_THREADS", "2")])
            .await;
    let workers = thread_names(two.pid())
        .into_iter()
        .filter(|n| n.starts_with("tokio-rt-worker"))
        .count();
    assert_eq!(workers, 2);
}
