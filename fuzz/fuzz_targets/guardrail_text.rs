//! The built-in guardrail checks over client text (portico-guardrails): PII detection and
//! redaction, the prompt-injection score, the moderation scores, and the text readers of a
//! request body, a response body and a streamed answer.
//! Property: no panic; a redaction's text holds no PII of the kinds it redacted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_guardrails::{injection, moderation, pii, text};

fuzz_target!(|data: &[u8]| {
    // The stream reader takes raw SSE bytes.
    let _ = text::stream_text(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = text::response_text(&value);
        if let serde_json::Value::Object(body) = &value {
            let _ = text::request_text(body);
        }
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let kinds = pii::PiiKind::ALL;
    let found = pii::find(s, &kinds);
    let _ = pii::summary(&pii::counts(&found));
    if let Some((redacted, _)) = pii::redact(s, &kinds) {
        // Redaction reaches a fixed point: what it wrote holds nothing more to redact.
        assert!(
            pii::find(&redacted, &kinds).is_empty(),
            "redacted text still holds PII: {redacted:?}"
        );
    }
    let (score, _) = injection::score(s);
    assert!(score.is_finite());
    let categories = moderation::Category::ALL;
    for (_, score, _) in moderation::scores(s, &categories) {
        assert!(score.is_finite());
    }
});
