//! A JSON request body kept as its original bytes, with its top-level fields indexed.
//!
//! The gateway rewrites one or two top-level fields of most requests (`model`, sometimes
//! `stream_options`) and forwards the rest untouched. Parsing the body into a
//! `serde_json::Value` tree and serialising it again would allocate a node per message, tool
//! and schema property: tens of thousands for an agent's request. [`JsonBody`] instead
//! validates the JSON once, records where each top-level value lies in the original bytes,
//! and on output copies those byte ranges, writing only the fields that were replaced. An
//! unchanged body is forwarded without any copy at all.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// Why a body is not a JSON object.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not valid JSON; the message has serde_json's line and column.
    #[error("not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Valid JSON, but not an object.
    #[error("not a JSON object")]
    NotObject,
}

/// One top-level field: its key and where its value is.
#[derive(Clone)]
struct Field {
    key: FieldKey,
    value: FieldValue,
}

/// Where a field's key is. Keys without escapes (nearly all) are ranges of the original body,
/// so indexing and cloning a body allocates one `Vec` rather than one string per field: a body
/// is cloned for every candidate and attempt of a request.
#[derive(Clone)]
enum FieldKey {
    /// A byte range of the original body: the key's text between its quotes, escape-free.
    Original(Range<usize>),
    /// A key that had escapes (decoded), or one added after parsing.
    Owned(Box<str>),
}

#[derive(Clone)]
enum FieldValue {
    /// A byte range of the original body.
    Original(Range<usize>),
    /// A value set after parsing, already serialised.
    Replaced(Box<RawValue>),
}

/// A JSON object body: the original bytes plus an index of its top-level fields.
#[derive(Clone)]
pub struct JsonBody {
    raw: Bytes,
    fields: Vec<Field>,
    modified: bool,
}

impl JsonBody {
    /// Validates `raw` as a JSON object and indexes its top-level fields.
    pub fn parse(raw: Bytes) -> Result<JsonBody, BodyError> {
        let first = raw.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            // Still report a syntax error as such: `[1,` is broken JSON, not a wrong type.
            serde_json::from_slice::<de::IgnoredAny>(&raw)?;
            return Err(BodyError::NotObject);
        }
        let base = raw.as_ptr() as usize;
        let borrowed: BorrowedFields<'_> = serde_json::from_slice(&raw)?;
        let range_of = |text: &str| {
            let start = text.as_ptr() as usize - base;
            start..start + text.len()
        };
        let fields = borrowed
            .0
            .into_iter()
            .map(|(key, value)| Field {
                key: match key {
                    Cow::Borrowed(text) => FieldKey::Original(range_of(text)),
                    Cow::Owned(text) => FieldKey::Owned(text.into_boxed_str()),
                },
                value: FieldValue::Original(range_of(value.get())),
            })
            .collect();
        Ok(JsonBody {
            raw,
            fields,
            modified: false,
        })
    }

    /// The raw JSON text of a top-level field (the last one, if the key repeats, as
    /// `serde_json` and most servers read it).
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        let field = self
            .fields
            .iter()
            .rev()
            .find(|f| key_text(&self.raw, &f.key) == key)?;
        Some(match &field.value {
            // The range came from a `&str` slice of `raw`, so it is valid UTF-8 on char
            // boundaries; `from_utf8` cannot fail, but is checked rather than assumed.
            FieldValue::Original(range) => std::str::from_utf8(&self.raw[range.clone()]).ok()?,
            FieldValue::Replaced(value) => value.get(),
        })
    }

    /// A top-level field deserialised as `T`: `None` when absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<Result<T, serde_json::Error>> {
        self.get_raw(key).map(serde_json::from_str)
    }

    /// Whether a top-level field is present.
    pub fn contains(&self, key: &str) -> bool {
        self.fields
            .iter()
            .any(|f| key_text(&self.raw, &f.key) == key)
    }

    /// The top-level keys, in body order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| key_text(&self.raw, &f.key))
    }

    /// Sets a top-level field, replacing every occurrence of the key; a new key goes last.
    pub fn set(&mut self, key: &str, value: &impl Serialize) -> Result<(), serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        self.modified = true;
        if let Some(pos) = self
            .fields
            .iter()
            .position(|f| key_text(&self.raw, &f.key) == key)
        {
            self.fields[pos].value = FieldValue::Replaced(raw);
            let body = &self.raw;
            let mut index = 0;
            self.fields.retain(|f| {
                let keep = index <= pos || key_text(body, &f.key) != key;
                index += 1;
                keep
            });
        } else {
            self.fields.push(Field {
                key: FieldKey::Owned(key.into()),
                value: FieldValue::Replaced(raw),
            });
        }
        Ok(())
    }

    /// Removes a top-level field (every occurrence). Returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.fields.len();
        let raw = &self.raw;
        self.fields.retain(|f| key_text(raw, &f.key) != key);
        let removed = self.fields.len() != before;
        self.modified |= removed;
        removed
    }

    /// The body as bytes: the original, shared without a copy, when nothing changed;
    /// otherwise the original value bytes copied around the replaced fields.
    pub fn to_bytes(&self) -> Bytes {
        if !self.modified {
            return self.raw.clone();
        }
        let mut out = BytesMut::with_capacity(self.raw.len() + 64);
        out.put_u8(b'{');
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            match &field.key {
                // An escape-free key is valid JSON string content as it is.
                FieldKey::Original(range) => {
                    out.put_u8(b'"');
                    out.put_slice(&self.raw[range.clone()]);
                    out.put_u8(b'"');
                }
                FieldKey::Owned(text) => write_json_string(&mut out, text),
            }
            out.put_u8(b':');
            match &field.value {
                FieldValue::Original(range) => out.put_slice(&self.raw[range.clone()]),
                FieldValue::Replaced(value) => out.put_slice(value.get().as_bytes()),
            }
        }
        out.put_u8(b'}');
        out.freeze()
    }

    /// The body as the pieces of [`JsonBody::to_bytes`]'s output, in order, without copying
    /// the original: unchanged keys and values are slices of the original bytes, shared.
    /// For a large body (a prompt with images, a long agent history) this keeps the body
    /// sent upstream from costing a second copy of it; for a small one, one contiguous
    /// buffer is cheaper to write.
    pub fn to_chunks(&self) -> Vec<Bytes> {
        if !self.modified {
            return vec![self.raw.clone()];
        }
        let mut chunks = Vec::with_capacity(self.fields.len() * 4 + 1);
        for (i, field) in self.fields.iter().enumerate() {
            chunks.push(Bytes::from_static(if i == 0 { b"{" } else { b"," }));
            match &field.key {
                // With its quotes, which surround the range in the original.
                FieldKey::Original(range) => {
                    chunks.push(self.raw.slice(range.start - 1..range.end + 1));
                }
                FieldKey::Owned(text) => {
                    let mut out = BytesMut::new();
                    write_json_string(&mut out, text);
                    chunks.push(out.freeze());
                }
            }
            chunks.push(Bytes::from_static(b":"));
            chunks.push(match &field.value {
                FieldValue::Original(range) => self.raw.slice(range.clone()),
                FieldValue::Replaced(value) => Bytes::copy_from_slice(value.get().as_bytes()),
            });
        }
        if self.fields.is_empty() {
            chunks.push(Bytes::from_static(b"{"));
        }
        chunks.push(Bytes::from_static(b"}"));
        chunks
    }

    /// The whole body deserialised as `T` (for adapters that translate it).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.to_bytes())
    }

    /// The whole body as a `serde_json` map (allocates the full tree; not for the hot path).
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        self.deserialize().unwrap_or_default()
    }

    /// Builds a body from a map (tests, and adapters that construct requests).
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> JsonBody {
        let raw = Bytes::from(serde_json::to_vec(map).unwrap_or_else(|_| b"{}".to_vec()));
        // Serialising a map always yields an object, so this parse cannot fail.
        JsonBody::parse(raw).unwrap_or_else(|_| JsonBody {
            raw: Bytes::from_static(b"{}"),
            fields: Vec::new(),
            modified: false,
        })
    }

    /// Size of the original body in bytes.
    pub fn original_len(&self) -> usize {
        self.raw.len()
    }
}

impl fmt::Debug for JsonBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads can hold personal data: show the shape, not the content.
        f.debug_struct("JsonBody")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .field("bytes", &self.raw.len())
            .field("modified", &self.modified)
            .finish()
    }
}

/// The text of a key.
fn key_text<'s>(raw: &'s Bytes, key: &'s FieldKey) -> &'s str {
    match key {
        // The range came from a `&str` slice of `raw` (see `JsonBody::parse`), so it is UTF-8
        // on char boundaries; the impossible failure reads as a key that matches nothing.
        FieldKey::Original(range) => std::str::from_utf8(&raw[range.clone()]).unwrap_or(""),
        FieldKey::Owned(text) => text,
    }
}

fn write_json_string(out: &mut BytesMut, s: &str) {
    // Serialising a `&str` to a Vec cannot fail.
    if let Ok(encoded) = serde_json::to_vec(s) {
        out.put_slice(&encoded);
    }
}

/// The top-level fields of an object, borrowed from the input.
struct BorrowedFields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for BorrowedFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = BorrowedFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key.0, value));
                }
                Ok(BorrowedFields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A key that borrows from the input unless it had escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CowVisitor;
        impl<'de> Visitor<'de> for CowVisitor {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(CowVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(s: &str) -> JsonBody {
        JsonBody::parse(Bytes::from(s.to_owned())).unwrap()
    }

    #[test]
    fn chunks_join_to_the_bytes_and_share_the_original() {
        let text = r#"{ "model" : "@a/b", "k\u0065y": [1, 2], "messages": [{"role":"user"}] }"#;
        let mut b = JsonBody::parse(Bytes::from(text)).unwrap();
        assert_eq!(
            b.to_chunks().concat(),
            text.as_bytes(),
            "unchanged: the original"
        );
        b.set("model", &"b").unwrap();
        b.set(
            "stream_options",
            &serde_json::json!({"include_usage": true}),
        )
        .unwrap();
        b.remove("key");
        let chunks = b.to_chunks();
        assert_eq!(chunks.concat(), b.to_bytes().to_vec());
        let messages = chunks
            .iter()
            .find(|c| c.starts_with(b"[{"))
            .expect("the messages value is one chunk");
        let original = b.raw.as_ptr() as usize..b.raw.as_ptr() as usize + b.raw.len();
        assert!(
            original.contains(&(messages.as_ptr() as usize)),
            "the messages value is a slice of the original, not a copy"
        );
        let empty = JsonBody::from_map(&serde_json::Map::new());
        let mut emptied = JsonBody::parse(Bytes::from_static(b"{\"a\":1}")).unwrap();
        emptied.remove("a");
        assert_eq!(emptied.to_chunks().concat(), b"{}");
        assert_eq!(empty.to_chunks().concat(), b"{}");
    }

    #[test]
    fn an_unchanged_body_is_the_same_bytes() {
        let text = r#" {"model":"@a/b", "messages":[{"role":"user","content":"hi"}]} "#;
        let b = body(text);
        assert_eq!(b.to_bytes(), text.as_bytes());
        assert_eq!(b.get::<String>("model").unwrap().unwrap(), "@a/b");
        assert_eq!(b.keys().collect::<Vec<_>>(), ["model", "messages"]);
    }

    #[test]
    fn setting_a_field_keeps_every_other_value_exactly() {
        let text = r#"{"model":"@openai/gpt-4o","temperature":0.30000000000000004,"messages":[{"role":"user","content":"caf\u00e9 \"q\""}],"n":1}"#;
        let mut b = body(text);
        b.set("model", &"gpt-4o").unwrap();
        let out = String::from_utf8(b.to_bytes().to_vec()).unwrap();
        assert_eq!(
            out,
            r#"{"model":"gpt-4o","temperature":0.30000000000000004,"messages":[{"role":"user","content":"caf\u00e9 \"q\""}],"n":1}"#
        );
    }

    #[test]
    fn set_adds_new_keys_last_and_replaces_duplicates() {
        let mut b = body(r#"{"a":1,"b":2,"a":3}"#);
        assert_eq!(
            b.get::<i64>("a").unwrap().unwrap(),
            3,
            "the last duplicate wins"
        );
        b.set("a", &json!(9)).unwrap();
        b.set("c", &json!({"x": true})).unwrap();
        let v: Value = serde_json::from_slice(&b.to_bytes()).unwrap();
        assert_eq!(v, json!({"a": 9, "b": 2, "c": {"x": true}}));
        assert_eq!(
            String::from_utf8(b.to_bytes().to_vec()).unwrap(),
            r#"{"a":9,"b":2,"c":{"x":true}}"#
        );
    }

    #[test]
    fn remove_drops_the_field() {
        let mut b = body(r#"{"a":1,"stream_options":{"include_usage":true}}"#);
        assert!(b.remove("stream_options"));
        assert!(!b.remove("missing"));
        assert_eq!(&b.to_bytes()[..], br#"{"a":1}"#);
    }

    #[test]
    fn keys_with_escapes_round_trip() {
        let mut b = body(r#"{"we\"ird\n":1,"model":"x"}"#);
        b.set("model", &"y").unwrap();
        let v: Value = serde_json::from_slice(&b.to_bytes()).unwrap();
        assert_eq!(v, json!({"we\"ird\n": 1, "model": "y"}));
    }

    #[test]
    fn keys_are_matched_by_their_decoded_text() {
        let mut b = body(r#"{"a\u0062":1,"cd":2}"#);
        assert_eq!(b.get::<i64>("ab").unwrap().unwrap(), 1);
        assert!(!b.contains("a\\u0062"));
        assert_eq!(b.keys().collect::<Vec<_>>(), ["ab", "cd"]);
        let copy = b.clone();
        b.set("cd", &3).unwrap();
        assert!(b.remove("ab"));
        assert_eq!(&b.to_bytes()[..], br#"{"cd":3}"#);
        assert_eq!(
            copy.get::<i64>("cd").unwrap().unwrap(),
            2,
            "a clone is independent"
        );
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert!(matches!(
            JsonBody::parse(Bytes::from_static(b"[1,2]")),
            Err(BodyError::NotObject)
        ));
        assert!(matches!(
            JsonBody::parse(Bytes::from_static(b"\"x\"")),
            Err(BodyError::NotObject)
        ));
        assert!(matches!(
            JsonBody::parse(Bytes::from_static(b"[1,")),
            Err(BodyError::Syntax(_))
        ));
        assert!(matches!(
            JsonBody::parse(Bytes::from_static(b"{\"a\":")),
            Err(BodyError::Syntax(_))
        ));
        assert!(matches!(
            JsonBody::parse(Bytes::from_static(b"{} x")),
            Err(BodyError::Syntax(_))
        ));
        assert!(matches!(
            JsonBody::parse(Bytes::new()),
            Err(BodyError::Syntax(_))
        ));
    }

    #[test]
    fn map_round_trip() {
        let map = json!({"model": "m", "stream": true})
            .as_object()
            .unwrap()
            .clone();
        let b = JsonBody::from_map(&map);
        assert_eq!(b.to_map(), map);
        assert!(b.get::<bool>("stream").unwrap().unwrap());
        assert!(b.contains("stream"));
    }
}
