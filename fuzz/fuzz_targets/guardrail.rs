//! The Portkey guardrail shapes (portico-guardrails): a guardrail object in the full shape
//! (`checks`, `deny`, ...) or Portkey's shorthand (`{"default.wordCount": {...}}`).
//! Property: no panic; an error names a field path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_guardrails::Guardrail;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = Guardrail::parse(&value, "fuzz-inline");
    // The same shape inside a list, as `input_guardrails` holds them.
    if let serde_json::Value::Array(items) = &value {
        for (i, item) in items.iter().enumerate() {
            let _ = Guardrail::parse(item, &format!("fuzz-{i}"));
        }
    }
});
