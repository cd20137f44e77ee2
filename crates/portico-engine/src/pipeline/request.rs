//! Reading what a client sent: Portkey's request headers and the JSON body, with errors that
//! name the header or field at fault. (The gateway key is read by [`super::Family::secret`].)

use bytes::Bytes;
use http::HeaderMap;
use portico_core::{ApiError, BodyError, ErrorCode, JsonBody};

/// Header carrying a trace id to group requests (echoed, or generated when absent).
pub(crate) const TRACE_ID: &str = "x-portkey-trace-id";
/// Header carrying request metadata: a JSON object of string values.
pub(crate) const METADATA: &str = "x-portkey-metadata";
/// Header naming the provider for a bare model name.
pub(crate) const PROVIDER: &str = "x-portkey-provider";
/// Portkey's older name for the same thing (its SDKs' `virtual_key`): a provider's slug.
pub(crate) const VIRTUAL_KEY: &str = "x-portkey-virtual-key";
/// Portkey's per-request upstream URL, which Portico refuses (see [`refuse_unsupported`]).
pub(crate) const CUSTOM_HOST: &str = "x-portkey-custom-host";
/// Response header carrying the request's log id.
pub(crate) const REQUEST_ID: &str = "x-portkey-request-id";
/// The routing config to apply: a config id or inline JSON.
pub(crate) const CONFIG: &str = "x-portkey-config";
/// A time budget for the request, in milliseconds.
pub(crate) const REQUEST_TIMEOUT: &str = "x-portkey-request-timeout";
/// The config option that answered (`config.targets[1]`).
pub(crate) const LAST_USED_OPTION: &str = "x-portkey-last-used-option-index";
/// Retries of the option that answered; `-1` when they were all spent.
pub(crate) const RETRY_COUNT: &str = "x-portkey-retry-attempt-count";
/// Response header: how the response cache answered (`HIT`, `MISS`, `REFRESH`, ...).
pub(crate) const CACHE_STATUS: &str = "x-portkey-cache-status";
/// Request header: `true` skips the cache lookup and stores the fresh answer.
pub(crate) const CACHE_FORCE_REFRESH: &str = "x-portkey-cache-force-refresh";
/// Request header: a namespace that is part of the cache key.
pub(crate) const CACHE_NAMESPACE: &str = "x-portkey-cache-namespace";

/// Longest accepted trace id.
const MAX_TRACE_ID: usize = 256;
/// Longest accepted metadata header.
const MAX_METADATA: usize = 8 * 1024;

/// The trace id the client sent (validated) or a new one: a UUID v7, time-ordered like the
/// request id, so that the request log's trace-id index grows at its end instead of taking a
/// write to a random page for every request (docs/performance.md).
pub fn trace_id(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(TRACE_ID) else {
        return Ok(uuid::Uuid::now_v7().to_string());
    };
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidHeader,
            format!("`{TRACE_ID}` must be 1 to {MAX_TRACE_ID} printable ASCII characters"),
        )
        .with_param(TRACE_ID)
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() || text.len() > MAX_TRACE_ID || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(text.to_owned())
}

/// `x-portkey-metadata`: a JSON object whose values are strings (Portkey's rule). `_user`
/// names the end user.
pub fn metadata(
    headers: &HeaderMap,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ApiError> {
    let Some(value) = headers.get(METADATA) else {
        return Ok(None);
    };
    let invalid = |why: String| {
        ApiError::new(ErrorCode::InvalidHeader, format!("`{METADATA}` {why}")).with_param(METADATA)
    };
    if value.len() > MAX_METADATA {
        return Err(invalid(format!("is longer than {MAX_METADATA} bytes")));
    }
    let text = value.to_str().map_err(|_| {
        invalid("is not valid visible ASCII; encode it as JSON with \\u escapes".into())
    })?;
    let parsed: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "is not valid JSON ({e}); send an object such as {{\"team\":\"backend\"}}"
        ))
    })?;
    let serde_json::Value::Object(map) = parsed else {
        return Err(invalid(
            "must be a JSON object such as {\"team\":\"backend\"}".into(),
        ));
    };
    if let Some((key, _)) = map.iter().find(|(_, v)| !v.is_string()) {
        return Err(invalid(format!(
            "values must be strings; `{key}` is not (quote numbers and booleans)"
        )));
    }
    Ok(Some(map))
}

/// `x-portkey-config`: a config id or inline JSON, when sent.
pub fn config_header(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    match headers.get(CONFIG) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()).filter(|v| !v.is_empty()))
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidHeader,
                    format!(
                        "`{CONFIG}` must be visible ASCII: a config id or JSON with \\u escapes"
                    ),
                )
                .with_param(CONFIG)
            }),
    }
}

/// `x-portkey-request-timeout`: whole milliseconds above 0.
pub fn request_timeout(headers: &HeaderMap) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(value) = headers.get(REQUEST_TIMEOUT) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(|ms| Some(std::time::Duration::from_millis(ms)))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidHeader,
                format!("`{REQUEST_TIMEOUT}` must be a whole number of milliseconds above 0, such as 30000"),
            )
            .with_param(REQUEST_TIMEOUT)
        })
}

/// `x-portkey-provider`, or else `x-portkey-virtual-key`, when sent.
///
/// A Portkey virtual key names a stored provider credential; its Portico counterpart is a
/// catalog provider, so a user moving from Portkey keeps `virtual_key="openai-prod"` in their
/// code and names the catalog provider `openai-prod` (docs/api.md).
pub fn provider_header(headers: &HeaderMap) -> Option<&str> {
    let named = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    named(PROVIDER).or_else(|| named(VIRTUAL_KEY))
}

/// Refuses the Portkey request headers Portico does not honour and that would otherwise be
/// silently ignored, changing where a request goes: `x-portkey-custom-host` asks for an
/// upstream URL chosen per request, and Portico sends requests only to the providers of its
/// catalog (an arbitrary URL from a caller would also let any key reach internal hosts).
pub fn refuse_unsupported(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(CUSTOM_HOST) {
        return Err(ApiError::new(
            ErrorCode::InvalidHeader,
            format!(
                "`{CUSTOM_HOST}` is not supported: Portico sends requests only to the providers of its catalog; add a provider with that URL as its `base_url` and address it as `@slug/model`"
            ),
        )
        .with_param(CUSTOM_HOST));
    }
    Ok(())
}

/// What the body of an OpenAI-style request must have for the gateway to route it.
pub struct ParsedBody {
    /// The whole body, kept as its bytes.
    pub body: JsonBody,
    /// `model`, as sent; `None` when absent (a routing config may set it).
    pub model: Option<String>,
    /// `stream`, false when absent.
    pub stream: bool,
    /// `stream_options.include_usage`: whether the client wants the usage chunk.
    pub include_usage: bool,
}

/// Parses a request body: a JSON object with a string `model` and, if present, a boolean
/// `stream`. Only the top level is indexed; nested values stay unparsed bytes.
pub fn parse_body(bytes: Bytes) -> Result<ParsedBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the request body is empty; send a JSON object with `model` and the endpoint's parameters",
        ));
    }
    let body = JsonBody::parse(bytes).map_err(|err| match err {
        BodyError::Syntax(e) => ApiError::new(
            ErrorCode::InvalidJson,
            format!("the request body is not valid JSON: {e}"),
        ),
        BodyError::NotObject => ApiError::new(
            ErrorCode::InvalidJson,
            "the request body must be a JSON object",
        ),
    })?;
    let model = match body.get::<Option<String>>("model") {
        Some(Ok(Some(m))) if !m.trim().is_empty() => Some(m),
        None | Some(Ok(None)) => None,
        Some(Ok(Some(_))) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "`model` is empty; address models as `@provider/model`, for example `@mock/echo`",
            )
            .with_param("model"));
        }
        Some(Err(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "`model` must be a string such as `@provider/model`",
            )
            .with_param("model"));
        }
    };
    let stream = match body.get::<Option<bool>>("stream") {
        None | Some(Ok(None)) => false,
        Some(Ok(Some(b))) => b,
        Some(Err(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "`stream` must be true or false",
            )
            .with_param("stream"));
        }
    };
    let include_usage = body
        .get::<serde_json::Value>("stream_options")
        .and_then(Result::ok)
        .and_then(|o| o.get("include_usage").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    Ok(ParsedBody {
        body,
        model,
        stream,
        include_usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn metadata_must_be_an_object_of_strings() {
        let ok = metadata(&headers(&[(METADATA, r#"{"team":"backend","_user":"a"}"#)])).unwrap();
        assert_eq!(ok.unwrap()["team"], "backend");
        for bad in [r#"{"team":1}"#, "[1]", "{not json", r#""text""#] {
            let err = metadata(&headers(&[(METADATA, bad)])).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert_eq!(err.param.as_deref(), Some(METADATA));
        }
    }

    #[test]
    fn the_provider_comes_from_the_provider_header_else_the_virtual_key() {
        assert_eq!(provider_header(&HeaderMap::new()), None);
        assert_eq!(
            provider_header(&headers(&[(VIRTUAL_KEY, " openai-prod ")])),
            Some("openai-prod")
        );
        assert_eq!(
            provider_header(&headers(&[(VIRTUAL_KEY, "vk"), (PROVIDER, "@explicit")])),
            Some("@explicit")
        );
        assert_eq!(provider_header(&headers(&[(PROVIDER, " ")])), None);
    }

    #[test]
    fn a_custom_host_is_refused_with_what_to_do_instead() {
        assert!(refuse_unsupported(&headers(&[(PROVIDER, "@a")])).is_ok());
        let err = refuse_unsupported(&headers(&[(CUSTOM_HOST, "http://10.0.0.1/v1")])).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.param.as_deref(), Some(CUSTOM_HOST));
        assert!(err.message.contains("base_url"), "{}", err.message);
    }

    #[test]
    fn trace_id_is_echoed_or_generated() {
        assert_eq!(
            trace_id(&headers(&[(TRACE_ID, "session-1")])).unwrap(),
            "session-1"
        );
        assert_eq!(trace_id(&HeaderMap::new()).unwrap().len(), 36);
        assert!(trace_id(&headers(&[(TRACE_ID, "has space")])).is_err());
    }

    #[test]
    fn a_model_when_given_must_be_a_non_empty_string() {
        let err = |b: &str| parse_body(Bytes::from(b.to_owned())).err().unwrap();
        assert_eq!(err("").code, ErrorCode::InvalidJson);
        assert_eq!(err("{").code, ErrorCode::InvalidJson);
        assert_eq!(err("[]").code, ErrorCode::InvalidJson);
        assert_eq!(err(r#"{"model":" "}"#).param.as_deref(), Some("model"));
        // Without a model, routing decides (a config may set one; else a 400 there).
        assert_eq!(parse_body(Bytes::from_static(b"{}")).unwrap().model, None);
        assert_eq!(err(r#"{"model":3}"#).param.as_deref(), Some("model"));
        assert_eq!(
            err(r#"{"model":"@m/x","stream":"yes"}"#).param.as_deref(),
            Some("stream")
        );
        let ok = parse_body(Bytes::from_static(br#"{"model":"@m/x","stream":true}"#)).unwrap();
        assert_eq!(ok.model.as_deref(), Some("@m/x"));
        assert!(ok.stream);
    }
}
