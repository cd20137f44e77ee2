//! JSON Schemas made ready for Gemini: tool parameters (`parametersJsonSchema`) and
//! `response_format.json_schema` (`responseJsonSchema`).
//!
//! Both fields take JSON Schema itself, not the older OpenAPI subset, so keywords such as
//! `additionalProperties`, `anyOf` or type arrays pass as they are. Two things are changed:
//!
//! - `$schema` (and `$comment`) are dropped: they describe the document, not the data.
//! - Local references (`#/$defs/NAME`, `#/definitions/NAME`) are inlined and the definitions
//!   removed. Gemini refuses a `$ref` with sibling keywords, which generators such as Pydantic
//!   emit (`{"$ref": ..., "description": ...}`); inlined, the siblings are kept, merged over
//!   the definition. A reference that cannot be inlined (external, missing, or recursive) is a
//!   400 that names the tool and the reference.

use serde_json::{Map, Value};

use crate::error::invalid_request;
use portico_providers::ProviderError;

/// How deep a schema may nest once references are inlined.
const MAX_DEPTH: usize = 64;
/// How many schema nodes inlining may produce: bounds the blow-up of a definition used many
/// times inside definitions used many times.
const MAX_NODES: usize = 100_000;

/// Keywords whose value is one schema.
const ONE_SCHEMA: &[&str] = &[
    "items",
    "additionalProperties",
    "additionalItems",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
];
/// Keywords whose value is a list of schemas.
const SCHEMA_LIST: &[&str] = &["anyOf", "oneOf", "allOf", "prefixItems", "items"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAP: &[&str] = &["properties", "patternProperties", "dependentSchemas"];
/// Keywords dropped from every schema node.
const DROPPED: &[&str] = &["$schema", "$comment", "$defs", "definitions"];

/// `schema` with references inlined and document keywords dropped. `what` names the schema in
/// messages (`tool "read" parameters`, `response_format.json_schema`), `param` is the request
/// field it came from.
pub(crate) fn for_gemini(schema: &Value, what: &str, param: &str) -> Result<Value, ProviderError> {
    let mut walker = Walker {
        root: schema,
        what,
        param,
        nodes: 0,
        expanding: Vec::new(),
    };
    walker.schema(schema, 0)
}

struct Walker<'a> {
    root: &'a Value,
    what: &'a str,
    param: &'a str,
    nodes: usize,
    /// The definitions being inlined, outermost first: a reference to one of them is a cycle.
    expanding: Vec<String>,
}

impl Walker<'_> {
    fn fail(&self, detail: String) -> ProviderError {
        invalid_request(format!("{} {detail}", self.what), self.param)
    }

    fn schema(&mut self, node: &Value, depth: usize) -> Result<Value, ProviderError> {
        self.nodes += 1;
        if depth > MAX_DEPTH || self.nodes > MAX_NODES {
            return Err(self.fail(format!(
                "is too deep or too large once its $ref are inlined (at most {MAX_DEPTH} levels and {MAX_NODES} nodes); simplify the schema"
            )));
        }
        let Value::Object(map) = node else {
            // `true`, `false` and anything else that is not an object stay as they are.
            return Ok(node.clone());
        };
        if let Some(reference) = map.get("$ref") {
            return self.reference(reference, map, depth);
        }
        let mut out = Map::with_capacity(map.len());
        for (key, value) in map {
            let key_str = key.as_str();
            if DROPPED.contains(&key_str) {
                continue;
            }
            let converted = match value {
                Value::Object(_) if ONE_SCHEMA.contains(&key_str) => {
                    self.schema(value, depth + 1)?
                }
                Value::Array(list) if SCHEMA_LIST.contains(&key_str) => Value::Array(
                    list.iter()
                        .map(|item| self.schema(item, depth + 1))
                        .collect::<Result<_, _>>()?,
                ),
                Value::Object(named) if SCHEMA_MAP.contains(&key_str) => Value::Object(
                    named
                        .iter()
                        .map(|(name, item)| Ok((name.clone(), self.schema(item, depth + 1)?)))
                        .collect::<Result<_, ProviderError>>()?,
                ),
                // Data keywords (`enum`, `const`, `default`, `examples`, `required`, ...)
                // are values, not schemas: copied untouched.
                _ => value.clone(),
            };
            out.insert(key.clone(), converted);
        }
        Ok(Value::Object(out))
    }

    /// Inlines `{"$ref": ..., siblings...}`: the definition, with the siblings merged over it.
    fn reference(
        &mut self,
        reference: &Value,
        node: &Map<String, Value>,
        depth: usize,
    ) -> Result<Value, ProviderError> {
        let Some(pointer) = reference.as_str() else {
            return Err(self.fail("has a $ref that is not a string".to_owned()));
        };
        let name = ["#/$defs/", "#/definitions/"]
            .iter()
            .find_map(|prefix| pointer.strip_prefix(prefix))
            .filter(|name| !name.contains('/'))
            .map(|name| name.replace("~1", "/").replace("~0", "~"));
        let target = name.as_ref().and_then(|name| {
            ["$defs", "definitions"]
                .iter()
                .find_map(|defs| self.root.get(defs)?.get(name))
        });
        let (Some(name), Some(target)) = (name, target) else {
            return Err(self.fail(format!(
                "has a $ref \"{pointer}\" that cannot be resolved; Portico inlines only local references to #/$defs/NAME or #/definitions/NAME of the same schema"
            )));
        };
        if self.expanding.contains(&name) {
            return Err(self.fail(format!(
                "is recursive (\"{pointer}\" refers to itself); Gemini needs a finite schema, so flatten the recursion to a fixed depth"
            )));
        }
        self.expanding.push(name);
        let inlined = self.schema(target, depth + 1);
        self.expanding.pop();
        let mut inlined = match inlined? {
            Value::Object(map) => map,
            // A boolean definition cannot take siblings; it is used as it is.
            other => return Ok(other),
        };
        let siblings: Map<String, Value> = node
            .iter()
            .filter(|(key, _)| key.as_str() != "$ref")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Value::Object(siblings) = self.schema(&Value::Object(siblings), depth + 1)? {
            inlined.extend(siblings);
        }
        Ok(Value::Object(inlined))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(schema: Value) -> Result<Value, String> {
        for_gemini(
            &schema,
            "tool \"t\" parameters",
            "tools[0].function.parameters",
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn inlines_refs_and_keeps_siblings() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "a": {"$ref": "#/$defs/Point", "description": "start"},
                "b": {"type": "array", "items": {"$ref": "#/definitions/Point"}},
                "$ref": {"type": "string", "enum": ["$ref", "#/$defs/Nope"]}
            },
            "required": ["a"],
            "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "definitions": {"Point": {"type": "object"}}
        });
        let out = convert(schema).unwrap();
        assert_eq!(
            out,
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "a": {"type": "object", "properties": {"x": {"type": "number"}}, "description": "start"},
                    "b": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}}}},
                    "$ref": {"type": "string", "enum": ["$ref", "#/$defs/Nope"]}
                },
                "required": ["a"]
            })
        );
    }

    #[test]
    fn rejects_recursive_external_and_missing_refs() {
        let recursive = json!({"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
                               "$ref": "#/$defs/Node"});
        assert!(convert(recursive).unwrap_err().contains("recursive"));
        let external = json!({"properties": {"a": {"$ref": "https://example.com/s.json"}}});
        assert!(
            convert(external)
                .unwrap_err()
                .contains("https://example.com/s.json")
        );
        let missing = json!({"properties": {"a": {"$ref": "#/$defs/Missing"}}});
        assert!(convert(missing).unwrap_err().contains("cannot be resolved"));
    }

    #[test]
    fn exponential_inlining_is_bounded() {
        let mut defs = Map::new();
        for i in 0..30 {
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": {
                    "l": {"$ref": format!("#/$defs/D{}", i + 1)},
                    "r": {"$ref": format!("#/$defs/D{}", i + 1)}}}),
            );
        }
        defs.insert("D30".into(), json!({"type": "string"}));
        let schema = json!({"$defs": defs, "$ref": "#/$defs/D0"});
        assert!(
            convert(schema)
                .unwrap_err()
                .contains("too deep or too large")
        );
    }

    #[test]
    fn plain_schemas_pass_unchanged() {
        let schema = json!({"type": "object", "properties": {"p": {"type": ["string", "null"], "default": {"$ref": 1}}}});
        assert_eq!(convert(schema.clone()).unwrap(), schema);
    }
}
