//! [`merge`]: a header config (`x-portkey-config`) laid over a key's attached config.
//!
//! Spec section 11: objects merge deeply, arrays and scalars are replaced. This is JSON Merge
//! Patch (RFC 7386) semantics, including its one extra rule: a `null` in the overlay removes
//! the key (so a header can drop, say, the key config's `cache`). Merging happens on raw JSON,
//! before [`crate::RoutingConfig::parse`], so the merged result is validated as a whole and
//! its errors name paths in the merged config.

use serde_json::Value;

/// `over` laid over `base`: objects merged key by key (recursively), anything else in `over`
/// replacing what `base` had; `null` in `over` removing the key. A non-object `over` replaces
/// `base` entirely.
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (key, ov) in o {
                match ov {
                    Value::Null => {
                        out.remove(key);
                    }
                    Value::Object(_) => {
                        let merged = match b.get(key) {
                            Some(bv) => merge(bv, ov),
                            None => strip_nulls(ov),
                        };
                        out.insert(key.clone(), merged);
                    }
                    _ => {
                        out.insert(key.clone(), ov.clone());
                    }
                }
            }
            Value::Object(out)
        }
        _ => strip_nulls(over),
    }
}

/// `v` with `null` members of objects removed (RFC 7386: a patch's nulls never land).
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), strip_nulls(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_merge_deeply() {
        let base =
            json!({"retry": {"attempts": 3, "on_status_codes": [429]}, "request_timeout": 1000});
        let over = json!({"retry": {"attempts": 5}});
        assert_eq!(
            merge(&base, &over),
            json!({"retry": {"attempts": 5, "on_status_codes": [429]}, "request_timeout": 1000})
        );
    }

    #[test]
    fn arrays_and_scalars_are_replaced() {
        let base = json!({
            "targets": [{"provider": "@a"}, {"provider": "@b"}],
            "retry": {"on_status_codes": [429, 500]},
            "request_timeout": 1000
        });
        let over = json!({
            "targets": [{"provider": "@c"}],
            "retry": {"on_status_codes": [503]},
            "request_timeout": 2000
        });
        assert_eq!(
            merge(&base, &over),
            json!({
                "targets": [{"provider": "@c"}],
                "retry": {"on_status_codes": [503]},
                "request_timeout": 2000
            })
        );
    }

    #[test]
    fn object_replaces_scalar_and_scalar_replaces_object() {
        let base = json!({"a": 1, "b": {"x": 1}});
        let over = json!({"a": {"y": 2}, "b": "s"});
        assert_eq!(merge(&base, &over), json!({"a": {"y": 2}, "b": "s"}));
    }

    #[test]
    fn null_removes_and_never_lands() {
        let base = json!({"cache": {"mode": "simple"}, "retry": {"attempts": 2}});
        let over =
            json!({"cache": null, "retry": {"on_status_codes": null}, "new": {"k": null, "v": 1}});
        assert_eq!(
            merge(&base, &over),
            json!({"retry": {"attempts": 2}, "new": {"v": 1}})
        );
    }

    #[test]
    fn empty_overlay_keeps_base_and_empty_base_takes_overlay() {
        let cfg = json!({"strategy": {"mode": "fallback"}, "targets": [{"provider": "@a"}]});
        assert_eq!(merge(&cfg, &json!({})), cfg);
        assert_eq!(merge(&json!({}), &cfg), cfg);
    }

    #[test]
    fn non_object_overlay_replaces_everything() {
        assert_eq!(merge(&json!({"a": 1}), &json!([1, 2])), json!([1, 2]));
        assert_eq!(merge(&json!([1]), &json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn merge_is_idempotent_and_overlay_wins_on_every_leaf() {
        // Property-style: over random-ish nested shapes, merging twice changes nothing, and
        // every scalar leaf of the overlay is present in the result.
        let shapes = [
            json!({"a": {"b": {"c": 1}}, "d": [1]}),
            json!({"a": {"b": 2}, "e": "x"}),
            json!({"a": {"b": {"f": true}}, "d": {"g": 1}}),
            json!({}),
            json!({"retry": {"attempts": 1}}),
        ];
        for base in &shapes {
            for over in &shapes {
                let once = merge(base, over);
                assert_eq!(merge(&once, over), once, "{base} <- {over}");
                assert_leaves_present(over, &once);
            }
        }
    }

    fn assert_leaves_present(over: &Value, merged: &Value) {
        match over {
            Value::Object(o) => {
                for (k, v) in o {
                    let Some(m) = merged.get(k) else {
                        panic!("{k} missing from {merged}");
                    };
                    assert_leaves_present(v, m);
                }
            }
            leaf => assert_eq!(leaf, merged),
        }
    }
}
