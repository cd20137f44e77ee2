//! What each local check costs on a 30 KB OpenClaw-like request (docs/performance.md).

#![expect(
    clippy::unwrap_used,
    reason = "benchmark code: a panic reports a broken setup"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use portico_guardrails::{Guardrail, Hook, Mutation, Subject, text};
use serde_json::{Value, json};

/// An OpenClaw-style agent request: a long system prompt with tool descriptions, a few turns
/// of conversation with file contents, about 30 KB, with a little PII in the last turn.
fn openclaw_request() -> Value {
    let mut system =
        String::from("You are OpenClaw, a coding agent. Follow the repository's conventions. ");
    while system.len() < 12_000 {
        system.push_str("Tool `read_file(path)`: returns the file's contents. Tool `bash(cmd)`: runs a command in the sandbox and returns stdout and stderr. Always explain what you change and why. ");
    }
    let mut file = String::new();
    while file.len() < 15_000 {
        file.push_str("fn handle(req: Request) -> Result<Response, Error> {\n    let body = req.body()?;\n    Ok(Response::new(body))\n}\n");
    }
    json!({
        "model": "@anthropic/claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "Refactor the auth module."},
            {"role": "assistant", "content": "Reading src/auth.rs first."},
            {"role": "user", "content": file},
            {"role": "user", "content": "Also mail the summary to jane.doe@example.com and bill card 4111 1111 1111 1111. Ignore nothing."}
        ]
    })
}

fn bench(c: &mut Criterion) {
    let body = openclaw_request();
    let map = body.as_object().unwrap().clone();
    let texts = text::request_text(&map);
    let subject = Subject {
        hook: Hook::Input,
        text: &texts.last,
        all_text: &texts.all,
        model: Some("@anthropic/claude-sonnet-4-5"),
        metadata: None,
        request_type: "chatComplete",
    };
    let mut group = c.benchmark_group("guardrails_30kb");
    let raw = serde_json::to_vec(&body).unwrap();
    // What the policy pays before any check: the body parsed into a map (it is kept as raw
    // bytes until then), and the texts read from it.
    group.bench_function("parse_body", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Map<String, Value>>(&raw).unwrap())
    });
    group.bench_function("extract_text", |b| b.iter(|| text::request_text(&map)));
    let checks = [
        ("portico.pii", json!({"portico.pii": {}})),
        ("portico.moderation", json!({"portico.moderation": {}})),
        (
            "portico.promptInjection",
            json!({"portico.promptInjection": {}}),
        ),
        (
            "default.regexMatch",
            json!({"default.regexMatch": {"rule": "\\bpassword\\s*="}}),
        ),
        (
            "default.wordCount",
            json!({"default.wordCount": {"minWords": 1, "maxWords": 100000}}),
        ),
        (
            "default.contains",
            json!({"default.contains": {"words": ["DROP TABLE", "rm -rf"], "operator": "none"}}),
        ),
    ];
    for (name, spec) in checks {
        let guardrail = Guardrail::parse(&spec, name).unwrap();
        let check = &guardrail.checks[0];
        group.bench_function(name, |b| {
            b.iter(|| check.kind.evaluate(&subject, Mutation::default()))
        });
        if name.starts_with("default.") {
            // The default checks read the last message; this is the same check on all 30 KB.
            let whole = Subject {
                text: &texts.all,
                ..subject
            };
            group.bench_function(format!("{name}_on_30kb"), |b| {
                b.iter(|| check.kind.evaluate(&whole, Mutation::default()))
            });
        }
    }
    let redact = Guardrail::parse(&json!({"portico.pii": {"redact": true}}), "r").unwrap();
    group.bench_function("portico.pii_redact_request", |b| {
        b.iter(|| {
            let mut m = map.clone();
            text::rewrite_request(&mut m, &mut |s| {
                redact.checks[0].kind.rewrite(s).map(|(t, _)| t)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
