//! Every `default.*` check on a passing and a failing case, with Portkey's parameter names.

use serde_json::{Map, Value, json};

use crate::{Guardrail, Hook, Mutation, Subject};

/// The verdict of the one check in `spec` on `text` (as an answer; input for `hook`).
fn verdict_on(spec: Value, text: &str) -> bool {
    run(spec, text, None, None, "chatComplete")
}

fn run(
    spec: Value,
    text: &str,
    model: Option<&str>,
    metadata: Option<&Map<String, Value>>,
    request_type: &str,
) -> bool {
    let g = Guardrail::parse(&spec, "t").unwrap();
    let subject = Subject {
        hook: Hook::Output,
        text,
        all_text: text,
        model,
        metadata,
        request_type,
    };
    let outcome = g.checks[0].kind.evaluate(&subject, Mutation::default());
    assert!(outcome.error.is_none(), "{spec}: {:?}", outcome.error);
    outcome.verdict
}

#[test]
fn regex_match() {
    let spec = json!({"default.regexMatch": {"rule": "\\d{3}"}});
    assert!(verdict_on(spec.clone(), "call 555"));
    assert!(!verdict_on(spec, "no digits"));
    assert!(verdict_on(
        json!({"default.regexMatch": {"rule": "x", "not": true}}),
        "abc"
    ));
}

#[test]
fn sentence_word_and_character_counts() {
    let s = json!({"default.sentenceCount": {"minSentences": 2, "maxSentences": 3}});
    assert!(verdict_on(s.clone(), "One. Two! Three?"));
    assert!(!verdict_on(s, "Only one."));
    let w = json!({"default.wordCount": {"minWords": 2, "maxWords": 4}});
    assert!(verdict_on(w.clone(), "two  words"));
    assert!(!verdict_on(w, "one two three four five"));
    let c = json!({"default.characterCount": {"minCharacters": 3, "maxCharacters": 5}});
    assert!(verdict_on(c.clone(), "héllo"));
    assert!(!verdict_on(c, "hi"));
}

#[test]
fn json_schema_and_keys() {
    let schema =
        json!({"default.jsonSchema": {"schema": {"type": "object", "required": ["name"]}}});
    assert!(verdict_on(
        schema.clone(),
        "Here: ```json\n{\"name\": \"x\"}\n```"
    ));
    assert!(!verdict_on(schema.clone(), "{\"age\": 3}"));
    assert!(!verdict_on(schema, "no json at all"));
    let keys = json!({"default.jsonKeys": {"keys": ["a", "b"], "operator": "all"}});
    assert!(verdict_on(keys.clone(), "{\"a\": 1, \"b\": 2}"));
    assert!(!verdict_on(keys, "{\"a\": 1}"));
    let none = json!({"default.jsonKeys": {"keys": ["secret"], "operator": "none"}});
    assert!(verdict_on(none.clone(), "{\"a\": 1}"));
    assert!(!verdict_on(none, "{\"secret\": 1}"));
}

#[test]
fn contains_with_each_operator() {
    let any = json!({"default.contains": {"words": ["foo", "bar"], "operator": "any"}});
    assert!(verdict_on(any.clone(), "a foo"));
    assert!(!verdict_on(any, "nothing"));
    let all = json!({"default.contains": {"words": ["foo", "bar"], "operator": "all"}});
    assert!(verdict_on(all.clone(), "foo bar"));
    assert!(!verdict_on(all, "foo"));
    let none = json!({"default.contains": {"words": ["foo"], "operator": "none"}});
    assert!(verdict_on(none.clone(), "bar"));
    assert!(!verdict_on(none, "foo"));
}

#[test]
fn valid_urls_and_code() {
    let urls = json!({"default.validUrls": {"onlyDNS": false}});
    assert!(verdict_on(urls.clone(), "see https://example.com/docs."));
    assert!(!verdict_on(urls, "see https://exa mple and http://nodot/"));
    let code = json!({"default.containsCode": {"format": "Python"}});
    assert!(verdict_on(code.clone(), "```py\nprint(1)\n```"));
    assert!(!verdict_on(code.clone(), "```sql\nSELECT 1\n```"));
    assert!(!verdict_on(code, "plain text"));
}

#[test]
fn case_and_suffix() {
    assert!(verdict_on(
        json!({"default.alluppercase": {}}),
        "HELLO, WORLD 42"
    ));
    assert!(!verdict_on(json!({"default.alluppercase": {}}), "Hello"));
    assert!(verdict_on(
        json!({"default.alllowercase": {}}),
        "hello, world"
    ));
    assert!(!verdict_on(
        json!({"default.alllowercase": {}}),
        "hello World"
    ));
    let ends = json!({"default.endsWith": {"suffix": "Thanks"}});
    assert!(verdict_on(ends.clone(), "Bye. Thanks."));
    assert!(!verdict_on(ends, "Thanks, bye"));
    assert!(verdict_on(
        json!({"default.endsWith": {"suffix": "x", "not": true}}),
        "abc"
    ));
}

#[test]
fn model_whitelist_metadata_keys_request_types_not_null() {
    let models = json!({"default.modelWhitelist": {"models": ["gpt-4o"]}});
    assert!(run(
        models.clone(),
        "t",
        Some("gpt-4o"),
        None,
        "chatComplete"
    ));
    assert!(!run(models, "t", Some("gpt-3.5"), None, "chatComplete"));
    let metadata = json!({"team": "ml"}).as_object().unwrap().clone();
    let rules = json!({"default.modelWhitelist": {"models": ["a"], "metadataRules": [
        {"metadataKey": "team", "values": ["ml"], "models": ["big"]}]}});
    assert!(run(
        rules.clone(),
        "t",
        Some("big"),
        Some(&metadata),
        "chatComplete"
    ));
    assert!(!run(rules, "t", Some("a"), Some(&metadata), "chatComplete"));
    let keys = json!({"default.requiredMetadataKeys": {"metadataKeys": ["team", "env"], "operator": "all"}});
    assert!(!run(
        keys.clone(),
        "t",
        None,
        Some(&metadata),
        "chatComplete"
    ));
    let both = json!({"team": 1, "env": 2}).as_object().unwrap().clone();
    assert!(run(keys, "t", None, Some(&both), "chatComplete"));
    let types = json!({"default.allowedRequestTypes": {"allowedTypes": ["chatComplete"]}});
    assert!(run(types.clone(), "t", None, None, "chatComplete"));
    assert!(!run(types, "t", None, None, "embed"));
    let blocked = json!({"default.allowedRequestTypes": {"blockedTypes": "embed, complete"}});
    assert!(!run(blocked, "t", None, None, "embed"));
    assert!(verdict_on(json!({"default.notNull": {}}), "x"));
    assert!(!verdict_on(json!({"default.notNull": {}}), "  "));
}

#[test]
fn mutators_rewrite_and_report() {
    let g = Guardrail::parse(
        &json!({"default.regexReplace": {"rule": "\\d+", "redactText": "#", "failOnDetection": true}}),
        "t",
    )
    .unwrap();
    let kind = &g.checks[0].kind;
    assert_eq!(kind.rewrite("a1b22"), Some(("a#b#".to_owned(), 2)));
    assert!(kind.rewrite("ab").is_none());
    let subject = Subject {
        hook: Hook::Input,
        text: "a#b#",
        all_text: "a#b#",
        model: None,
        metadata: None,
        request_type: "chatComplete",
    };
    assert!(!kind.evaluate(&subject, Mutation { replaced: 2 }).verdict);
    assert!(kind.evaluate(&subject, Mutation { replaced: 0 }).verdict);
    let prefix = Guardrail::parse(&json!({"default.addPrefix": {"prefix": "Hi "}}), "t").unwrap();
    assert_eq!(
        prefix.checks[0].kind.prefix().unwrap().apply_to_role,
        "user"
    );
}

#[test]
fn no_text_is_an_error_not_a_verdict() {
    let g = Guardrail::parse(&json!({"default.wordCount": {"minWords": 1}}), "t").unwrap();
    let subject = Subject {
        hook: Hook::Input,
        text: "",
        all_text: "",
        model: None,
        metadata: None,
        request_type: "chatComplete",
    };
    let outcome = g.checks[0].kind.evaluate(&subject, Mutation::default());
    assert!(outcome.error.is_some());
}

#[test]
fn webhook_parameters() {
    let g = Guardrail::parse(
        &json!({"default.webhook": {"webhookURL": "http://127.0.0.1:9/h", "headers": {"a": "b"}, "timeout": 250}}),
        "t",
    )
    .unwrap();
    let call = g.checks[0].kind.call().unwrap();
    assert_eq!(call.timeout_ms, 250);
    assert_eq!(call.headers, vec![("a".to_owned(), "b".to_owned())]);
    assert!(Guardrail::parse(&json!({"default.webhook": {"webhookURL": "ftp://x"}}), "t").is_err());
}

#[test]
fn odd_inputs_never_panic() {
    let specs = [
        json!({"default.regexMatch": {"rule": "(?i)é+"}}),
        json!({"default.jsonSchema": {"schema": "{\"type\": \"array\", \"items\": {\"pattern\": \"^a\"}}"}}),
        json!({"default.jsonKeys": {"keys": ["a"], "operator": "none"}}),
        json!({"default.containsCode": {"format": "Rust"}}),
        json!({"default.validUrls": {}}),
        json!({"default.endsWith": {"suffix": "é"}}),
        json!({"default.regexReplace": {"rule": "é", "redactText": "$1"}}),
        json!({"portico.pii": {"redact": true}}),
        json!({"portico.moderation": {"threshold": 0}}),
        json!({"portico.promptInjection": {"threshold": 1}}),
        json!({"default.modelWhitelist": {"metadataRules": [{"metadataKey": "k", "values": ["v"], "models": ["m"]}]}}),
    ];
    let texts = [
        String::new(),
        "```".to_owned(),
        "```\n```".to_owned(),
        "```rust".to_owned(),
        "{".to_owned(),
        "}{".to_owned(),
        "é".repeat(1000),
        "http:// https://é.é 0.0.0.0 ::: 4111-".to_owned(),
        "[".repeat(300) + &"]".repeat(300),
        "\u{0}\u{feff}\u{10ffff} 123-45-6789 +1 (555) 000".to_owned(),
    ];
    let metadata = json!({"k": ["v", 1, null]}).as_object().unwrap().clone();
    for spec in &specs {
        let g = Guardrail::parse(spec, "t").unwrap();
        for text in &texts {
            for hook in [Hook::Input, Hook::Output] {
                let subject = Subject {
                    hook,
                    text,
                    all_text: text,
                    model: Some("m"),
                    metadata: Some(&metadata),
                    request_type: "messages",
                };
                let kind = &g.checks[0].kind;
                let _ = kind.rewrite(text);
                let _ = kind.evaluate(&subject, Mutation { replaced: 1 });
            }
        }
    }
    for odd in [
        json!(null),
        json!({"checks": {}}),
        json!({"checks": [null]}),
        json!({"checks": [{"id": 3}]}),
        json!({"default.wordCount": [1]}),
        json!({"default.wordCount": {"minWords": -1}}),
        json!({"default.webhook": {"webhookURL": "http://h", "timeout": 0}}),
        json!({"default.regexMatch": {"rule": "a".repeat(5000)}}),
        json!({"default.regexMatch": {"rule": "\\w{1000}{1000}"}}),
        json!({"id": "bad id!", "default.notNull": {}}),
    ] {
        assert!(Guardrail::parse(&odd, "t").is_err(), "{odd}");
    }
}

#[test]
fn moderation_takes_a_provider_model_and_timeout() {
    let g = Guardrail::parse(
        &json!({"portico.moderation": {"provider": "@openai-prod", "categories": ["self_harm"]}}),
        "t",
    )
    .unwrap();
    let (provider, categories) = g.checks[0].kind.moderation_provider().unwrap();
    assert_eq!(provider.slug, "openai-prod");
    assert_eq!(provider.model, "omni-moderation-latest");
    assert_eq!(provider.timeout_ms, 3_000);
    assert_eq!(provider.threshold, None);
    assert_eq!(categories, [crate::moderation::Category::SelfHarm]);
    let g = Guardrail::parse(
        &json!({"portico.moderation": {"provider": "oa", "model": "text-moderation-stable", "timeout": 500, "threshold": 0.2}}),
        "t",
    )
    .unwrap();
    let (provider, _) = g.checks[0].kind.moderation_provider().unwrap();
    assert_eq!(
        (provider.model.as_str(), provider.timeout_ms),
        ("text-moderation-stable", 500)
    );
    assert_eq!(provider.threshold, Some(0.2));
    // Without a provider the local classifier runs.
    let local = Guardrail::parse(&json!({"portico.moderation": {}}), "t").unwrap();
    assert!(local.checks[0].kind.moderation_provider().is_none());
    for (params, field) in [
        (
            json!({"provider": "@oa/omni-moderation-latest"}),
            "provider",
        ),
        (json!({"provider": ""}), "provider"),
        (json!({"model": "omni-moderation-latest"}), "model"),
        (json!({"provider": "@oa", "timeout": 0}), "timeout"),
    ] {
        let err = Guardrail::parse(&json!({"portico.moderation": params}), "t").unwrap_err();
        assert_eq!(err.path, format!("portico.moderation.{field}"), "{err}");
    }
}
