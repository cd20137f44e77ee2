//! A client of a running instance's admin API, for the CLI's catalog and log commands.
//!
//! Errors become one clear line: the API's own message for an error it answered (with its
//! status), or what to check when the instance cannot be reached.

use std::time::Duration;

use serde_json::Value;

use crate::Fatal;

/// Where the admin API is and the key that opens it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AdminArgs {
    /// Base URL of a running Portico (`portico serve`).
    #[arg(
        long,
        global = true,
        env = "PORTICO_URL",
        default_value = "http://127.0.0.1:8787",
        value_name = "URL"
    )]
    pub(crate) url: String,

    /// The admin key (printed by `portico serve` on first start).
    #[arg(
        long,
        global = true,
        env = "PORTICO_ADMIN_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub(crate) admin_key: Option<String>,
}

/// The admin API of one instance.
pub(crate) struct AdminClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl AdminClient {
    /// A client for `args`; a usage error without an admin key.
    pub(crate) fn new(args: &AdminArgs) -> Result<AdminClient, Fatal> {
        let key = args
            .admin_key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                Fatal::usage(
                    "no admin key: pass --admin-key or set PORTICO_ADMIN_KEY (portico serve prints it on first start)",
                )
            })?;
        let base = args.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Fatal::usage(format!(
                "--url must start with http:// or https://, not `{base}`"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Fatal::other(format!("cannot build the HTTP client: {e}")))?;
        Ok(AdminClient { http, base, key })
    }

    /// `GET /admin/v1{path}`.
    pub(crate) async fn get(&self, path: &str) -> Result<Value, Fatal> {
        self.send(reqwest::Method::GET, path, &[], None).await
    }

    /// `GET /admin/v1{path}` with query parameters.
    pub(crate) async fn get_query(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, Fatal> {
        self.send(reqwest::Method::GET, path, query, None).await
    }

    /// `POST /admin/v1{path}` with a JSON body.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<Value, Fatal> {
        self.send(reqwest::Method::POST, path, &[], Some(body))
            .await
    }

    /// `PUT /admin/v1{path}` with a JSON body.
    pub(crate) async fn put(&self, path: &str, body: &Value) -> Result<Value, Fatal> {
        self.send(reqwest::Method::PUT, path, &[], Some(body)).await
    }

    /// `PATCH /admin/v1{path}` with a JSON body.
    pub(crate) async fn patch(&self, path: &str, body: &Value) -> Result<Value, Fatal> {
        self.send(reqwest::Method::PATCH, path, &[], Some(body))
            .await
    }

    /// `DELETE /admin/v1{path}`.
    pub(crate) async fn delete(&self, path: &str) -> Result<Value, Fatal> {
        self.send(reqwest::Method::DELETE, path, &[], None).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Fatal> {
        self.exchange(method, path, query, body.map(Value::to_string))
            .await?
            .into_result()
    }

    /// `METHOD /admin/v1{path}`: the answer whatever its status, for a caller that words some
    /// refusals itself ([`Answer::into_result`] words the rest). `body` is JSON text, sent as
    /// it is (so a document keeps the order of its fields).
    pub(crate) async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<String>,
    ) -> Result<Answer, Fatal> {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(&self.key)
            .query(query);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| {
            Fatal::other(format!(
                "cannot reach Portico at {}: {}; is `portico serve` running there (--url / PORTICO_URL)?",
                self.base,
                root_cause(&e)
            ))
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Fatal::other(format!("the answer from {url} broke off: {e}")))?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                Fatal::other(format!(
                    "{url} answered {status} with something that is not JSON; is --url a Portico?"
                ))
            })?
        };
        Ok(Answer {
            status: status.as_u16(),
            body,
            text,
        })
    }

    /// The base URL of the instance, as given (without a trailing `/`).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }
}

/// One answer of the admin API, whatever its status.
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The body as JSON (null when empty).
    body: Value,
    /// The body as text, for an error without a JSON message.
    text: String,
}

impl Answer {
    /// The API's error message, or the body's text when it has none.
    pub(crate) fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map_or_else(|| self.text.trim().to_owned(), str::to_owned)
    }

    /// The body of a success; otherwise one line with the status and the API's message (and
    /// what to check for 401 and 403), exit code 1.
    pub(crate) fn into_result(self) -> Result<Value, Fatal> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        let hint = match self.status {
            401 | 403 => " (check --admin-key / PORTICO_ADMIN_KEY: it must be the admin key)",
            _ => "",
        };
        Err(Fatal::other(format!(
            "{} {}{hint}",
            self.status,
            self.message()
        )))
    }
}

/// The innermost error of a request failure ("Connection refused"), not reqwest's wrapper.
fn root_cause(err: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// Percent-encodes one path segment (ids and names may hold any character).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("reliable-v2"), "reliable-v2");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
