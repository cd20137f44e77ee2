//! What [`MockUpstream`](crate::MockUpstream) remembers about each request it received.

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::Value;

/// One request as the mock received it, recorded before any reply is chosen.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// 1-based arrival order (the mock's hit counter at arrival).
    pub seq: usize,
    /// HTTP method.
    pub method: Method,
    /// Path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Raw query string without `?`, if any.
    pub query: Option<String>,
    /// All request headers.
    pub headers: HeaderMap,
    /// The body bytes exactly as received.
    pub body: Bytes,
    /// The body parsed as JSON, if it is JSON.
    pub json: Option<Value>,
}

impl RecordedRequest {
    /// A header value as text (the first one, if repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The bearer token of the `authorization` header, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    /// The body as (lossy) UTF-8 text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The parsed JSON body, or `Value::Null` if the body was not JSON. Handy for
    /// `req.json_body()["model"]`.
    pub fn json_body(&self) -> &Value {
        self.json.as_ref().unwrap_or(&Value::Null)
    }
}
