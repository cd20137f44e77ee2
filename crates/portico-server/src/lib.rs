//! HTTP serving: the data plane's routes, the model list, health, the admin API and the
//! dashboard, on axum, behind a listener of its own ([`serve`]).
//!
//! Where it sits: above the engine, below the binary. The data plane's handlers are thin: the
//! route names the API family, [`portico_engine::Gateway::handle`] runs the request through the
//! pipeline, and the reply is written in HTTP (a JSON body, a server-sent-event stream, or an
//! error in the family's shape). The connection's limits (request-head deadline, header
//! count and size, body size and stall, the write-stall deadline, open connections, the
//! drain) are this crate's.
//!
//! What it is not: routing decisions, policies, provider wire formats, or persistence.
//!
//! Main items: [`AppState`], [`router`], [`data_plane_router`] (a hybrid gateway's),
//! [`serve`] (the listener), [`Lifecycle`] (serving, draining, cut), [`BodyLimits`].

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use portico_engine::Gateway;
use portico_logs::LogStore;
use portico_store::{SpendStore, Store};

mod admission;
mod auth_throttle;
mod body;
mod connection_limit;
mod connections;
mod data_plane;
mod error;
mod head_limits;
mod lifecycle;
mod routes;
mod security_headers;
mod write_deadline;

pub use admission::{Admission, DEFAULT_MAX_IN_FLIGHT};
pub use auth_throttle::{
    AUTH_FAILURE_WINDOW, AuthThrottle, DEFAULT_AUTH_FAILURE_LIMIT, MAX_TRACKED_CLIENTS,
};
pub use body::{BodyLimits, DEFAULT_BODY_STALL_TIMEOUT, DEFAULT_MAX_BODY_BYTES};
pub use connection_limit::DEFAULT_MAX_CONNECTIONS;
pub use connections::{DEFAULT_HEADER_TIMEOUT, ServeOptions, serve};
pub use error::ErrorResponse;
pub use head_limits::{DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_COUNT, HeadLimits};
pub use lifecycle::{InFlightGuard, Lifecycle};
pub use security_headers::DEFAULT_CONTENT_SECURITY_POLICY;
pub use write_deadline::DEFAULT_WRITE_TIMEOUT;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The request pipeline.
    pub gateway: Arc<Gateway>,
    /// Serving, draining or cut: `/readyz` and every handler read it.
    pub lifecycle: Arc<Lifecycle>,
    /// What a client's request body may cost.
    pub body_limits: BodyLimits,
    /// The catalog's store, for the admin API; `None` serves the data plane only (the admin
    /// API then answers 503).
    pub store: Option<Arc<dyn Store>>,
    /// The request log, for the admin API's logs and analytics; `None` answers them 503.
    pub logs: Option<Arc<dyn LogStore>>,
    /// The request log's storage health, shown by `/readyz`; `None` shows nothing.
    pub log_health: Option<Arc<dyn portico_core::LogHealthSource>>,
    /// The budgets and rate limits in force, for `GET /admin/v1/budgets`; `None` answers it
    /// 503.
    pub limits: Option<Arc<portico_engine::policies::limits::LimitsPolicy>>,
    /// The spend ledger's store, for hybrid gateways' spend (`POST /gateway/v1/spend`);
    /// `None` answers that 503.
    pub spend: Option<Arc<dyn SpendStore>>,
    /// How many requests may be in flight before data-plane requests are refused with 503
    /// `overloaded` ([`Admission`]).
    pub admission: Admission,
}

impl AppState {
    /// State for a gateway that is ready to serve.
    pub fn new(gateway: Arc<Gateway>) -> AppState {
        AppState {
            gateway,
            lifecycle: Lifecycle::new(),
            body_limits: BodyLimits::default(),
            store: None,
            logs: None,
            log_health: None,
            limits: None,
            spend: None,
            admission: Admission::default(),
        }
    }

    /// The same state with the catalog's store, which enables the admin API.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> AppState {
        self.store = Some(store);
        self
    }

    /// The same state with the request log, which enables the admin API's logs and analytics.
    pub fn with_logs(mut self, logs: Arc<dyn LogStore>) -> AppState {
        self.logs = Some(logs);
        self
    }

    /// The same state with the request log's health, which `/readyz` then shows.
    pub fn with_log_health(mut self, health: Arc<dyn portico_core::LogHealthSource>) -> AppState {
        self.log_health = Some(health);
        self
    }

    /// The same state with the limits policy the gateway enforces, which enables
    /// `GET /admin/v1/budgets`.
    pub fn with_limits(
        mut self,
        limits: Arc<portico_engine::policies::limits::LimitsPolicy>,
    ) -> AppState {
        self.limits = Some(limits);
        self
    }

    /// The same state with the spend ledger's store, which lets hybrid gateways deliver
    /// their spend (`/gateway/v1/spend`).
    pub fn with_spend_store(mut self, spend: Arc<dyn SpendStore>) -> AppState {
        self.spend = Some(spend);
        self
    }

    /// The same state with another admission limit.
    pub fn with_admission(mut self, admission: Admission) -> AppState {
        self.admission = admission;
        self
    }

    /// The same state with other limits on request bodies.
    pub fn with_body_limits(mut self, limits: BodyLimits) -> AppState {
        self.body_limits = limits;
        self
    }
}

/// The gateway's routes. Data-plane bodies are read by the handlers themselves, after
/// authentication, within `state.body_limits`; the admin API's JSON bodies are bounded by the
/// same size limit. `/gateway/v1` is what hybrid gateways ask (`portico gateway`).
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.body_limits.max_bytes;
    data_plane_routes()
        .nest("/admin/v1", routes::admin::router())
        .nest("/gateway/v1", routes::gateway_sync::router())
        // The dashboard: `/` and its versioned `/assets/`; every other path keeps the JSON 404.
        .merge(portico_dashboard::router())
        .fallback(routes::health::not_found)
        .method_not_allowed_fallback(routes::health::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The data plane, `/healthz` and `/readyz` only: what a hybrid gateway serves (no admin API,
/// no dashboard, no `/gateway/v1`; those paths get the JSON 404).
pub fn data_plane_router(state: AppState) -> Router {
    let max_body_bytes = state.body_limits.max_bytes;
    data_plane_routes()
        .fallback(routes::health::not_found)
        .method_not_allowed_fallback(routes::health::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The routes every process serves.
fn data_plane_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(data_plane::chat_completions))
        .route("/v1/completions", post(data_plane::completions))
        .route("/v1/embeddings", post(data_plane::embeddings))
        .route("/v1/moderations", post(data_plane::moderations))
        .route(
            "/v1/images/generations",
            post(data_plane::image_generations),
        )
        .route(
            "/v1/audio/transcriptions",
            post(data_plane::audio_transcriptions),
        )
        .route("/v1/audio/speech", post(data_plane::audio_speech))
        .route("/v1/models", get(routes::models::list_models))
        .route("/v1/messages", post(data_plane::messages))
        .route("/v1/responses", post(data_plane::responses))
        .route(
            "/v1/responses/{id}",
            get(data_plane::get_response).delete(data_plane::delete_response),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(data_plane::response_input_items),
        )
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
}
