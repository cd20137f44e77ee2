//! `/v1/embeddings` on Bedrock: InvokeModel (`POST /model/{id}/invoke`) with the model's own
//! body, for the two embedding families that take text.
//!
//! - Amazon Titan (`amazon.titan-embed-*`): one text per call, `{inputText, dimensions?}` →
//!   `{embedding, inputTextTokenCount}`. An array of inputs becomes one call per input, at
//!   most [`TITAN_CONCURRENCY`] at a time, answered in input order.
//! - Cohere (`cohere.embed-*`): up to [`COHERE_BATCH`] texts per call,
//!   `{texts, input_type, output_dimension?}` → `{embeddings}`; `input_type` is
//!   `search_document` unless the request names another (`"input_type": "search_query"`).
//!   Cohere reports no token count in the body; Bedrock's `x-amzn-bedrock-input-token-count`
//!   header is used when present.
//!
//! The answer is OpenAI's embedding list; `encoding_format: "base64"` (the OpenAI SDKs'
//! default) gives each vector as base64 of little-endian `f32`s, as OpenAI does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use portico_core::{JsonBody, Usage};
use portico_providers::{ProviderError, UpstreamResponse};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::invalid_request;

/// Titan calls in flight at once for one request.
pub(crate) const TITAN_CONCURRENCY: usize = 4;
/// Texts per Cohere call (Bedrock's limit).
pub(crate) const COHERE_BATCH: usize = 96;

/// The embedding families Portico can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `amazon.titan-embed-text-v1`, `-v2:0`, ...
    Titan,
    /// `cohere.embed-english-v3`, `cohere.embed-multilingual-v3`, `cohere.embed-v4:0`, ...
    Cohere,
}

impl Family {
    /// The family of a model id (inference profiles and ARNs included), if known.
    pub(crate) fn of(model: &str) -> Option<Family> {
        let name = model.rsplit('/').next().unwrap_or(model);
        if name.contains("titan-embed") {
            Some(Family::Titan)
        } else if name.contains("cohere.embed") {
            Some(Family::Cohere)
        } else {
            None
        }
    }
}

/// What one embeddings request asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EmbeddingRequest {
    pub(crate) inputs: Vec<String>,
    pub(crate) dimensions: Option<u64>,
    pub(crate) base64: bool,
    pub(crate) input_type: Option<String>,
}

/// Reads an OpenAI embeddings body.
pub(crate) fn parse_request(body: &JsonBody) -> Result<EmbeddingRequest, ProviderError> {
    #[derive(Deserialize)]
    struct Raw {
        input: Option<Value>,
        dimensions: Option<u64>,
        encoding_format: Option<String>,
        input_type: Option<String>,
    }
    let raw: Raw = body.deserialize().map_err(|e| {
        invalid_request(
            format!("the embeddings request could not be read: {e}"),
            None,
        )
    })?;
    let token_arrays = || {
        invalid_request(
            "Bedrock embedding models take text, not token ids; send `input` as a string or an array of strings",
            Some("input"),
        )
    };
    let inputs = match raw.input {
        Some(Value::String(text)) => vec![text],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err(token_arrays()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(token_arrays()),
        None => {
            return Err(invalid_request(
                "the embeddings request needs `input`",
                Some("input"),
            ));
        }
    };
    if inputs.is_empty() {
        return Err(invalid_request(
            "`input` is empty; send at least one text",
            Some("input"),
        ));
    }
    let base64 = match raw.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid_request(
                format!("unknown encoding_format `{other}`; use \"float\" or \"base64\""),
                Some("encoding_format"),
            ));
        }
    };
    Ok(EmbeddingRequest {
        inputs,
        dimensions: raw.dimensions,
        base64,
        input_type: raw.input_type,
    })
}

/// The InvokeModel bodies for a request, one per call, in order.
pub(crate) fn call_bodies(family: Family, req: &EmbeddingRequest) -> Vec<Bytes> {
    match family {
        Family::Titan => req
            .inputs
            .iter()
            .map(|text| {
                let mut body = json!({ "inputText": text });
                if let Some(d) = req.dimensions {
                    body["dimensions"] = json!(d);
                }
                Bytes::from(body.to_string())
            })
            .collect(),
        Family::Cohere => req
            .inputs
            .chunks(COHERE_BATCH)
            .map(|texts| {
                let mut body = json!({
                    "texts": texts,
                    "input_type": req.input_type.as_deref().unwrap_or("search_document"),
                });
                if let Some(d) = req.dimensions {
                    body["output_dimension"] = json!(d);
                }
                Bytes::from(body.to_string())
            })
            .collect(),
    }
}

/// One InvokeModel answer: its body and Bedrock's input-token header, when sent.
#[derive(Debug, Clone)]
pub(crate) struct CallAnswer {
    pub(crate) body: Bytes,
    pub(crate) input_tokens_header: Option<u64>,
}

/// The vectors of one answer, and its input token count when reported.
pub(crate) fn read_answer(
    family: Family,
    answer: &CallAnswer,
) -> Result<(Vec<Vec<f64>>, Option<u64>), ProviderError> {
    let malformed =
        |e: serde_json::Error| ProviderError::Malformed(format!("Bedrock's embedding answer: {e}"));
    match family {
        Family::Titan => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Titan {
                embedding: Vec<f64>,
                input_text_token_count: Option<u64>,
            }
            let t: Titan = serde_json::from_slice(&answer.body).map_err(malformed)?;
            Ok((
                vec![t.embedding],
                t.input_text_token_count.or(answer.input_tokens_header),
            ))
        }
        Family::Cohere => {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Vectors {
                Floats(Vec<Vec<f64>>),
                ByType { float: Vec<Vec<f64>> },
            }
            #[derive(Deserialize)]
            struct Cohere {
                embeddings: Vectors,
            }
            let c: Cohere = serde_json::from_slice(&answer.body).map_err(malformed)?;
            let vectors = match c.embeddings {
                Vectors::Floats(v) | Vectors::ByType { float: v } => v,
            };
            Ok((vectors, answer.input_tokens_header))
        }
    }
}

/// Runs the calls (`invoke` does one) and assembles OpenAI's embedding list.
pub(crate) async fn embed<F, Fut>(
    family: Family,
    model: &str,
    req: &EmbeddingRequest,
    invoke: F,
) -> Result<UpstreamResponse, ProviderError>
where
    F: Fn(Bytes) -> Fut,
    Fut: Future<Output = Result<CallAnswer, ProviderError>>,
{
    let bodies = call_bodies(family, req);
    let concurrency = match family {
        Family::Titan => TITAN_CONCURRENCY,
        Family::Cohere => 1,
    };
    let answers: Vec<CallAnswer> = futures::stream::iter(bodies.into_iter().map(&invoke))
        .buffered(concurrency)
        .try_collect()
        .await?;
    let mut vectors = Vec::with_capacity(req.inputs.len());
    let mut tokens: Option<u64> = Some(0);
    for answer in &answers {
        let (v, t) = read_answer(family, answer)?;
        vectors.extend(v);
        tokens = tokens.zip(t).map(|(a, b)| a + b);
    }
    if vectors.len() != req.inputs.len() {
        return Err(ProviderError::Malformed(format!(
            "Bedrock returned {} embeddings for {} inputs",
            vectors.len(),
            req.inputs.len()
        )));
    }
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if req.base64 {
                Value::String(to_base64(v))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let mut body = json!({ "object": "list", "data": data, "model": model });
    if let Some(n) = tokens {
        body["usage"] = json!({ "prompt_tokens": n, "total_tokens": n });
    }
    Ok(UpstreamResponse::Complete {
        status: 200,
        body: Bytes::from(body.to_string()),
        usage: tokens.map(|n| Usage {
            prompt_tokens: n,
            completion_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
        }),
    })
}

/// OpenAI's base64 form: the vector as little-endian `f32`s.
fn to_base64(vector: &[f64]) -> String {
    let bytes: Vec<u8> = vector
        .iter()
        .flat_map(|x| (*x as f32).to_le_bytes())
        .collect();
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> JsonBody {
        JsonBody::parse(Bytes::from(v.to_string())).unwrap()
    }

    #[test]
    fn families_from_model_ids() {
        assert_eq!(
            Family::of("amazon.titan-embed-text-v2:0"),
            Some(Family::Titan)
        );
        assert_eq!(Family::of("cohere.embed-english-v3"), Some(Family::Cohere));
        assert_eq!(
            Family::of("arn:aws:bedrock:us-east-1::foundation-model/cohere.embed-v4:0"),
            Some(Family::Cohere)
        );
        assert_eq!(Family::of("anthropic.claude-3-haiku"), None);
    }

    #[test]
    fn token_ids_and_bad_formats_are_refused() {
        for bad in [
            json!({"input": [1, 2, 3]}),
            json!({"input": "x", "encoding_format": "int8"}),
            json!({"input": []}),
            json!({}),
        ] {
            let err = parse_request(&body(bad.clone())).unwrap_err();
            assert_eq!(err.status(), Some(400), "{bad}");
        }
    }

    #[test]
    fn cohere_batches_by_96() {
        let req = EmbeddingRequest {
            inputs: (0..200).map(|i| i.to_string()).collect(),
            dimensions: None,
            base64: false,
            input_type: None,
        };
        let bodies = call_bodies(Family::Cohere, &req);
        assert_eq!(bodies.len(), 3);
        let first: Value = serde_json::from_slice(&bodies[0]).unwrap();
        assert_eq!(first["texts"].as_array().unwrap().len(), 96);
        assert_eq!(first["input_type"], "search_document");
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let encoded = to_base64(&[1.0, -2.0]);
        let bytes = STANDARD.decode(encoded).unwrap();
        assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[4..], &(-2.0f32).to_le_bytes());
    }
}
