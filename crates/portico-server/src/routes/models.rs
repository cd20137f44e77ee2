//! `GET /v1/models`: the `@slug/model` ids the calling key may use, in OpenAI's list shape.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use portico_core::Endpoint;
use portico_engine::Family;

use crate::AppState;
use crate::error::ErrorResponse;

/// `GET /v1/models`
pub(crate) async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let secret = Family::OpenAi(Endpoint::ChatCompletions).secret(&headers);
    let key = match state.gateway.authenticate(secret).await {
        Ok(key) => key,
        Err(err) => return ErrorResponse(err).into_response(),
    };
    let data: Vec<serde_json::Value> = state
        .gateway
        .visible_models(&key)
        .into_iter()
        .map(|(slug, model)| {
            serde_json::json!({
                "id": format!("@{slug}/{model}"),
                "object": "model",
                "created": 0,
                "owned_by": slug,
            })
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data})).into_response()
}
