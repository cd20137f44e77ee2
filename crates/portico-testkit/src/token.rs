//! [`MockTokenServer`]: a stand-in for a cloud's token endpoint or metadata server (Entra ID,
//! Azure's managed identity endpoints, Google's OAuth token endpoint and metadata server, AWS
//! STS and the ECS and EC2 credential endpoints), on `127.0.0.1:0`.
//!
//! Every request, on any path, is recorded and answered by the test's `mint` function with
//! the request's 1-based number (so each answer can carry a new token), unless the server was
//! told to fail. The answer is JSON, unless `mint` gives a JSON string, which is sent as
//! plain text (IMDSv2's session token, STS's XML).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::record::RecordedRequest;

/// Answers a request (its number, the request) with a JSON body.
type MintFn = dyn Fn(usize, &RecordedRequest) -> Value + Send + Sync;

struct Shared {
    mint: Box<MintFn>,
    requests: Mutex<Vec<RecordedRequest>>,
    failure: Mutex<Option<(u16, Value)>>,
    headers: Mutex<Vec<(String, String)>>,
}

/// A token endpoint for tests.
pub struct MockTokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: JoinSet<()>,
}

impl std::fmt::Debug for MockTokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockTokenServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockTokenServer {
    /// Binds `127.0.0.1:0`; each request is answered with `mint(n, request)`.
    #[expect(clippy::expect_used, reason = "test support: no port means no test")]
    pub async fn start(
        mint: impl Fn(usize, &RecordedRequest) -> Value + Send + Sync + 'static,
    ) -> MockTokenServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the mock token endpoint");
        let addr = listener.local_addr().expect("local address of the mock");
        let shared = Arc::new(Shared {
            mint: Box::new(mint),
            requests: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            headers: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let mut server = JoinSet::new();
        server.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockTokenServer {
            addr,
            shared,
            _server: server,
        }
    }

    /// An OAuth token endpoint: `access_token` `{prefix}-{n}`, valid `expires_in` seconds.
    pub async fn oauth(prefix: &'static str, expires_in: u64) -> MockTokenServer {
        MockTokenServer::start(move |n, _| {
            serde_json::json!({
                "access_token": format!("{prefix}-{n}"),
                "expires_in": expires_in,
                "token_type": "Bearer",
            })
        })
        .await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The bound address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests came.
    pub fn hits(&self) -> usize {
        self.requests().len()
    }

    /// How many requests came to `path`.
    pub fn hits_for(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }

    /// Adds a header to every answer from now on (IMDSv2 answers its session token with
    /// `x-aws-ec2-metadata-token-ttl-seconds`).
    pub fn add_header(&self, name: &str, value: &str) {
        self.shared
            .headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name.to_owned(), value.to_owned()));
    }

    /// Answers every request with `status` and `body` from now on, or mints again with `None`.
    pub fn fail_with(&self, failure: Option<(u16, Value)>) {
        *self
            .shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failure;
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let recorded = {
        let mut requests = shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let recorded = RecordedRequest {
            seq: requests.len() + 1,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            json: serde_json::from_slice(&body).ok(),
            body,
        };
        requests.push(recorded.clone());
        recorded
    };
    let failure = shared
        .failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (status, value) = match failure {
        Some((status, body)) => (status, body),
        None => (200, (shared.mint)(recorded.seq, &recorded)),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match value {
        Value::String(text) => (status, Body::from(text)).into_response(),
        other => (status, axum::Json(other)).into_response(),
    };
    let headers = shared
        .headers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
