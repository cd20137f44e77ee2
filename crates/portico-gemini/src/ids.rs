//! Tool-call ids: synthesised for Gemini's function calls, and carrying their thought
//! signatures through the client and back.
//!
//! Gemini usually sends function calls without ids and matches results to calls by name and
//! order, while OpenAI clients need an id per call. Portico makes one from a hash of the
//! answer's id, the call's position, name and arguments, so the same answer always gives the
//! same ids (streamed or not).
//!
//! Gemini 3 puts a `thoughtSignature` on the first function call of a turn and answers 400
//! when the next request's history lacks it. OpenAI's message shape has no field for it, and
//! clients drop fields they do not know, so Portico carries the signature in the one field
//! every client sends back unchanged: the tool call's id. The id is
//! `call_<16 hex>_ts<signature bytes in hex>` (or `_tx<signature text in hex>` when the
//! signature is not canonical base64). Only letters and digits carry information, so a
//! client that strips `_` (OpenClaw turns `call_x` into `callx`) still round-trips it.
//!
//! The cost: such ids are long (twice the signature's byte length). A conversation carried
//! over to OpenAI itself, which limits ids to 40 characters, needs its ids shortened first.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The placeholder Gemini documents for a function call whose signature is lost (history
/// written by another model, or a client that rewrote the id): it skips the validation.
pub(crate) const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Marks a signature stored as its base64-decoded bytes.
const BYTES_MARK: &str = "ts";
/// Marks a signature stored as its text (when it is not canonical base64).
const TEXT_MARK: &str = "tx";

/// The OpenAI id of function call `index` (counted over the answer's calls) of the answer
/// `response_id`, with `signature` folded in when Gemini sent one.
pub(crate) fn tool_call_id(
    response_id: &str,
    index: u32,
    name: &str,
    args: &str,
    signature: Option<&str>,
) -> String {
    let mut hash = Fnv::new();
    hash.write(response_id.as_bytes());
    hash.write(&index.to_le_bytes());
    hash.write(name.as_bytes());
    hash.write(&[0]);
    hash.write(args.as_bytes());
    let mut id = format!("call_{:016x}", hash.finish());
    if let Some(signature) = signature.filter(|s| !s.is_empty()) {
        match STANDARD.decode(signature) {
            // Only when re-encoding gives the same text back: the signature must return
            // exactly as Gemini sent it.
            Ok(bytes) if STANDARD.encode(&bytes) == signature => {
                id.push('_');
                id.push_str(BYTES_MARK);
                id.push_str(&hex::encode(bytes));
            }
            _ => {
                id.push('_');
                id.push_str(TEXT_MARK);
                id.push_str(&hex::encode(signature.as_bytes()));
            }
        }
    }
    id
}

/// The thought signature carried in a tool call id made by [`tool_call_id`], if any. Ids of
/// any other shape (a client's own, another provider's) carry none.
pub(crate) fn signature_from_id(id: &str) -> Option<String> {
    // `_` and `-` carry nothing; clients may have removed or changed them.
    let compact: String = id.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let rest = compact.strip_prefix("call")?;
    let hash = rest.get(..16)?;
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tail = &rest[16..];
    let (mark, data) = (tail.get(..2)?, tail.get(2..)?);
    let bytes = hex::decode(data).ok()?;
    match mark {
        BYTES_MARK => Some(STANDARD.encode(bytes)),
        TEXT_MARK => String::from_utf8(bytes).ok(),
        _ => None,
    }
}

/// Letters and digits only, lowercased: how ids are compared when a client rewrote them.
pub(crate) fn normalize(id: &str) -> String {
    id.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// FNV-1a, 64 bits: a small, stable, dependency-free hash for ids (not for security).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = tool_call_id("r1", 0, "read", "{}", None);
        assert_eq!(a, tool_call_id("r1", 0, "read", "{}", None));
        assert_ne!(a, tool_call_id("r1", 1, "read", "{}", None));
        assert_ne!(a, tool_call_id("r2", 0, "read", "{}", None));
        assert!(a.starts_with("call_") && a.len() == 21, "{a}");
        assert_eq!(signature_from_id(&a), None);
    }

    #[test]
    fn base64_signatures_round_trip_even_without_underscores() {
        let sig = "CiQBcsjafB0m+Y/9qz=="; // not canonical: decodes, re-encodes differently
        let canonical = STANDARD.encode(b"\x0a\x24\x01opaque-signature-bytes\xff");
        for signature in [canonical.as_str(), sig, SKIP_SIGNATURE, "a"] {
            let id = tool_call_id("r", 0, "read", "{}", Some(signature));
            assert_eq!(signature_from_id(&id).as_deref(), Some(signature), "{id}");
            let rewritten = id.replace('_', "");
            assert_eq!(signature_from_id(&rewritten).as_deref(), Some(signature));
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        }
    }

    #[test]
    fn foreign_ids_carry_no_signature() {
        for id in [
            "call_f1d98e2c41b04f0c",
            "calla7c7936a5fdf46d4",
            "toolu_01A09q90qw90lq917835lq9",
            "call_0123456789abcdef_tszz",
            "call_0123456789abcdef_ts0",
            "call_0123456789abcdef_qq00",
            "",
            "call",
        ] {
            assert_eq!(signature_from_id(id), None, "{id}");
        }
    }

    #[test]
    fn normalize_ignores_punctuation_and_case() {
        assert_eq!(normalize("call_F1-d9"), "callf1d9");
    }
}
