//! Default replies in Azure OpenAI's dialect, on its two URL schemes:
//!
//! - classic: `POST /openai/deployments/{deployment}/{chat/completions|completions|embeddings}`
//!   with an `api-version` query (without one Azure answers 404 `Resource not found`, and so
//!   does the mock);
//! - v1: `POST /openai/v1/{chat/completions|completions|embeddings}`, no `api-version`.
//!
//! Both need the `api-key` header or an Entra ID token as `Authorization: Bearer` (401 in
//! Azure's shape otherwise); a non-bearer `Authorization` (an OpenAI-style key in another
//! scheme) is not accepted. The answer is the OpenAI default of [`crate::defaults`] for
//! the same operation, with what Azure adds: chat answers carry `prompt_filter_results`, and
//! chat streams start with a chunk whose `choices` is `[]` carrying only those results, as
//! Azure's do. Tests read what was sent (path, `api-version`, headers) from the recorded
//! requests.

use serde_json::{Value, json};

use crate::script::{ReplyBody, SseStep};
use crate::{MockReply, RecordedRequest};

/// The default reply for a request on one of Azure's paths; `None` for other paths.
pub(super) fn default_reply(req: &RecordedRequest) -> Option<MockReply> {
    let (openai_path, classic) = openai_path(&req.path)?;
    if req.method != "POST" {
        return Some(azure_error(405, "405", "Method not allowed"));
    }
    let has_key = req.header("api-key").is_some_and(|k| !k.trim().is_empty());
    let has_token = req.bearer().is_some_and(|t| !t.trim().is_empty());
    if !has_key && !has_token {
        return Some(azure_error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
             provide a valid key for an active subscription and use a correct regional API \
             endpoint for your resource.",
        ));
    }
    if classic && api_version(req).is_none() {
        return Some(azure_error(404, "404", "Resource not found"));
    }
    let mut openai = req.clone();
    openai.path = openai_path;
    let mut reply = crate::defaults::default_reply(&openai);
    if openai.path == "/v1/chat/completions" && reply.status.is_success() {
        add_prompt_filter_results(&mut reply);
    }
    Some(reply)
}

/// The OpenAI path an Azure path stands for, and whether it is a classic (deployment) path.
fn openai_path(path: &str) -> Option<(String, bool)> {
    let operation = |rest: &str| {
        matches!(rest, "chat/completions" | "completions" | "embeddings")
            .then(|| format!("/v1/{rest}"))
    };
    if let Some(rest) = path.strip_prefix("/openai/v1/") {
        return Some((operation(rest)?, false));
    }
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (deployment, rest) = rest.split_once('/')?;
    if deployment.is_empty() {
        return None;
    }
    Some((operation(rest)?, true))
}

/// The `api-version` query value, if any.
fn api_version(req: &RecordedRequest) -> Option<&str> {
    req.query
        .as_deref()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("api-version="))
        .filter(|v| !v.is_empty())
}

/// An error in Azure's shape: `{"error": {"code", "message"}}` (no `type`).
fn azure_error(status: u16, code: &str, message: &str) -> MockReply {
    MockReply::json(
        status,
        json!({ "error": { "code": code, "message": message } }),
    )
}

/// What Azure's content filter reports for a harmless text.
fn filter_results() -> Value {
    let safe = json!({ "filtered": false, "severity": "safe" });
    json!({ "hate": safe, "self_harm": safe, "sexual": safe, "violence": safe })
}

/// The prompt-only first chunk of an Azure chat stream.
fn prompt_filter_chunk() -> Value {
    json!({
        "choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{ "prompt_index": 0, "content_filter_results": filter_results() }],
    })
}

/// Adds Azure's filter results to an OpenAI default chat answer: a first chunk in a stream,
/// fields in a JSON answer.
fn add_prompt_filter_results(reply: &mut MockReply) {
    match &mut reply.body {
        ReplyBody::Sse(script) => {
            let chunk = format!("data: {}\n\n", prompt_filter_chunk());
            script.steps.push_front(SseStep::Send(chunk.into()));
        }
        ReplyBody::Bytes { body, .. } => {
            let Ok(mut answer) = serde_json::from_slice::<Value>(body) else {
                return;
            };
            answer["prompt_filter_results"] =
                json!([{ "prompt_index": 0, "content_filter_results": filter_results() }]);
            if let Some(choices) = answer.get_mut("choices").and_then(Value::as_array_mut) {
                for choice in choices {
                    choice["content_filter_results"] = filter_results();
                }
            }
            *body = answer.to_string().into();
        }
        ReplyBody::Echo
        | ReplyBody::Hang
        | ReplyBody::Endless { .. }
        | ReplyBody::FromRequest(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, Method};

    use super::*;

    fn request(path: &str, query: Option<&str>, key: Option<&str>, body: Value) -> RecordedRequest {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert("api-key", key.parse().unwrap());
        }
        RecordedRequest {
            seq: 1,
            method: Method::POST,
            path: path.to_owned(),
            query: query.map(str::to_owned),
            headers,
            body: Bytes::from(body.to_string()),
            json: Some(body),
        }
    }

    fn json_of(reply: &MockReply) -> Value {
        match &reply.body {
            ReplyBody::Bytes { body, .. } => serde_json::from_slice(body).unwrap(),
            other => panic!("not JSON: {other:?}"),
        }
    }

    fn chat(stream: bool) -> Value {
        json!({"model": "dep", "stream": stream, "messages": [{"role": "user", "content": "hi there"}]})
    }

    #[test]
    fn paths_map_to_openai_ones() {
        let cases = [
            (
                "/openai/deployments/d/chat/completions",
                Some(("/v1/chat/completions", true)),
            ),
            (
                "/openai/deployments/d/embeddings",
                Some(("/v1/embeddings", true)),
            ),
            ("/openai/v1/completions", Some(("/v1/completions", false))),
            ("/openai/deployments//chat/completions", None),
            ("/openai/deployments/d/models", None),
            ("/v1/chat/completions", None),
        ];
        for (path, expected) in cases {
            let got = openai_path(path);
            assert_eq!(
                got.as_ref().map(|(p, c)| (p.as_str(), *c)),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn classic_chat_answers_with_filter_results() {
        let req = request(
            "/openai/deployments/dep/chat/completions",
            Some("api-version=2024-10-21"),
            Some("k"),
            chat(false),
        );
        let reply = default_reply(&req).unwrap();
        assert_eq!(reply.status, 200);
        let answer = json_of(&reply);
        assert_eq!(answer["choices"][0]["message"]["content"], "echo: hi there");
        assert_eq!(answer["model"], "dep");
        assert!(answer["prompt_filter_results"].is_array());
        assert!(answer["choices"][0]["content_filter_results"].is_object());
    }

    #[test]
    fn chat_streams_start_with_a_prompt_filter_chunk() {
        let req = request("/openai/v1/chat/completions", None, Some("k"), chat(true));
        let reply = default_reply(&req).unwrap();
        let ReplyBody::Sse(script) = &reply.body else {
            panic!("expected a stream");
        };
        let Some(SseStep::Send(first)) = script.steps.front() else {
            panic!("no first chunk");
        };
        let first = String::from_utf8_lossy(first);
        let first: Value =
            serde_json::from_str(first.trim().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(first, prompt_filter_chunk());
    }

    #[test]
    fn key_and_version_are_required() {
        let no_key = request(
            "/openai/deployments/d/chat/completions",
            Some("api-version=2024-10-21"),
            None,
            chat(false),
        );
        let reply = default_reply(&no_key).unwrap();
        assert_eq!(reply.status, 401);
        assert_eq!(json_of(&reply)["error"]["code"], "401");

        let no_version = request(
            "/openai/deployments/d/embeddings",
            None,
            Some("k"),
            json!({"input": "x"}),
        );
        let reply = default_reply(&no_version).unwrap();
        assert_eq!(reply.status, 404);
        assert_eq!(json_of(&reply)["error"]["message"], "Resource not found");

        // The v1 API takes none.
        let v1 = request(
            "/openai/v1/embeddings",
            None,
            Some("k"),
            json!({"input": "x"}),
        );
        assert_eq!(default_reply(&v1).unwrap().status, 200);
        assert!(default_reply(&request("/elsewhere", None, Some("k"), json!({}))).is_none());
    }
}
