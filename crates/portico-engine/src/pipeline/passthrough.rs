//! OpenAI's pass-through operations in the pipeline (moderations, image generation, audio
//! transcription and speech: [`Endpoint::is_passthrough`]): how their bodies are read, how
//! an attempt sends them, and how an answer that is not JSON is logged.
//!
//! A transcription is a `multipart/form-data` upload. It is read once, in place
//! ([`FormUpload`]); its text fields become the request's JSON body for everything that reads
//! one (routing conditions on `params.*`, policies, the request log), and the upload itself
//! goes to the upstream byte for byte but for `model`. The other three are JSON bodies like
//! any other.
//!
//! Answers that are JSON (moderations, images, a JSON transcription) are whole answers like
//! any other. Text (a transcription as `text`, `srt`, `vtt`) and audio (speech) are
//! [`Ready::Media`]: sent with the upstream's Content-Type, and logged as text, or (binary) as
//! a note of their type and size only.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use portico_core::{ApiError, Endpoint, ErrorCode, JsonBody, RequestRecord};
use portico_providers::ProviderError;
use portico_providers::form::FormUpload;
use portico_providers::passthrough::{PassthroughBody, PassthroughRequest};

use crate::dispatch::AttemptError;
use crate::pipeline::Family;
use crate::pipeline::attempt::Ready;
use crate::pipeline::request::{self, ParsedBody};
use crate::route::Route;

/// Reads a request body of `family`: a JSON body ([`request::parse_body`]), or for an upload
/// its form, whose text fields stand in for the JSON body. Records the payload when the key
/// logs payloads (an upload: its fields and its files' names and sizes, never their bytes).
pub(crate) fn read_body(
    family: Family,
    headers: &HeaderMap,
    raw: Bytes,
    record: &mut RequestRecord,
) -> Result<(ParsedBody, Option<Arc<FormUpload>>), ApiError> {
    let Family::OpenAi(endpoint) = family else {
        return plain(raw, record).map(|parsed| (parsed, None));
    };
    if !endpoint.takes_form() {
        return plain(raw, record).map(|parsed| (parsed, None));
    }
    let form = FormUpload::parse(headers.get(http::header::CONTENT_TYPE), raw)?;
    if record.log_payloads {
        record.request = Some(form.log_summary());
    }
    let model = match form.text("model") {
        None => None,
        Some(m) if m.trim().is_empty() => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "the form field `model` is empty; address models as `@provider/model`, for example `@openai/whisper-1`",
            )
            .with_param("model"));
        }
        Some(m) => Some(m.to_owned()),
    };
    if form.files().is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "the form has no file; send the audio as the form field `file` (with a file name)",
        )
        .with_param("file"));
    }
    let parsed = ParsedBody {
        body: JsonBody::from_map(&form.fields()),
        model,
        stream: false,
        include_usage: false,
    };
    Ok((parsed, Some(Arc::new(form))))
}

/// A JSON body, logged as it came.
fn plain(raw: Bytes, record: &mut RequestRecord) -> Result<ParsedBody, ApiError> {
    if record.log_payloads {
        // `Bytes` are shared: this copies nothing.
        record.request = Some(raw.clone());
    }
    request::parse_body(raw)
}

/// One attempt of a pass-through operation along `route`: `body` (with its `model` already
/// the upstream name) or, for an upload, `form` with its `model` field replaced. A provider
/// kind without the operation fails the attempt without a call, with the error that says
/// where to send it instead (a fallback target may still answer).
pub(crate) async fn attempt(
    route: &Route,
    endpoint: Endpoint,
    body: JsonBody,
    form: Option<&Arc<FormUpload>>,
) -> Result<Ready, AttemptError> {
    let body = match form {
        Some(form) => PassthroughBody::Form(Arc::clone(form)),
        None => PassthroughBody::Json(body),
    };
    let request = PassthroughRequest {
        endpoint,
        model: route.model.clone(),
        body,
    };
    let Some(answer) = route.provider.send_passthrough(request).await else {
        return Err(AttemptError::Upstream(ProviderError::Unsupported {
            kind: route.provider.kind().as_str(),
            endpoint,
        }));
    };
    let answer = answer?;
    if answer.is_json() {
        return Ok(Ready::Complete {
            status: answer.status,
            body: answer.body,
            usage: None,
            translated: false,
        });
    }
    Ok(Ready::Media {
        status: answer.status,
        content_type: answer
            .content_type
            .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream")),
        body: answer.body,
    })
}

/// What the request log keeps of an answer that is not JSON, when payloads are logged: text
/// as it is; anything else (audio) as a note of its type and size, not megabytes of bytes.
pub(crate) fn loggable_media(content_type: &HeaderValue, body: &Bytes) -> Bytes {
    let essence = content_type.to_str().unwrap_or_default();
    if essence
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/")
    {
        return body.clone();
    }
    Bytes::from(
        serde_json::json!({
            "_binary": {"content_type": essence, "bytes": body.len()}
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_answers_are_logged_as_their_type_and_size() {
        let audio = Bytes::from(vec![0xffu8; 4096]);
        let logged = loggable_media(&HeaderValue::from_static("audio/mpeg"), &audio);
        let note: serde_json::Value = serde_json::from_slice(&logged).unwrap();
        assert_eq!(note["_binary"]["bytes"], 4096);
        assert_eq!(note["_binary"]["content_type"], "audio/mpeg");
        let srt = Bytes::from_static(b"1\n00:00:00,000 --> 00:00:01,000\nhi\n");
        assert_eq!(
            loggable_media(&HeaderValue::from_static("text/plain; charset=utf-8"), &srt),
            srt
        );
    }

    fn record(log_payloads: bool) -> RequestRecord {
        let mut record = RequestRecord::new("id".into(), 0, "audio.transcriptions");
        record.log_payloads = log_payloads;
        record
    }

    #[test]
    fn an_upload_stands_in_for_a_json_body_by_its_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=b"),
        );
        let raw = Bytes::from_static(b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n@o/whisper-1\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF....\r\n--b--\r\n");
        let mut logged = record(true);
        let (parsed, form) = read_body(
            Family::OpenAi(Endpoint::AudioTranscriptions),
            &headers,
            raw,
            &mut logged,
        )
        .unwrap();
        assert_eq!(parsed.model.as_deref(), Some("@o/whisper-1"));
        assert!(form.is_some());
        assert_eq!(
            parsed.body.get::<String>("model").unwrap().unwrap(),
            "@o/whisper-1"
        );
        assert!(!parsed.body.contains("file"));
        let summary: serde_json::Value =
            serde_json::from_slice(logged.request.as_ref().unwrap()).unwrap();
        assert_eq!(summary["_files"][0]["bytes"], 8);

        let no_file = Bytes::from_static(
            b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b--\r\n",
        );
        let err = read_body(
            Family::OpenAi(Endpoint::AudioTranscriptions),
            &headers,
            no_file,
            &mut record(false),
        )
        .err()
        .unwrap();
        assert_eq!(err.param.as_deref(), Some("file"));

        let json = read_body(
            Family::OpenAi(Endpoint::AudioSpeech),
            &HeaderMap::new(),
            Bytes::from_static(br#"{"model":"@o/tts-1","input":"hi","voice":"alloy"}"#),
            &mut record(false),
        )
        .unwrap();
        assert!(json.1.is_none());
        assert_eq!(json.0.model.as_deref(), Some("@o/tts-1"));
    }
}
