//! The text a check reads, and rewriting it, in both API families' shapes.
//!
//! Requests: chat completions and Anthropic Messages (`messages[].content` as a string or
//! as parts with `text`; Messages' `system` as a string or blocks), completions (`prompt`),
//! embeddings (`input`). As in Portkey, the `default.*` checks read the *last* message's
//! text; the `portico.*` detectors read every text (the system prompt and all messages).
//! Responses requests read `instructions` and the `input` items' content (the last item is
//! the last message).
//! Answers: chat completions (`choices[].message.content`, `choices[].text`), Messages
//! (`content[].text`), Responses (`output[].content[].text`), and a stream's events
//! (`choices[].delta.content`, Messages' `content_block_delta` `delta.text`, Responses'
//! `response.output_text.delta`) assembled.

use serde_json::{Map, Value};

use crate::checks::Prefix;

/// A request's texts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestText {
    /// The last message's text (or `prompt` / `input`): what `default.*` checks read.
    pub last: String,
    /// Every text, joined by newlines: what `portico.*` detectors read.
    pub all: String,
}

fn push_content(content: &Value, out: &mut String) {
    match content {
        Value::String(s) => {
            push_line(out, s);
        }
        Value::Array(parts) => {
            for part in parts {
                match part {
                    Value::String(s) => push_line(out, s),
                    Value::Object(o) => {
                        if let Some(Value::String(s)) = o.get("text") {
                            push_line(out, s);
                        } else if let Some(inner) = o.get("content").or_else(|| o.get("output")) {
                            // A Responses input item: a message, or a function call's output.
                            push_content(inner, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn push_line(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(s);
}

/// The texts of a request body.
pub fn request_text(body: &Map<String, Value>) -> RequestText {
    let mut text = RequestText::default();
    if let Some(system) = body.get("system") {
        push_content(system, &mut text.all);
    }
    if let Some(Value::Array(messages)) = body.get("messages") {
        for message in messages {
            if let Some(content) = message.get("content") {
                push_content(content, &mut text.all);
            }
        }
        if let Some(content) = messages.last().and_then(|m| m.get("content")) {
            push_content(content, &mut text.last);
        }
        return text;
    }
    if let Some(instructions) = body.get("instructions") {
        push_content(instructions, &mut text.all);
    }
    for field in ["prompt", "input"] {
        if let Some(value) = body.get(field) {
            // Responses input items: the last item is the last message.
            match value.as_array().and_then(|items| items.last()) {
                Some(Value::Object(item)) if item.contains_key("content") => {
                    if let Some(content) = item.get("content") {
                        push_content(content, &mut text.last);
                    }
                }
                _ => push_content(value, &mut text.last),
            }
            push_content(value, &mut text.all);
            break;
        }
    }
    text
}

fn rewrite_content(content: &mut Value, f: &mut dyn FnMut(&str) -> Option<String>) -> bool {
    let mut changed = false;
    match content {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
                changed = true;
            }
        }
        Value::Array(parts) => {
            for part in parts {
                match part {
                    Value::String(s) => {
                        if let Some(new) = f(s) {
                            *s = new;
                            changed = true;
                        }
                    }
                    Value::Object(o) => {
                        if let Some(Value::String(s)) = o.get_mut("text") {
                            if let Some(new) = f(s) {
                                *s = new;
                                changed = true;
                            }
                        } else if let Some(inner) = o.get_mut("content") {
                            // A Responses input item's content.
                            changed |= rewrite_content(inner, f);
                        } else if let Some(inner) = o.get_mut("output") {
                            changed |= rewrite_content(inner, f);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    changed
}

/// Rewrites every text of a request with `f` (which returns the new text, or `None` to keep
/// it); whether anything changed.
pub fn rewrite_request(
    body: &mut Map<String, Value>,
    f: &mut dyn FnMut(&str) -> Option<String>,
) -> bool {
    let mut changed = false;
    for field in ["system", "instructions", "prompt", "input"] {
        if let Some(value) = body.get_mut(field) {
            changed |= rewrite_content(value, f);
        }
    }
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for message in messages {
            if let Some(content) = message.get_mut("content") {
                changed |= rewrite_content(content, f);
            }
        }
    }
    changed
}

/// Applies `default.addPrefix` to a request (chat `messages`, or a completion's `prompt`);
/// whether anything changed.
pub fn add_prefix(body: &mut Map<String, Value>, p: &Prefix) -> bool {
    if let Some(Value::String(prompt)) = body.get_mut("prompt") {
        prompt.insert_str(0, &p.prefix);
        return true;
    }
    let Some(Value::Array(messages)) = body.get_mut("messages") else {
        return false;
    };
    let role_of = |m: &Value| m.get("role").and_then(Value::as_str).map(str::to_owned);
    let target = messages
        .iter()
        .position(|m| role_of(m).as_deref() == Some(p.apply_to_role.as_str()));
    let new_message = || {
        let mut m = Map::new();
        m.insert("role".to_owned(), Value::String(p.apply_to_role.clone()));
        m.insert("content".to_owned(), Value::String(p.prefix.clone()));
        Value::Object(m)
    };
    match target {
        Some(_) if p.only_if_empty => false,
        Some(i) if p.add_to_existing => {
            match messages.get_mut(i).and_then(|m| m.get_mut("content")) {
                Some(Value::String(s)) => {
                    s.insert_str(0, &p.prefix);
                    true
                }
                Some(Value::Array(parts)) => {
                    let mut part = Map::new();
                    part.insert("type".to_owned(), Value::String("text".to_owned()));
                    part.insert("text".to_owned(), Value::String(p.prefix.clone()));
                    parts.insert(0, Value::Object(part));
                    true
                }
                _ => false,
            }
        }
        Some(i) => {
            messages.insert(i, new_message());
            true
        }
        None => {
            if p.apply_to_role == "system" {
                messages.insert(0, new_message());
            } else {
                messages.push(new_message());
            }
            true
        }
    }
}

/// The text of a whole answer, in either family.
pub fn response_text(body: &Value) -> String {
    let mut out = String::new();
    if let Some(Value::Array(choices)) = body.get("choices") {
        for choice in choices {
            if let Some(content) = choice.get("message").and_then(|m| m.get("content")) {
                push_content(content, &mut out);
            } else if let Some(Value::String(t)) = choice.get("text") {
                push_line(&mut out, t);
            }
        }
    } else if let Some(content) = body.get("content") {
        push_content(content, &mut out);
    } else if let Some(Value::Array(output)) = body.get("output") {
        // A Responses object: its message items' `content[].text`.
        for item in output {
            if let Some(content) = item.get("content") {
                push_content(content, &mut out);
            }
        }
    }
    out
}

/// Rewrites every text of a whole answer; whether anything changed.
pub fn rewrite_response(body: &mut Value, f: &mut dyn FnMut(&str) -> Option<String>) -> bool {
    let mut changed = false;
    if let Some(Value::Array(choices)) = body.get_mut("choices") {
        for choice in choices {
            if let Some(content) = choice.get_mut("message").and_then(|m| m.get_mut("content")) {
                changed |= rewrite_content(content, f);
            } else if let Some(t) = choice.get_mut("text") {
                changed |= rewrite_content(t, f);
            }
        }
    } else if let Some(content) = body.get_mut("content") {
        changed |= rewrite_content(content, f);
    } else if let Some(Value::Array(output)) = body.get_mut("output") {
        for item in output {
            if let Some(content) = item.get_mut("content") {
                changed |= rewrite_content(content, f);
            }
        }
    }
    changed
}

/// The text of a streamed answer, assembled from its server-sent events as sent to the
/// client (OpenAI chunks or Anthropic Messages events).
pub fn stream_text(sse: &[u8]) -> String {
    let mut out = String::new();
    for line in sse.split(|b| *b == b'\n') {
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            continue;
        };
        if let Some(Value::Array(choices)) = event.get("choices") {
            for choice in choices {
                if let Some(Value::String(t)) = choice.get("delta").and_then(|d| d.get("content")) {
                    out.push_str(t);
                } else if let Some(Value::String(t)) = choice.get("text") {
                    out.push_str(t);
                }
            }
        } else if event.get("type").and_then(Value::as_str) == Some("content_block_delta")
            && let Some(Value::String(t)) = event.get("delta").and_then(|d| d.get("text"))
        {
            out.push_str(t);
        } else if event.get("type").and_then(Value::as_str) == Some("response.output_text.delta")
            && let Some(Value::String(t)) = event.get("delta")
        {
            out.push_str(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn reads_the_last_message_and_all_texts() {
        let body = map(json!({"system": "sys", "messages": [
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]}]}));
        let t = request_text(&body);
        assert_eq!(t.last, "second");
        assert_eq!(t.all, "sys\nfirst\nsecond");
        assert_eq!(
            request_text(&map(json!({"input": ["a", "b"]}))).last,
            "a\nb"
        );
    }

    #[test]
    fn prefixes_and_rewrites() {
        let mut body = map(json!({"messages": [{"role": "user", "content": "hi"}]}));
        let p = Prefix {
            prefix: "Be brief. ".into(),
            apply_to_role: "user".into(),
            add_to_existing: true,
            only_if_empty: false,
        };
        assert!(add_prefix(&mut body, &p));
        assert_eq!(body["messages"][0]["content"], "Be brief. hi");
        let sys = Prefix {
            apply_to_role: "system".into(),
            ..p
        };
        assert!(add_prefix(&mut body, &sys));
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(rewrite_request(&mut body, &mut |s| s
            .contains("hi")
            .then(|| s.replace("hi", "yo"))));
        assert_eq!(body["messages"][1]["content"], "Be brief. yo");
    }

    #[test]
    fn reads_and_rewrites_responses_shapes() {
        let mut body = map(json!({"instructions": "sys", "input": [
            {"role": "user", "content": "first"},
            {"type": "function_call_output", "call_id": "c", "output": "tool said"},
            {"role": "user", "content": [{"type": "input_text", "text": "last one"}]}]}));
        let t = request_text(&body);
        assert_eq!(t.last, "last one");
        assert_eq!(t.all, "sys\nfirst\ntool said\nlast one");
        assert!(rewrite_request(&mut body, &mut |s| Some(s.to_uppercase())));
        assert_eq!(body["input"][0]["content"], "FIRST");
        assert_eq!(body["input"][2]["content"][0]["text"], "LAST ONE");
        assert_eq!(body["instructions"], "SYS");
        let answer = json!({"object": "response", "output": [
            {"type": "reasoning", "summary": []},
            {"type": "message", "content": [{"type": "output_text", "text": "hi there"}]}]});
        assert_eq!(response_text(&answer), "hi there");
        let sse = b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi \"}\n\nevent: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"there\"}\n\n";
        assert_eq!(stream_text(sse), "hi there");
    }

    #[test]
    fn assembles_answers_of_both_families() {
        assert_eq!(
            response_text(&json!({"choices": [{"message": {"content": "a b"}}]})),
            "a b"
        );
        assert_eq!(
            response_text(&json!({"content": [{"type": "text", "text": "x"}]})),
            "x"
        );
        let sse = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(stream_text(sse), "Hello");
        let msgs = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
        assert_eq!(stream_text(msgs), "Hi");
    }
}
