use serde_json::{Value, json};

use super::*;

fn query(v: Value) -> Query {
    match Query::parse(&v, &FieldPath::root().key("query")) {
        Ok(q) => q,
        Err(e) => panic!("{v} should parse: {e}"),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Evaluates `q` against metadata `m` and body `p`.
fn matches(q: Value, m: Value, p: Value) -> bool {
    let (metadata, params) = (obj(m), obj(p));
    let cx = RequestContext {
        metadata: &metadata,
        params: &params,
        url_path: Some("/v1/chat/completions"),
        model: None,
    };
    query(q).matches(&cx)
}

fn meta(q: Value, m: Value) -> bool {
    matches(q, m, json!({}))
}

fn params(q: Value, p: Value) -> bool {
    matches(q, json!({}), p)
}

#[test]
fn eq_and_literal_shorthand() {
    let m = json!({"plan": "pro"});
    assert!(meta(json!({"metadata.plan": {"$eq": "pro"}}), m.clone()));
    assert!(meta(json!({"metadata.plan": "pro"}), m.clone()));
    assert!(!meta(json!({"metadata.plan": {"$eq": "free"}}), m.clone()));
    assert!(!meta(json!({"metadata.tier": {"$eq": "pro"}}), m.clone()));
    // Strings are not numbers for $eq, but 1 and 1.0 are equal.
    assert!(!meta(json!({"metadata.n": {"$eq": 3}}), json!({"n": "3"})));
    assert!(params(
        json!({"params.temperature": 1}),
        json!({"temperature": 1.0})
    ));
    assert!(params(
        json!({"params.response_format": {"$eq": {"type": "json_object"}}}),
        json!({"response_format": {"type": "json_object"}})
    ));
    assert!(params(
        json!({"params.stop": {"$eq": ["a", 1]}}),
        json!({"stop": ["a", 1.0]})
    ));
    assert!(!params(
        json!({"params.stop": {"$eq": ["a"]}}),
        json!({"stop": ["a", "b"]})
    ));
}

#[test]
fn ne() {
    let m = json!({"plan": "pro"});
    assert!(meta(json!({"metadata.plan": {"$ne": "free"}}), m.clone()));
    assert!(!meta(json!({"metadata.plan": {"$ne": "pro"}}), m.clone()));
    // A missing field is "not equal" to anything.
    assert!(meta(json!({"metadata.region": {"$ne": "eu"}}), m));
}

#[test]
fn numeric_comparisons_accept_numeric_strings() {
    let p = json!({"temperature": 0.7, "max_tokens": 100});
    assert!(params(
        json!({"params.temperature": {"$gt": 0.5}}),
        p.clone()
    ));
    assert!(!params(
        json!({"params.temperature": {"$gt": 0.7}}),
        p.clone()
    ));
    assert!(params(
        json!({"params.temperature": {"$gte": 0.7}}),
        p.clone()
    ));
    assert!(params(json!({"params.temperature": {"$lt": 1}}), p.clone()));
    assert!(!params(
        json!({"params.temperature": {"$lt": 0.7}}),
        p.clone()
    ));
    assert!(params(
        json!({"params.temperature": {"$lte": 0.7}}),
        p.clone()
    ));
    // Range: every operator on a field must hold.
    assert!(params(
        json!({"params.max_tokens": {"$gte": 50, "$lt": 200}}),
        p.clone()
    ));
    assert!(!params(
        json!({"params.max_tokens": {"$gte": 150, "$lt": 200}}),
        p.clone()
    ));
    // Operand given as a numeric string (Portkey parses both sides).
    assert!(params(
        json!({"params.max_tokens": {"$gt": "99"}}),
        p.clone()
    ));
    // Metadata values are strings.
    assert!(meta(
        json!({"metadata.tier": {"$gte": 2}}),
        json!({"tier": "3"})
    ));
    assert!(!meta(
        json!({"metadata.tier": {"$gte": 2}}),
        json!({"tier": "1"})
    ));
    // Not a number: no match, in either direction.
    assert!(!meta(
        json!({"metadata.tier": {"$gt": 0}}),
        json!({"tier": "gold"})
    ));
    assert!(!meta(
        json!({"metadata.tier": {"$lt": 100}}),
        json!({"tier": "gold"})
    ));
    assert!(!params(
        json!({"params.stream": {"$lt": 2}}),
        json!({"stream": true})
    ));
    // Missing: no match.
    assert!(!params(json!({"params.top_p": {"$lt": 2}}), p));
}

#[test]
fn in_and_nin() {
    let m = json!({"region": "eu-west"});
    assert!(meta(
        json!({"metadata.region": {"$in": ["eu-west", "eu-central"]}}),
        m.clone()
    ));
    assert!(!meta(
        json!({"metadata.region": {"$in": ["us-east"]}}),
        m.clone()
    ));
    assert!(!meta(json!({"metadata.region": {"$in": []}}), m.clone()));
    assert!(meta(
        json!({"metadata.region": {"$nin": ["us-east"]}}),
        m.clone()
    ));
    assert!(!meta(
        json!({"metadata.region": {"$nin": ["eu-west"]}}),
        m.clone()
    ));
    // Missing field: not in any list.
    assert!(!meta(json!({"metadata.zone": {"$in": ["a"]}}), m.clone()));
    assert!(meta(json!({"metadata.zone": {"$nin": ["a"]}}), m));
    assert!(params(
        json!({"params.n": {"$in": [1, 2]}}),
        json!({"n": 2.0})
    ));
}

#[test]
fn regex() {
    let p = json!({"model": "gpt-4o-mini"});
    assert!(params(
        json!({"params.model": {"$regex": "^gpt-4o"}}),
        p.clone()
    ));
    assert!(params(
        json!({"params.model": {"$regex": "mini$"}}),
        p.clone()
    ));
    assert!(!params(
        json!({"params.model": {"$regex": "^claude"}}),
        p.clone()
    ));
    assert!(params(
        json!({"params.model": {"$regex": "(?i)GPT"}}),
        p.clone()
    ));
    // Numbers and booleans match by their JSON text; objects never.
    assert!(params(
        json!({"params.n": {"$regex": "^4\\d$"}}),
        json!({"n": 42})
    ));
    assert!(params(
        json!({"params.stream": {"$regex": "^true$"}}),
        json!({"stream": true})
    ));
    assert!(!params(
        json!({"params.m": {"$regex": "."}}),
        json!({"m": {"a": 1}})
    ));
    assert!(!params(
        json!({"params.missing": {"$regex": ".*"}}),
        p.clone()
    ));
    // All operators hold, not just the regex (Portkey returned early here).
    assert!(!params(
        json!({"params.model": {"$regex": "^gpt", "$ne": "gpt-4o-mini"}}),
        p
    ));
}

#[test]
fn and_or() {
    let m = json!({"plan": "pro", "region": "eu"});
    assert!(meta(
        json!({"$and": [{"metadata.plan": "pro"}, {"metadata.region": "eu"}]}),
        m.clone()
    ));
    assert!(!meta(
        json!({"$and": [{"metadata.plan": "pro"}, {"metadata.region": "us"}]}),
        m.clone()
    ));
    assert!(meta(
        json!({"$or": [{"metadata.plan": "free"}, {"metadata.region": "eu"}]}),
        m.clone()
    ));
    assert!(!meta(
        json!({"$or": [{"metadata.plan": "free"}, {"metadata.region": "us"}]}),
        m.clone()
    ));
    // Nested, and beside a field (all keys must hold: Portkey's $or ignored its siblings).
    assert!(meta(
        json!({"$or": [{"$and": [{"metadata.plan": "pro"}, {"metadata.region": "eu"}]}, {"metadata.plan": "enterprise"}]}),
        m.clone()
    ));
    assert!(!meta(
        json!({"$or": [{"metadata.plan": "pro"}], "metadata.region": "us"}),
        m.clone()
    ));
    assert!(meta(
        json!({"$or": [{"metadata.plan": "pro"}], "metadata.region": "eu"}),
        m.clone()
    ));
    // Implicit AND of several fields.
    assert!(meta(
        json!({"metadata.plan": "pro", "metadata.region": "eu"}),
        m.clone()
    ));
    assert!(!meta(
        json!({"metadata.plan": "pro", "metadata.region": "us"}),
        m
    ));
}

#[test]
fn dotted_paths_walk_objects_and_arrays() {
    let p = json!({
        "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "t"}}
    });
    assert!(params(
        json!({"params.messages.0.role": "system"}),
        p.clone()
    ));
    assert!(params(
        json!({"params.messages.1.content": {"$regex": "^h"}}),
        p.clone()
    ));
    assert!(params(
        json!({"params.response_format.type": "json_schema"}),
        p.clone()
    ));
    assert!(params(
        json!({"params.response_format.json_schema.name": "t"}),
        p.clone()
    ));
    assert!(!params(
        json!({"params.messages.5.role": "user"}),
        p.clone()
    ));
    assert!(!params(
        json!({"params.messages.x.role": "user"}),
        p.clone()
    ));
    assert!(!params(
        json!({"params.response_format.type.deeper": "x"}),
        p.clone()
    ));
    assert!(matches(
        json!({"metadata.team.name": "core"}),
        json!({"team": {"name": "core"}}),
        json!({})
    ));
}

#[test]
fn length() {
    let p = json!({"messages": [1, 2, 3], "model": "abc"});
    assert!(params(
        json!({"params.messages": {"$length": 3}}),
        p.clone()
    ));
    assert!(!params(
        json!({"params.messages": {"$length": 2}}),
        p.clone()
    ));
    assert!(params(
        json!({"params.messages": {"$length": {"$gt": 2}}}),
        p.clone()
    ));
    assert!(!params(
        json!({"params.messages": {"$length": {"$gt": 3}}}),
        p.clone()
    ));
    assert!(params(
        json!({"params.messages": {"$length": {"$in": [1, 3]}}}),
        p.clone()
    ));
    // Arrays only.
    assert!(!params(json!({"params.model": {"$length": 3}}), p.clone()));
    assert!(!params(json!({"params.tools": {"$length": 0}}), p));
}

#[test]
fn url_pathname() {
    assert!(params(
        json!({"url.pathname": {"$regex": "chat/completions$"}}),
        json!({})
    ));
    assert!(!params(
        json!({"url.pathname": "/v1/embeddings"}),
        json!({})
    ));
    let (m, p) = (Map::new(), Map::new());
    let cx = RequestContext {
        metadata: &m,
        params: &p,
        url_path: None,
        model: None,
    };
    assert!(!query(json!({"url.pathname": {"$regex": ".*"}})).matches(&cx));
}

#[test]
fn deep_queries_are_bounded() {
    let mut q = json!({"metadata.a": "1"});
    for _ in 0..=MAX_QUERY_DEPTH {
        q = json!({"$and": [q]});
    }
    let e = Query::parse(&q, &FieldPath::root().key("query")).unwrap_err();
    assert!(e.message.contains("nest at most"), "{e}");
}

#[test]
fn kind_is_short() {
    assert_eq!(kind(&json!("x")), "string \"x\"");
    assert_eq!(kind(&json!(-1)), "number -1");
    assert_eq!(kind(&json!(null)), "null");
    assert_eq!(kind(&json!([1])), "an array");
    assert_eq!(kind(&json!({})), "an object");
    let long = kind(&json!("é".repeat(100)));
    assert!(long.len() < 60 && long.ends_with("..."), "{long}");
}
