//! OpenAI's Responses API in the pipeline (`POST /v1/responses`, and `GET`/`DELETE` of a
//! kept response).
//!
//! A Responses request is the OpenAI family's `Endpoint::Responses`: it passes every phase
//! as chat completions do (routing, budgets, cache, guardrails, the log). What differs is
//! the attempt ([`crate::pipeline`]'s `attempt` module) and the conversation state:
//! - before dispatch, [`Gateway::responses_turn`] reads the request and, when it names a
//!   `previous_response_id`, the chain of kept responses it continues (its owner's only);
//! - an OpenAI provider gets the body as sent — with `previous_response_id` as it is when the
//!   previous response was kept by that same upstream, else with the conversation's items
//!   written into `input` in its place; every other provider gets it translated to chat
//!   completions (`portico_responses`), and its answer translated back;
//! - the answer, whole or streamed, is kept ([`ResponseKeeper`]) unless `store` is `false`.

mod keeper;

use std::sync::Arc;

use portico_core::{ApiError, ErrorCode, JsonBody};
use portico_responses::{ResponsesRequest, StoredResponse, Turn, conversation_of, input_items};
use serde_json::Value;
use serde_json::value::RawValue;

pub use keeper::ResponseKeeper;

use crate::gateway::Gateway;
use crate::snapshot::KeyEntry;

/// The longest chain of responses a request may continue.
const MAX_CHAIN: usize = 1_000;

/// What a Responses request needs besides its body, from its start to its answer kept.
#[derive(Debug)]
pub(crate) struct ResponsesTurn {
    /// The id and echoed settings of the answer (used when the gateway writes it).
    pub(crate) turn: Turn,
    /// The items of the conversation it continues, oldest first.
    pub(crate) history: Vec<Value>,
    /// This request's own input items, as a JSON array.
    input: Box<RawValue>,
    /// The response it continues, and the provider whose upstream keeps that one itself.
    previous: Option<(String, Option<String>)>,
    /// Whether the answer is kept (`store` is not `false`).
    stores: bool,
    /// Who may read or continue it.
    owner: String,
}

/// Who owns the responses a caller makes: its gateway key, and the person for a user's key
/// or token.
pub(crate) fn owner_of(key: &KeyEntry) -> String {
    match &key.user {
        Some(user) => format!("{}\u{1f}{user}", key.name),
        None => key.name.clone(),
    }
}

fn previous_not_found(id: &str) -> ApiError {
    let mut err = ApiError::new(
        ErrorCode::InvalidParameter,
        format!("Previous response with id '{id}' not found: it was never kept (made with `store: false`, or by another key), was deleted, or is older than the 30 days responses are kept"),
    )
    .with_param("previous_response_id");
    err.code_str = Some("previous_response_not_found".to_owned());
    err
}

impl ResponsesTurn {
    /// The body for an upstream that speaks the Responses API (the provider `slug`): as sent
    /// when there is no previous response or that upstream keeps it, else with the
    /// conversation's items in `input` instead of `previous_response_id`.
    pub(crate) fn passthrough_body(
        &self,
        body: &JsonBody,
        slug: &str,
    ) -> Result<JsonBody, ApiError> {
        match &self.previous {
            None => Ok(body.clone()),
            Some((_, Some(upstream))) if upstream == slug => Ok(body.clone()),
            Some(_) => {
                let mut body = body.clone();
                let input: Vec<Value> = serde_json::from_str(self.input.get()).unwrap_or_default();
                let items: Vec<&Value> = self.history.iter().chain(&input).collect();
                body.remove("previous_response_id");
                body.set("input", &items).map_err(|e| {
                    ApiError::new(
                        ErrorCode::Internal,
                        format!("could not write the request: {e}"),
                    )
                })?;
                Ok(body)
            }
        }
    }

    /// A whole answer of the upstream `slug`, which was sent the conversation's items in
    /// place of `previous_response_id` ([`ResponsesTurn::passthrough_body`]): it names the
    /// response the client continued again, as the client sent it. Any other answer is left
    /// as it is.
    pub(crate) fn echo_previous(&self, body: bytes::Bytes, slug: &str) -> bytes::Bytes {
        let Some((previous, upstream)) = &self.previous else {
            return body;
        };
        if upstream.as_deref() == Some(slug) {
            return body;
        }
        let Ok(mut response) = serde_json::from_slice::<Value>(&body) else {
            return body;
        };
        let Some(object) = response.as_object_mut() else {
            return body;
        };
        object.insert(
            "previous_response_id".to_owned(),
            Value::String(previous.clone()),
        );
        serde_json::to_vec(&response).map_or(body, bytes::Bytes::from)
    }

    /// The response to keep: `response` (the Response object the client got, as JSON text)
    /// whose id is `id`, unless the request said `store: false`. `upstream` is the provider
    /// whose upstream keeps it too.
    pub(crate) fn to_keep(
        &self,
        id: String,
        response: Box<RawValue>,
        upstream: Option<&str>,
    ) -> Option<StoredResponse> {
        if !self.stores {
            return None;
        }
        Some(StoredResponse {
            id,
            owner: self.owner.clone(),
            created_at_ms: portico_core::now_ms(),
            previous_response_id: self.previous.as_ref().map(|(id, _)| id.clone()),
            input: self.input.clone(),
            response,
            upstream: upstream.map(str::to_owned),
        })
    }

    /// The response to keep for a whole answer `body` (unless `store: false`): its id is
    /// this turn's when the gateway wrote it (`upstream` is `None`), else the upstream's.
    pub(crate) fn whole_to_keep(
        &self,
        body: &[u8],
        upstream: Option<&str>,
    ) -> Option<StoredResponse> {
        if !self.stores {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Id {
            id: String,
        }
        let id = match upstream {
            None => self.turn.id.clone(),
            Some(_) => serde_json::from_slice::<Id>(body).ok()?.id,
        };
        let text = std::str::from_utf8(body).ok()?.to_owned();
        let response = RawValue::from_string(text).ok()?;
        self.to_keep(id, response, upstream)
    }
}

/// A request's `input` as a JSON array of items: a string is one user message, nothing is
/// no item.
fn input_array(body: &JsonBody) -> Result<Box<RawValue>, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidParameter,
            "`input` must be a string or a list of input items",
        )
        .with_param("input")
    };
    let raw = body.get_raw("input").map(str::trim).unwrap_or("null");
    let text = match raw.as_bytes().first() {
        Some(b'[') => raw.to_owned(),
        Some(b'"') => {
            let items = input_items(Some(&serde_json::from_str(raw).map_err(|_| invalid())?))?;
            serde_json::to_string(&items).map_err(|_| invalid())?
        }
        _ if raw == "null" => "[]".to_owned(),
        _ => return Err(invalid()),
    };
    RawValue::from_string(text).map_err(|_| invalid())
}

impl Gateway {
    /// Reads a Responses request and the conversation it continues.
    ///
    /// # Errors
    ///
    /// A 400 for a body that is not a Responses request or a previous response that is not
    /// the caller's to continue; a 503 when the store cannot be read.
    pub(crate) async fn responses_turn(
        &self,
        key: &KeyEntry,
        body: &JsonBody,
    ) -> Result<ResponsesTurn, ApiError> {
        let req: ResponsesRequest = body.deserialize().map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("the body is not a valid Responses request: {e}"),
            )
        })?;
        let input = input_array(body)?;
        let owner = owner_of(key);
        let mut chain: Vec<Arc<StoredResponse>> = Vec::new();
        let mut next = req.previous_response_id.clone();
        while let Some(id) = next {
            if chain.len() >= MAX_CHAIN {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("the conversation is longer than {MAX_CHAIN} responses; start a new one, passing the items you need in `input`"),
                )
                .with_param("previous_response_id"));
            }
            let found = self
                .responses()
                .find(&id, &owner)
                .await?
                .ok_or_else(|| previous_not_found(&id))?;
            next = found.previous_response_id.clone();
            chain.push(found);
        }
        chain.reverse();
        let previous = chain.last().map(|p| (p.id.clone(), p.upstream.clone()));
        Ok(ResponsesTurn {
            turn: Turn::new(&req),
            history: conversation_of(&chain),
            input,
            previous,
            stores: req.stores(),
            owner,
        })
    }
}

/// What a client asks of a kept response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptAction {
    /// `GET /v1/responses/{id}`: the Response object.
    Get,
    /// `GET /v1/responses/{id}/input_items`: its input items, as a list.
    InputItems,
    /// `DELETE /v1/responses/{id}`.
    Delete,
}

fn response_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "Response with id '{id}' not found: it was never kept (made with `store: false`, or by another key), was deleted, or is older than the 30 days responses are kept"
        ),
    )
}

impl Gateway {
    /// Answers a request about the kept response `id`, for its owner only (another caller's
    /// response is not found).
    ///
    /// # Errors
    ///
    /// 401 for a missing or wrong key, 404 for a response the caller does not have, 503 when
    /// the store cannot be read.
    pub async fn kept_response(
        &self,
        headers: &http::HeaderMap,
        id: &str,
        action: KeptAction,
    ) -> Result<String, ApiError> {
        let family = crate::Family::OpenAi(portico_core::Endpoint::Responses);
        let key = self
            .authenticate(family.secret(headers))
            .await
            .map_err(|e| family.missing_key(e))?;
        let owner = owner_of(&key);
        match action {
            KeptAction::Delete => {
                if self.responses().delete(id, &owner).await? {
                    Ok(
                        serde_json::json!({"id": id, "object": "response", "deleted": true})
                            .to_string(),
                    )
                } else {
                    Err(response_not_found(id))
                }
            }
            KeptAction::Get | KeptAction::InputItems => {
                let kept = self
                    .responses()
                    .find(id, &owner)
                    .await?
                    .ok_or_else(|| response_not_found(id))?;
                if action == KeptAction::Get {
                    return Ok(kept.response.get().to_owned());
                }
                Ok(serde_json::json!({
                    "object": "list",
                    "data": kept.input_items(),
                    "first_id": null,
                    "last_id": null,
                    "has_more": false,
                })
                .to_string())
            }
        }
    }
}
