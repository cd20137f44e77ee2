//! The parsed document: a small YAML value tree, and the one function that reads text into it.
//!
//! `serde-saphyr` (the YAML reader, see docs/dependencies.md) deserializes straight into Rust
//! types and has no value tree of its own. The pipeline needs one: the shape check and `${VAR}`
//! substitution walk the document before the typed raw structs are read from it. So this module
//! holds a [`Value`] that the reader fills through Serde, and that is itself a Serde
//! `Deserializer`, which is what `serde_path_to_error` needs to name the field of a type error.
//!
//! What the reader settles, so nothing after it has to: anchors and aliases, `<<:` merge keys,
//! duplicate keys (an error with a position), tags (only YAML's own `!!str`, `!!int`, ... are
//! accepted), and one document per file.
//!
//! Scalars are resolved as YAML 1.2's core schema, as `serde_yaml` did before: `yes`/`no` are
//! strings, and so are `0755` and `1_000`; `.inf` and `.nan` are floats, left to validation.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use serde_saphyr::{MessageFormatter, NonFiniteFloatPolicy, Options, UserMessageFormatter};

use crate::error::{ConfigError, key_segment};

/// One node of the document.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Value {
    /// `~`, `null`, or nothing.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer or a float.
    Number(Number),
    /// Any other scalar, quoted or not.
    String(String),
    /// A list.
    Sequence(Vec<Value>),
    /// A mapping, in file order.
    Mapping(Mapping),
}

/// A numeric scalar, kept as the reader resolved it so integers stay exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    /// 0 and up.
    PosInt(u64),
    /// Below 0.
    NegInt(i64),
    /// Anything with a fraction or an exponent, and `.inf`, `.nan`.
    Float(f64),
}

/// A mapping's entries in file order. Keys are unique: the reader rejects duplicates.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Mapping(Vec<(Value, Value)>);

impl Mapping {
    /// The value of the text key `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| matches!(k, Value::String(s) if s == key))
            .map(|(_, v)| v)
    }

    /// The keys, in file order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Value> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The entries, values mutable, in file order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&Value, &mut Value)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }
}

/// Reads one YAML document. Errors carry the line and column, and the reader's own words for
/// what is wrong (never a scalar's value, so a secret next to a syntax error is not repeated).
pub(crate) fn parse(text: &str, origin: &str) -> Result<Value, ConfigError> {
    // `Option` because an empty file (or one with only comments) is a document with no node.
    serde_saphyr::from_str_with_options::<Option<Value>>(text, options())
        .map(Option::unwrap_or_default)
        .map_err(|e| syntax_error(origin, &e))
}

/// The reader's settings: the core schema as `serde_yaml` resolved it, strict about what a
/// catalog has no use for (unknown tags), and no source snippets (messages are one line).
fn options() -> Options {
    let mut options = Options::default();
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    options.non_finite_float_policy = NonFiniteFloatPolicy::PassThrough;
    options.reject_unsupported_tags = true;
    options.with_snippet = false;
    options
}

fn syntax_error(origin: &str, error: &serde_saphyr::Error) -> ConfigError {
    let location = error.location().and_then(|l| {
        Some((
            usize::try_from(l.line()).ok()?,
            usize::try_from(l.column()).ok()?,
        ))
    });
    // The user-facing wording (no API hints such as "set DuplicateKeyPolicy"), without the
    // position, which the message shows up front. It is raw text: escape control characters
    // so the message stays one line.
    let message = UserMessageFormatter.format_message(error.without_snippet());
    ConfigError::Syntax {
        origin: origin.to_owned(),
        location,
        message: message.chars().flat_map(char::escape_debug).collect(),
    }
}

impl fmt::Display for Number {
    /// As YAML writes it: `5`, `-5`, `1.5`, `1.0`, `.inf`, `.nan`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::PosInt(n) => write!(f, "{n}"),
            Number::NegInt(n) => write!(f, "{n}"),
            Number::Float(x) if x.is_nan() => f.write_str(".nan"),
            Number::Float(x) if x.is_infinite() => {
                f.write_str(if x > 0.0 { ".inf" } else { "-.inf" })
            }
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl From<&serde_json::Value> for Value {
    /// A JSON value as the document it would be in YAML (the admin API's bodies).
    fn from(json: &serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Number::PosInt(u),
                (None, Some(i)) => Number::NegInt(i),
                // Every JSON number that is not an integer fits an f64 (no arbitrary precision).
                (None, None) => Number::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::Sequence(items.iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => Value::Mapping(Mapping(
                map.iter()
                    .map(|(k, v)| (Value::String(k.clone()), Value::from(v)))
                    .collect(),
            )),
        }
    }
}

// ---- Reading a `Value` (what the YAML reader fills) ----

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(match u64::try_from(v) {
            Ok(u) => Number::PosInt(u),
            Err(_) => Number::NegInt(v),
        }))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(Number::PosInt(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(Number::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Mapping(Mapping(entries)))
    }
}

// ---- Writing a `Value` as JSON (the document `portico apply` sends) ----

impl Serialize for Value {
    /// As JSON can hold it, mappings in file order: a non-text key as its YAML text, and a
    /// float JSON cannot write (`.inf`, `.nan`) as the text Rust reads back (`inf`, `NaN`),
    /// which the numeric fields accept like any number written as a string.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(Number::PosInt(n)) => serializer.serialize_u64(*n),
            Value::Number(Number::NegInt(n)) => serializer.serialize_i64(*n),
            Value::Number(Number::Float(x)) if x.is_finite() => serializer.serialize_f64(*x),
            Value::Number(Number::Float(x)) => serializer.serialize_str(&x.to_string()),
            Value::String(s) => serializer.serialize_str(s),
            Value::Sequence(items) => serializer.collect_seq(items),
            Value::Mapping(map) => {
                serializer.collect_map(map.0.iter().map(|(k, v)| (key_segment(k), v)))
            }
        }
    }
}

// ---- Reading typed structs out of a `Value` ----

/// A type error found while reading the raw structs out of a [`Value`]: serde's own message
/// (`invalid type: sequence, expected a string`) or one of ours; the field path is added by
/// `serde_path_to_error`.
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl<'de> IntoDeserializer<'de, Error> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}

impl<'de> Deserializer<'de> for Value {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(Number::PosInt(n)) => visitor.visit_u64(n),
            Value::Number(Number::NegInt(n)) => visitor.visit_i64(n),
            Value::Number(Number::Float(x)) => visitor.visit_f64(x),
            Value::String(s) => visitor.visit_string(s),
            Value::Sequence(items) => {
                let mut seq = de::value::SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Value::Mapping(Mapping(entries)) => {
                let mut map = de::value::MapDeserializer::new(entries.into_iter());
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// An enum is written as its variant's name (`mode: fallback`): unit variants, the only
    /// kind a catalog field would take. Anything else gets serde's "invalid type" message.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Value::String(variant) => {
                visitor.visit_enum(de::value::StringDeserializer::<Error>::new(variant))
            }
            other => other.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value {
        parse(text, "c.yaml").unwrap()
    }

    fn s(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    #[test]
    fn scalars_resolve_like_the_core_schema() {
        let Value::Mapping(map) = doc(
            "a: yes\nb: 0755\nc: 1_000\nd: -5\ne: 1.5\nf: .inf\ng: ~\nh: 0x1F\ni: \"5\"\nj: true\n",
        ) else {
            panic!("not a mapping");
        };
        assert_eq!(map.get("a"), Some(&s("yes")));
        assert_eq!(map.get("b"), Some(&s("0755")));
        assert_eq!(map.get("c"), Some(&s("1_000")));
        assert_eq!(map.get("d"), Some(&Value::Number(Number::NegInt(-5))));
        assert_eq!(map.get("e"), Some(&Value::Number(Number::Float(1.5))));
        assert_eq!(
            map.get("f"),
            Some(&Value::Number(Number::Float(f64::INFINITY)))
        );
        assert_eq!(map.get("g"), Some(&Value::Null));
        assert_eq!(map.get("h"), Some(&Value::Number(Number::PosInt(31))));
        assert_eq!(map.get("i"), Some(&s("5")));
        assert_eq!(map.get("j"), Some(&Value::Bool(true)));
    }

    #[test]
    fn mappings_keep_file_order_and_non_text_keys() {
        let Value::Mapping(map) = doc("z: 1\na: 2\n1: x\n") else {
            panic!("not a mapping");
        };
        let keys: Vec<&Value> = map.keys().collect();
        assert_eq!(keys, [&s("z"), &s("a"), &Value::Number(Number::PosInt(1))]);
    }

    #[test]
    fn empty_documents_are_null() {
        assert_eq!(doc(""), Value::Null);
        assert_eq!(doc("# only a comment\n"), Value::Null);
    }

    #[test]
    fn the_reader_rejects_what_a_catalog_cannot_mean() {
        for (text, needle) in [
            ("a: !custom x\n", "!custom"),
            ("a: 1\n---\nb: 2\n", "multiple"),
            ("a: *nowhere\n", "unknown"),
            ("a: 1\na: 2\n", "duplicate"),
        ] {
            let err = parse(text, "c.yaml").unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(
                    err,
                    ConfigError::Syntax {
                        location: Some(_),
                        ..
                    }
                ),
                "{msg}"
            );
            assert!(msg.contains(needle), "{text:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn numbers_print_as_yaml_writes_them() {
        let shown: Vec<String> = [
            Number::PosInt(5),
            Number::NegInt(-5),
            Number::Float(1.0),
            Number::Float(f64::NEG_INFINITY),
            Number::Float(f64::NAN),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(shown, ["5", "-5", "1.0", "-.inf", ".nan"]);
    }

    #[test]
    fn json_converts_to_the_same_document() {
        let json = serde_json::json!({"slug": "a", "n": -1, "x": 0.5, "list": [true, null]});
        let Value::Mapping(map) = Value::from(&json) else {
            panic!("not a mapping");
        };
        assert_eq!(map.get("n"), Some(&Value::Number(Number::NegInt(-1))));
        assert_eq!(map.get("x"), Some(&Value::Number(Number::Float(0.5))));
        assert_eq!(
            map.get("list"),
            Some(&Value::Sequence(vec![Value::Bool(true), Value::Null]))
        );
    }

    #[test]
    fn values_deserialize_into_types_with_serde_messages() {
        let v: Vec<Option<u64>> = Vec::deserialize(doc("[1, ~]")).unwrap();
        assert_eq!(v, [Some(1), None]);
        let err = String::deserialize(doc("[x]")).unwrap_err();
        assert_eq!(err.to_string(), "invalid type: sequence, expected a string");
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Mode {
            Fallback,
        }
        assert_eq!(Mode::deserialize(doc("fallback")).unwrap(), Mode::Fallback);
        let err = Mode::deserialize(doc("[fallback]")).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid type: sequence"),
            "{err}"
        );
        let json = serde_json::Value::deserialize(doc("{b: 1, a: [x, 1.5]}")).unwrap();
        assert_eq!(json, serde_json::json!({"b": 1, "a": ["x", 1.5]}));
    }
}
