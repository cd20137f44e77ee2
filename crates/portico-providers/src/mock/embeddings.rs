//! The mock's `/embeddings` answer: deterministic unit vectors, as floats or base64.

use portico_core::Usage;
use serde_json::{Map, Value, json};

use super::bad_request;
use super::hash::{Fnv, SplitMix};
use super::reply::{estimate_tokens, usage};
use crate::ProviderError;

/// The embedding size when the request does not set `dimensions`; small, so bodies stay small.
const DEFAULT_DIMENSIONS: u64 = 16;

/// The largest `dimensions` accepted: above any real model's, and bounds the body we build.
const MAX_DIMENSIONS: u64 = 8192;

/// An `/embeddings` answer: one unit vector per input, derived from a hash of the input.
pub(super) fn embeddings(
    model: &str,
    body: &Map<String, Value>,
) -> Result<(Value, Usage), ProviderError> {
    let inputs: Vec<&Value> = match body.get("input") {
        Some(Value::String(_)) => body.get("input").into_iter().collect(),
        // An array of numbers is one tokenised input; any other array is a list of inputs.
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_number) => {
            body.get("input").into_iter().collect()
        }
        Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
        _ => {
            return Err(bad_request(
                "`input` is required and must be a string or a non-empty array of strings",
                "input",
            ));
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .ok_or_else(|| {
                bad_request(
                    format!("`dimensions` must be an integer from 1 to {MAX_DIMENSIONS}"),
                    "dimensions",
                )
            })?,
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        // OpenAI's Python SDK asks for base64 by default, so it must work.
        Some("base64") => true,
        Some(other) => {
            return Err(bad_request(
                format!("`encoding_format` must be \"float\" or \"base64\", got \"{other}\""),
                "encoding_format",
            ));
        }
    };

    let mut chars = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let text = match input {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            // A token array counts one token (four characters' worth) per number.
            chars += match input {
                Value::Array(tokens) => tokens.len() * 4,
                _ => text.chars().count(),
            };
            let vector = unit_vector(Fnv::hash(text.as_bytes()), dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                Value::String(base64_encode(&bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let usage = usage(estimate_tokens(chars), 0);
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens()},
    });
    Ok((body, usage))
}

/// A vector of length 1 in `dimensions` dimensions, chosen by `seed`.
fn unit_vector(seed: u64, dimensions: u64) -> Vec<f64> {
    let mut rng = SplitMix(seed);
    // 53 random bits to a float in [-1, 1).
    let mut vector: Vec<f64> = (0..dimensions)
        .map(|_| (rng.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    } else if let Some(first) = vector.first_mut() {
        *first = 1.0;
    }
    vector
}

/// Standard base64 with padding (RFC 4648), as OpenAI encodes embeddings.
pub(super) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
