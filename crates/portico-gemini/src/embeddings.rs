//! `/v1/embeddings` → `batchEmbedContents` (AI Studio) or `predict` (Vertex AI), and the
//! vectors back as OpenAI's embedding list.
//!
//! OpenAI takes up to 2048 inputs per call; Gemini's batch takes 100, Vertex AI's `predict`
//! 250 (and one for `gemini-embedding-*` models), so larger requests are sent in several
//! calls, one after the other, and the vectors joined in order. `dimensions` becomes
//! `outputDimensionality`; a `task_type` field (Gemini's `RETRIEVAL_QUERY`, ...) is passed
//! on. Vectors are returned as floats, or as base64 of little-endian `f32`s when the client
//! asks (`encoding_format: "base64"`, the OpenAI Python SDK's default).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portico_core::{JsonBody, Usage};
use portico_providers::ProviderError;
use serde_json::{Value, json};

use crate::error::invalid_request;
use crate::wire::{
    BatchEmbedRequest, BatchEmbedResponse, Content, EmbedRequest, Part, PredictInstance,
    PredictRequest, PredictResponse,
};

/// Inputs per `batchEmbedContents` call.
pub(crate) const AI_STUDIO_BATCH: usize = 100;
/// Inputs per Vertex AI `predict` call.
const VERTEX_BATCH: usize = 250;

/// An OpenAI embeddings request, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EmbeddingsRequest {
    /// The texts, in order.
    pub(crate) inputs: Vec<String>,
    /// `dimensions`.
    pub(crate) dimensions: Option<u64>,
    /// `encoding_format: "base64"`.
    pub(crate) base64: bool,
    /// Gemini's task type, from a `task_type` field.
    pub(crate) task_type: Option<String>,
}

impl EmbeddingsRequest {
    /// Reads the request body.
    pub(crate) fn parse(body: &JsonBody) -> Result<EmbeddingsRequest, ProviderError> {
        let map = body.to_map();
        let text_only = || {
            invalid_request(
                "Gemini embeds text only: send `input` as a string or a non-empty array of strings (not token ids)",
                "input",
            )
        };
        let inputs = match map.get("input") {
            Some(Value::String(text)) => vec![text.clone()],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned).ok_or_else(text_only))
                .collect::<Result<_, _>>()?,
            _ => return Err(text_only()),
        };
        let dimensions = match map.get("dimensions") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().filter(|d| *d > 0).ok_or_else(|| {
                invalid_request("`dimensions` must be a positive integer", "dimensions")
            })?),
        };
        let base64 = match map.get("encoding_format").and_then(Value::as_str) {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(invalid_request(
                    format!("`encoding_format` must be \"float\" or \"base64\", got \"{other}\""),
                    "encoding_format",
                ));
            }
        };
        let task_type = map
            .get("task_type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(EmbeddingsRequest {
            inputs,
            dimensions,
            base64,
            task_type,
        })
    }

    /// How many inputs one Vertex AI call may carry for `model`.
    pub(crate) fn vertex_batch(model: &str) -> usize {
        if model.starts_with("gemini-embedding") {
            1
        } else {
            VERTEX_BATCH
        }
    }

    /// The `batchEmbedContents` body for `inputs` (a slice of this request's).
    pub(crate) fn batch_body(&self, model: &str, inputs: &[String]) -> BatchEmbedRequest {
        BatchEmbedRequest {
            requests: inputs
                .iter()
                .map(|text| EmbedRequest {
                    model: format!("models/{model}"),
                    content: Content {
                        role: None,
                        parts: vec![Part::text(text.clone())],
                    },
                    task_type: self.task_type.clone(),
                    output_dimensionality: self.dimensions,
                })
                .collect(),
        }
    }

    /// The Vertex AI `predict` body for `inputs`.
    pub(crate) fn predict_body(&self, inputs: &[String]) -> PredictRequest {
        PredictRequest {
            instances: inputs
                .iter()
                .map(|text| PredictInstance {
                    content: text.clone(),
                    task_type: self.task_type.clone(),
                })
                .collect(),
            parameters: self
                .dimensions
                .map(|d| json!({ "outputDimensionality": d })),
        }
    }
}

/// Vectors and input tokens gathered over one or more calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Collected {
    /// One vector per input so far.
    pub(crate) vectors: Vec<Vec<f64>>,
    /// Input tokens, when every call reported them.
    pub(crate) tokens: Option<u64>,
}

impl Collected {
    /// Adds the answer of a `batchEmbedContents` call made for `expected` inputs.
    pub(crate) fn add_batch(
        &mut self,
        answer: BatchEmbedResponse,
        expected: usize,
    ) -> Result<(), ProviderError> {
        check_count(answer.embeddings.len(), expected)?;
        self.add_tokens(answer.usage_metadata.map(|u| u.prompt_token_count));
        self.vectors
            .extend(answer.embeddings.into_iter().map(|e| e.values));
        Ok(())
    }

    /// Adds the answer of a Vertex AI `predict` call made for `expected` inputs.
    pub(crate) fn add_predict(
        &mut self,
        answer: PredictResponse,
        expected: usize,
    ) -> Result<(), ProviderError> {
        check_count(answer.predictions.len(), expected)?;
        let tokens: Option<f64> = answer
            .predictions
            .iter()
            .map(|p| p.embeddings.statistics.map(|s| s.token_count))
            .sum();
        self.add_tokens(tokens.map(|t| t.max(0.0).round() as u64));
        self.vectors
            .extend(answer.predictions.into_iter().map(|p| p.embeddings.values));
        Ok(())
    }

    fn add_tokens(&mut self, tokens: Option<u64>) {
        let first = self.vectors.is_empty();
        self.tokens = match (first, self.tokens, tokens) {
            (true, _, new) => new,
            (false, Some(sum), Some(new)) => Some(sum + new),
            _ => None,
        };
    }

    /// OpenAI's embedding list, and the usage to record (when Gemini reported it).
    pub(crate) fn to_openai(&self, model: &str, base64: bool) -> (Value, Option<Usage>) {
        let data: Vec<Value> = self
            .vectors
            .iter()
            .enumerate()
            .map(|(index, vector)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = vector
                        .iter()
                        .flat_map(|x| (*x as f32).to_le_bytes())
                        .collect();
                    Value::String(STANDARD.encode(bytes))
                } else {
                    json!(vector)
                };
                json!({ "object": "embedding", "index": index, "embedding": embedding })
            })
            .collect();
        let tokens = self.tokens.unwrap_or(0);
        let body = json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        });
        let usage = self.tokens.map(|prompt_tokens| Usage {
            prompt_tokens,
            completion_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
        });
        (body, usage)
    }
}

fn check_count(got: usize, expected: usize) -> Result<(), ProviderError> {
    if got == expected {
        Ok(())
    } else {
        Err(ProviderError::Malformed(format!(
            "Gemini returned {got} embeddings for {expected} inputs"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EmbeddingValues;

    fn parse(body: Value) -> Result<EmbeddingsRequest, ProviderError> {
        EmbeddingsRequest::parse(&JsonBody::parse(body.to_string().into()).unwrap())
    }

    #[test]
    fn reads_inputs_and_options() {
        let req = parse(json!({"model": "m", "input": ["a", "b"], "dimensions": 256,
                               "encoding_format": "base64", "task_type": "RETRIEVAL_QUERY"}))
        .unwrap();
        assert_eq!(req.inputs, ["a", "b"]);
        assert_eq!((req.dimensions, req.base64), (Some(256), true));
        assert_eq!(parse(json!({"input": "x"})).unwrap().inputs, ["x"]);
        for bad in [json!({"input": [1, 2]}), json!({"input": []}), json!({})] {
            assert!(parse(bad).unwrap_err().to_string().contains("text only"));
        }
        assert!(parse(json!({"input": "x", "encoding_format": "hex"})).is_err());
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let mut collected = Collected::default();
        let answer = BatchEmbedResponse {
            embeddings: vec![EmbeddingValues {
                values: vec![1.0, -2.5],
            }],
            usage_metadata: None,
        };
        collected.add_batch(answer, 1).unwrap();
        let (body, usage) = collected.to_openai("m", true);
        let bytes = STANDARD
            .decode(body["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes[..4], 1.0f32.to_le_bytes());
        assert_eq!(bytes[4..], (-2.5f32).to_le_bytes());
        assert_eq!(usage, None);
        assert_eq!(body["usage"]["prompt_tokens"], 0);
        assert!(
            Collected::default()
                .add_batch(BatchEmbedResponse::default(), 2)
                .is_err()
        );
    }
}
