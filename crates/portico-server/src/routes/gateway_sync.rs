//! `/gateway/v1`: what a control plane serves its hybrid gateways (spec section 9, the
//! `portico_hybrid` crate has the gateway's side and the document format).
//!
//! - `GET /snapshot?version=V&spend=F`: the catalog as a signed [`SnapshotDocument`]; at
//!   once when the catalog version is not `V`, else after a change (the admin API reloads
//!   the snapshot after every write; the store's version is read on every reload and once a
//!   second), or after [`SPEND_REFRESH`] when the spend fingerprint `F` is out of date, or
//!   304 after [`LONG_POLL`]. A drain answers waiting requests 304 at once, so a long poll
//!   never holds up a shutdown.
//! - `POST /logs` `{"batch", "entries"}`: each entry gets `gateway` = the token key's name
//!   and is written with `LogStore::insert` before the answer (ids already stored are
//!   skipped, so a replayed batch is stored once).
//! - `POST /spend` `{"batch", "deltas"}`: `SpendStore::apply_delivery` (once per batch id)
//!   and, for a new batch, the same charges on this process's ledger, so its budgets and
//!   later snapshots count them.
//!
//! Every route takes a key of type `gateway` only: none or an unknown, revoked or expired
//! one is 401, a key of another type 403. Errors are OpenAI-shaped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portico_core::{ApiError, BudgetSpec, Endpoint, ErrorCode, KeyHash, Limits};
use portico_engine::Family;
use portico_hybrid::{
    LONG_POLL, LogReceipt, SIGNATURE_HEADER, SPEND_REFRESH, SnapshotDocument, SpendBatch, SpendDoc,
    SpendReceipt, VERSION_HEADER, sign, spend_fingerprint,
};
use portico_logs::LogEntry;
use portico_store::{KeyType, Store};
use serde::Deserialize;

use crate::AppState;
use crate::error::ErrorResponse;

/// How often a waiting snapshot request reads the store's version and the spend without
/// being woken by a reload of this process's catalog (another process of a scale-out may
/// have changed the catalog; spend moves without a reload).
const RECHECK: Duration = Duration::from_secs(1);
/// The largest delivery body: a log batch with its payloads (the gateway sends about 8 MiB
/// at a time; one entry may be larger).
const MAX_DELIVERY_BYTES: usize = 256 * 1024 * 1024;

/// The gateway routes, relative to `/gateway/v1`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/snapshot", get(snapshot))
        .route("/logs", post(logs))
        .route("/spend", post(spend))
}

/// The gateway key that authorised a request.
pub(crate) struct GatewayToken {
    /// Its name: what the gateway's log entries are marked with.
    name: String,
    /// Its hash: what snapshots are signed with.
    hash: KeyHash,
}

impl FromRequestParts<AppState> for GatewayToken {
    type Rejection = ErrorResponse;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = Family::OpenAi(Endpoint::ChatCompletions).secret(&parts.headers);
        let key = state.gateway.authenticate_key(secret)?;
        if key.key_type != KeyType::Gateway {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "the key `{}` is of type {}; /gateway/v1 takes a key of type gateway (the token of `portico gateway`): create one with `portico keys add NAME --type gateway`",
                    key.name,
                    key.key_type.as_str()
                ),
            )
            .into());
        }
        Ok(GatewayToken {
            name: key.name.clone(),
            hash: KeyHash::of(secret.unwrap_or_default()),
        })
    }
}

fn unavailable(message: impl Into<String>) -> ErrorResponse {
    ApiError::new(ErrorCode::Unavailable, message).into()
}

fn store(state: &AppState) -> Result<&Arc<dyn Store>, ErrorResponse> {
    state.store.as_ref().ok_or_else(|| {
        unavailable("this process has no catalog store, so it cannot be a control plane")
    })
}

/// The query of `GET /snapshot`.
#[derive(Debug, Deserialize)]
struct SnapshotQuery {
    /// The catalog version the gateway holds.
    version: Option<i64>,
    /// The fingerprint of the spend it holds.
    spend: Option<String>,
}

/// `GET /gateway/v1/snapshot`: see the module docs.
async fn snapshot(
    token: GatewayToken,
    State(state): State<AppState>,
    query: Result<Query<SnapshotQuery>, QueryRejection>,
) -> Result<Response, ErrorResponse> {
    let Query(query) = query.map_err(|e| {
        ErrorResponse(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("{e}; send `version` (a number) and `spend` as the last snapshot gave them"),
        ))
    })?;
    let store = store(&state)?;
    let started = Instant::now();
    // Subscribed before the first read, so a reload after it wakes the wait below.
    let mut reloads = state.gateway.subscribe_reloads();
    let mut version = catalog_version(store.as_ref()).await?;
    let mut spend_moved = false;
    loop {
        if query.version != Some(version) {
            return answer(&state, store.as_ref(), &token, version).await;
        }
        let waited = started.elapsed();
        if spend_moved && waited >= SPEND_REFRESH {
            return answer(&state, store.as_ref(), &token, version).await;
        }
        if waited >= LONG_POLL || state.lifecycle.is_draining() {
            break;
        }
        tokio::select! {
            () = state.lifecycle.drain_started() => break,
            // A reload of this process's catalog (its admin API, or another process's change
            // it followed): read the version at once.
            _ = reloads.changed() => {}
            () = tokio::time::sleep(RECHECK.min(LONG_POLL - waited)) => {}
        }
        version = catalog_version(store.as_ref()).await?;
        spend_moved = query
            .spend
            .as_deref()
            .is_some_and(|held| held != spend_fingerprint(&spend_docs(&state)));
    }
    if spend_moved && !state.lifecycle.is_draining() {
        return answer(&state, store.as_ref(), &token, version).await;
    }
    Ok(StatusCode::NOT_MODIFIED.into_response())
}

async fn catalog_version(store: &dyn Store) -> Result<i64, ErrorResponse> {
    store.catalog_version().await.map_err(|e| {
        tracing::error!(error = %e, "gateway snapshot: cannot read the catalog version");
        unavailable(format!("cannot read the catalog: {e}"))
    })
}

/// The snapshot for `token`, signed.
async fn answer(
    state: &AppState,
    store: &dyn Store,
    token: &GatewayToken,
    version: i64,
) -> Result<Response, ErrorResponse> {
    // Taken before the spend is read: a batch applied before this instant is in it.
    let spend_at_ms = state.gateway.clock().now_ms();
    let spend = spend_docs(state);
    let now_ms = state.gateway.clock().now_ms();
    let document = SnapshotDocument::read(store, version, now_ms, &token.name, spend, spend_at_ms)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "gateway snapshot: cannot read the catalog");
            unavailable(format!("cannot read the catalog: {e}"))
        })?;
    let body = serde_json::to_vec(&document).map_err(|e| {
        ErrorResponse(ApiError::new(
            ErrorCode::Internal,
            format!("cannot encode the snapshot: {e}"),
        ))
    })?;
    let signature = sign(&token.hash, &body);
    tracing::debug!(gateway = %token.name, version, bytes = body.len(), "gateway snapshot sent");
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&signature) {
        headers.insert(SIGNATURE_HEADER, value);
    }
    headers.insert(VERSION_HEADER, HeaderValue::from(version));
    Ok(response)
}

/// This process's spend per budgeted subject, as its ledger holds it.
fn spend_docs(state: &AppState) -> Vec<SpendDoc> {
    let Some(limits) = &state.limits else {
        return Vec::new();
    };
    let now = state.gateway.clock().now_ms();
    limits
        .ledger()
        .accounts()
        .iter()
        .filter_map(|account| {
            let spend = account.spend_state(now);
            Some(SpendDoc {
                subject: spend.subject.to_string(),
                period: spend.period?,
                period_start_ms: spend.period_start_ms,
                cost_usd: spend.cost_usd,
                tokens: spend.tokens,
            })
        })
        .collect()
}

/// A delivery's body, within [`MAX_DELIVERY_BYTES`], parsed.
async fn delivery<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, ErrorResponse> {
    let bytes = axum::body::to_bytes(body, MAX_DELIVERY_BYTES)
        .await
        .map_err(|e| {
            ErrorResponse(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the delivery could not be read (at most {MAX_DELIVERY_BYTES} bytes): {e}"),
            ))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ErrorResponse(ApiError::new(
            ErrorCode::InvalidJson,
            format!("the delivery is not valid: {e}"),
        ))
    })
}

/// The body of `POST /logs`.
#[derive(Debug, Deserialize)]
struct LogDelivery {
    batch: String,
    entries: Vec<LogEntry>,
}

/// `POST /gateway/v1/logs`: see the module docs.
async fn logs(
    token: GatewayToken,
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<LogReceipt>, ErrorResponse> {
    let log_store = state
        .logs
        .clone()
        .ok_or_else(|| unavailable("this process keeps no request log"))?;
    let LogDelivery { batch, mut entries } = delivery(body).await?;
    for entry in &mut entries {
        entry.gateway = Some(token.name.clone());
    }
    let received = entries.len() as u64;
    let stored = log_store.insert(entries.into()).await.map_err(|e| {
        tracing::error!(gateway = %token.name, %batch, error = %e, "cannot store a gateway's log batch");
        unavailable(format!(
            "the request log could not store the batch: {e}; deliver it again"
        ))
    })?;
    tracing::debug!(gateway = %token.name, %batch, received, stored, "gateway log batch stored");
    Ok(Json(LogReceipt { received, stored }))
}

/// `POST /gateway/v1/spend`: see the module docs.
async fn spend(
    token: GatewayToken,
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<SpendReceipt>, ErrorResponse> {
    let spend_store = state.spend.clone().ok_or_else(|| {
        unavailable("this process keeps no spend ledger, so it cannot take a gateway's spend")
    })?;
    let batch: SpendBatch = delivery(body).await?;
    if batch.batch.is_empty() || batch.batch.len() > 64 {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "`batch` must be an id of 1 to 64 characters (the gateway sends a UUID)",
        )
        .with_param("batch")
        .into());
    }
    if let Some(i) = batch
        .deltas
        .iter()
        .position(|d| !d.cost_usd.is_finite() || d.cost_usd < 0.0)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("deltas[{i}].cost_usd must be a non-negative number"),
        )
        .with_param(format!("deltas[{i}].cost_usd"))
        .into());
    }
    let applied = spend_store
        .apply_delivery(&batch.batch, &batch.deltas)
        .await
        .map_err(|e| {
            tracing::error!(gateway = %token.name, batch = %batch.batch, error = %e, "cannot apply a gateway's spend");
            unavailable(format!(
                "the spend could not be stored: {e}; deliver the batch again"
            ))
        })?;
    if applied {
        charge_ledger(&state, &batch);
    }
    // Read after the ledger took the charges: a snapshot whose spend is read later has them.
    let applied_at_ms = state.gateway.clock().now_ms();
    tracing::debug!(gateway = %token.name, batch = %batch.batch, applied, "gateway spend batch");
    Ok(Json(SpendReceipt {
        applied,
        applied_at_ms,
    }))
}

/// Charges a new batch to this process's ledger, for the periods in progress (an older
/// period's spend is in the store only; it no longer limits anything). With a shared ledger
/// (Redis) the charges go there: the local ledger mirrors it, and the mirror would undo a
/// charge made only here.
fn charge_ledger(state: &AppState, batch: &SpendBatch) {
    let Some(limits) = &state.limits else {
        return;
    };
    let now = state.gateway.clock().now_ms();
    let mut shared_ends = Vec::new();
    for delta in &batch.deltas {
        let Some(period) = delta.period else {
            continue;
        };
        if delta.period_start_ms != period.start(now) {
            continue;
        }
        let account = limits.ledger().account(&delta.subject);
        // A budget whose period changed since the gateway's snapshot: the store has the
        // charge; adding it here would restart this account's period.
        if account
            .spend_state(now)
            .period
            .is_some_and(|held| held != period)
        {
            continue;
        }
        let counted_in = Limits {
            budget: Some(BudgetSpec {
                cost_usd: None,
                tokens: None,
                period,
            }),
            rate_limit: None,
        };
        let charge = portico_limits::Charge {
            cost_usd: delta.cost_usd,
            tokens: delta.tokens,
        };
        if limits.shared().is_some() {
            shared_ends.push(portico_limits::SharedEnd {
                account,
                limits: counted_in,
                reserved: portico_limits::Reserved::default(),
                charge: Some(charge),
            });
        } else {
            account.settle(
                &counted_in,
                portico_limits::Reserved::default(),
                charge,
                now,
            );
        }
    }
    if let Some(shared) = limits.shared()
        && !shared_ends.is_empty()
    {
        // Nothing was reserved for these: a settlement without a ticket is a plain charge.
        shared.end(None, shared_ends, Some(now));
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use portico_core::{Fanout, Limits, Period, Subject, SystemClock};
    use portico_engine::policies::limits::LimitsPolicy;
    use portico_engine::{Gateway, Snapshot};
    use portico_logs::{LogStore, SqliteLogStore};
    use portico_store::{MasterKey, NewKey, SpendStore, SqlStore};
    use serde_json::{Value, json};
    use tower::ServiceExt as _;

    use super::*;

    const TOKEN: &str = "prt-gw-test-token-0123456789";
    const SERVICE: &str = "prt-svc-test-key-0123456789";

    struct ControlPlane {
        app: Router,
        state: AppState,
        store: Arc<SqlStore>,
        logs: Arc<SqliteLogStore>,
        _dir: tempfile::TempDir,
    }

    fn key(name: &str, key_type: KeyType, secret: &str) -> NewKey {
        NewKey {
            name: name.to_owned(),
            key_type,
            user: None,
            hash: KeyHash::of(secret),
            hint: String::new(),
            allowed_models: None,
            config: None,
            log_payloads: true,
            limits: Limits::default(),
            expires_at_ms: None,
        }
    }

    async fn control_plane() -> ControlPlane {
        let store = SqlStore::open_in_memory(MasterKey::generate())
            .await
            .unwrap();
        store
            .create_key(&key("edge", KeyType::Gateway, TOKEN))
            .await
            .unwrap();
        store
            .create_key(&key("service", KeyType::Service, SERVICE))
            .await
            .unwrap();
        let client = portico_providers::http::build_client(Default::default()).unwrap();
        let snapshot = Snapshot::load(&store, &client).await.unwrap();
        let limits = Arc::new(LimitsPolicy::new(
            Arc::new(portico_limits::Ledger::new()),
            Arc::new(SystemClock),
        ));
        let gateway = Arc::new(
            Gateway::new(snapshot, client, Arc::new(Fanout::new(Vec::new())))
                .with_policy(limits.clone()),
        );
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(
            SqliteLogStore::open(&dir.path().join("logs.db"))
                .await
                .unwrap(),
        );
        let store = Arc::new(store);
        let state = AppState::new(gateway)
            .with_store(store.clone())
            .with_logs(logs.clone())
            .with_limits(limits)
            .with_spend_store(store.clone());
        ControlPlane {
            app: crate::router(state.clone()),
            state,
            store,
            logs,
            _dir: dir,
        }
    }

    async fn call(
        cp: &ControlPlane,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = cp
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    #[tokio::test]
    async fn only_a_gateway_key_gets_the_snapshot_and_it_is_signed_with_its_hash() {
        let cp = control_plane().await;
        let path = "/gateway/v1/snapshot";
        assert_eq!(call(&cp, "GET", path, None, None).await.0, 401);
        assert_eq!(
            call(&cp, "GET", path, Some("prt-unknown-000000000"), None)
                .await
                .0,
            401
        );
        let (status, _, body) = call(&cp, "GET", path, Some(SERVICE), None).await;
        assert_eq!(status, 403);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{body}");

        let (status, headers, body) = call(&cp, "GET", path, Some(TOKEN), None).await;
        assert_eq!(status, 200);
        let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
        portico_hybrid::verify(&KeyHash::of(TOKEN), &body, Some(signature)).unwrap();
        let document = SnapshotDocument::parse(&body).unwrap();
        assert_eq!(document.gateway, "edge");
        let version = document.version;
        assert_eq!(
            headers[VERSION_HEADER].to_str().unwrap(),
            version.to_string()
        );
        let names: Vec<&str> = document.keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["service"], "no gateway key in the snapshot");

        // Another version is answered at once; the same one waits, and a drain ends the
        // wait with a 304.
        let (status, ..) = call(
            &cp,
            "GET",
            &format!("{path}?version={}", version + 1),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200);
        cp.state.lifecycle.begin_drain();
        let same = format!(
            "{path}?version={version}&spend={}",
            document.spend_fingerprint()
        );
        let (status, ..) = tokio::time::timeout(
            Duration::from_secs(5),
            call(&cp, "GET", &same, Some(TOKEN), None),
        )
        .await
        .unwrap();
        assert_eq!(status, 304);
    }

    #[tokio::test]
    async fn a_log_batch_is_marked_with_the_gateway_and_stored_once() {
        let cp = control_plane().await;
        let entry = LogEntry::from_record(
            portico_core::RequestRecord::new("req-1".into(), 1_000, "chat.completions"),
            1024,
        );
        let batch = json!({"batch": "b-1", "entries": [entry]});
        let (status, _, body) = call(
            &cp,
            "POST",
            "/gateway/v1/logs",
            Some(TOKEN),
            Some(batch.clone()),
        )
        .await;
        assert_eq!(status, 200);
        let receipt: LogReceipt = serde_json::from_slice(&body).unwrap();
        assert_eq!((receipt.received, receipt.stored), (1, 1));
        let (_, _, body) = call(&cp, "POST", "/gateway/v1/logs", Some(TOKEN), Some(batch)).await;
        let receipt: LogReceipt = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (receipt.received, receipt.stored),
            (1, 0),
            "a replay is skipped"
        );
        let stored = cp.logs.get("req-1").await.unwrap().unwrap();
        assert_eq!(stored.summary.gateway.as_deref(), Some("edge"));
        let (status, ..) = call(
            &cp,
            "POST",
            "/gateway/v1/logs",
            Some(TOKEN),
            Some(json!({"batch": "x"})),
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn a_spend_batch_is_applied_once_to_the_store_and_the_ledger() {
        let cp = control_plane().await;
        let now = portico_core::now_ms();
        let start = Period::Month.start(now);
        let batch = json!({"batch": "spend-1", "deltas": [{
            "subject": "key:service", "period": "month", "period_start_ms": start,
            "cost_usd": 0.25, "tokens": 40
        }]});
        let mut receipts = Vec::new();
        for _ in 0..2 {
            let (status, _, body) = call(
                &cp,
                "POST",
                "/gateway/v1/spend",
                Some(TOKEN),
                Some(batch.clone()),
            )
            .await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            receipts.push(serde_json::from_slice::<SpendReceipt>(&body).unwrap());
        }
        assert!(receipts[0].applied && !receipts[1].applied);
        assert!(receipts[0].applied_at_ms >= now);
        let subject = Subject::Key("service".into());
        let account = cp
            .state
            .limits
            .as_ref()
            .unwrap()
            .ledger()
            .get(&subject)
            .unwrap();
        let status = account.budget_status(Period::Month, portico_core::now_ms());
        assert_eq!((status.cost_usd_spent, status.tokens_spent), (0.25, 40));
        let stored = cp.store.load_spend().await.unwrap();
        let row = stored.iter().find(|s| s.subject == subject).unwrap();
        assert_eq!((row.cost_usd, row.tokens), (0.25, 40));
        // The next snapshot carries it.
        let (_, _, body) = call(&cp, "GET", "/gateway/v1/snapshot", Some(TOKEN), None).await;
        let document = SnapshotDocument::parse(&body).unwrap();
        assert!(
            document
                .spend
                .iter()
                .any(|s| s.subject == "key:service" && s.cost_usd == 0.25),
            "{:?}",
            document.spend
        );
        let (status, ..) = call(
            &cp,
            "POST",
            "/gateway/v1/spend",
            Some(TOKEN),
            Some(json!({"batch": "spend-2", "deltas": [{
                "subject": "key:service", "period": "month", "period_start_ms": start,
                "cost_usd": -1.0, "tokens": 0
            }]})),
        )
        .await;
        assert_eq!(status, 400);
    }
}
