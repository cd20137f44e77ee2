//! A `multipart/form-data` upload (OpenAI's `POST /v1/audio/transcriptions`): read once to
//! find its parts, then forwarded byte for byte, with its own boundary, but for `model`.
//!
//! The parts are located in the client's bytes (RFC 7578 / RFC 2046 framing: `--boundary`
//! lines, each part's header block, its content up to the next `CRLF--boundary`), never
//! copied: the upstream body is the client's body cut around the `model` value, sent as
//! shared slices. A file of many megabytes is held once, from the client's read to the
//! upstream's write, whichever provider and however many attempts it goes to.
//!
//! Why not a multipart library's parser (`multer`, axum's): it copies the body into a buffer
//! of its own and yields parts without their positions, so forwarding the upload intact with
//! only `model` changed would need the body written again. The framing is found with
//! `memchr`'s substring search, header blocks are read by `httparse` and the content type by
//! `mime` (docs/dependencies.md).

use std::ops::Range;

use bytes::Bytes;
use http::HeaderValue;
use memchr::memmem;
use portico_core::{ApiError, ErrorCode};

use crate::ProviderError;

/// Most parts a form may have: OpenAI's transcription form has about ten fields.
const MAX_PARTS: usize = 64;
/// Most header lines one part may have.
const MAX_PART_HEADERS: usize = 8;

/// One part of a form: its name, whether it is a file, and where its content lies.
#[derive(Debug, Clone)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    content: Range<usize>,
}

/// What the request log and the limits see of an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The form field (`file`).
    pub field: String,
    /// The client's file name, when sent.
    pub filename: Option<String>,
    /// The part's content type, when sent.
    pub content_type: Option<String>,
    /// Its size in bytes.
    pub bytes: usize,
}

/// A parsed `multipart/form-data` body, holding the client's bytes.
#[derive(Debug, Clone)]
pub struct FormUpload {
    raw: Bytes,
    content_type: HeaderValue,
    boundary: String,
    parts: Vec<Part>,
    /// Where the closing `--boundary--` line starts: a `model` part the client did not send
    /// is added just before it.
    close_at: usize,
}

impl FormUpload {
    /// Reads the parts of `raw`, a body sent with `content_type`.
    ///
    /// # Errors
    ///
    /// A 400 saying what is wrong: not `multipart/form-data`, no boundary, or framing that
    /// does not follow RFC 7578.
    pub fn parse(content_type: Option<&HeaderValue>, raw: Bytes) -> Result<FormUpload, ApiError> {
        let content_type = content_type.cloned().ok_or_else(|| {
            not_a_form("the request has no Content-Type; send the upload as multipart/form-data")
        })?;
        let boundary = boundary_of(&content_type)?;
        let delimiter = format!("--{boundary}");
        let next_delimiter = format!("\r\n{delimiter}");
        let finder = memmem::Finder::new(next_delimiter.as_bytes());
        let mut at = if raw.starts_with(delimiter.as_bytes()) {
            0
        } else {
            finder
                .find(&raw)
                .map(|i| i + 2)
                .ok_or_else(|| malformed("no part starts with the boundary of its Content-Type"))?
        };
        let mut parts = Vec::new();
        loop {
            let after = at + delimiter.len();
            let rest = raw.get(after..).unwrap_or_default();
            if rest.starts_with(b"--") {
                return Ok(FormUpload {
                    raw,
                    content_type,
                    boundary,
                    parts,
                    close_at: at,
                });
            }
            if parts.len() == MAX_PARTS {
                return Err(malformed("the form has more than 64 parts"));
            }
            // Transport padding (spaces and tabs) may follow a delimiter before its CRLF.
            let padding = rest
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            if !rest[padding..].starts_with(b"\r\n") {
                return Err(malformed(
                    "a boundary line is not followed by CRLF (or the closing `--`)",
                ));
            }
            let headers_at = after + padding + 2;
            let mut headers = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
            let header_len = match httparse::parse_headers(&raw[headers_at..], &mut headers) {
                Ok(httparse::Status::Complete((len, _))) => len,
                Ok(httparse::Status::Partial) => {
                    return Err(malformed("a part's headers do not end with an empty line"));
                }
                Err(e) => return Err(malformed(&format!("a part's headers are invalid ({e})"))),
            };
            let content_at = headers_at + header_len;
            let content_end = finder
                .find(&raw[content_at..])
                .map(|i| content_at + i)
                .ok_or_else(|| malformed("the form does not end with its closing boundary"))?;
            parts.push(Part::read(&headers, content_at..content_end)?);
            at = content_end + 2;
        }
    }

    /// The client's Content-Type, boundary included: the upstream gets it as it was.
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// The whole body's size in bytes.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the body is empty (never, once parsed; for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The first text (non-file) field called `name`, when it is UTF-8.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.filename.is_none() && p.name == name)
            .and_then(|p| std::str::from_utf8(&self.raw[p.content.clone()]).ok())
    }

    /// The text fields as a JSON object of strings (a name sent more than once: an array),
    /// for routing conditions, policies and the request log. Files are left out.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let mut map = serde_json::Map::new();
        for part in self.parts.iter().filter(|p| p.filename.is_none()) {
            let text = String::from_utf8_lossy(&self.raw[part.content.clone()]).into_owned();
            match map.get_mut(&part.name) {
                None => {
                    map.insert(part.name.clone(), Value::String(text));
                }
                Some(Value::Array(items)) => items.push(Value::String(text)),
                Some(first) => {
                    let first = first.take();
                    map.insert(
                        part.name.clone(),
                        Value::Array(vec![first, Value::String(text)]),
                    );
                }
            }
        }
        map
    }

    /// The uploaded files (parts with a file name).
    pub fn files(&self) -> Vec<FileInfo> {
        self.parts
            .iter()
            .filter(|p| p.filename.is_some())
            .map(|p| FileInfo {
                field: p.name.clone(),
                filename: p.filename.clone(),
                content_type: p.content_type.clone(),
                bytes: p.content.len(),
            })
            .collect()
    }

    /// The body to send upstream with `model` as the model: the client's bytes as shared
    /// slices around the new value (the client's own body when it already says `model`).
    ///
    /// # Errors
    ///
    /// [`ProviderError::Rejected`] for a model name with a line break, which could frame
    /// parts of its own.
    pub fn with_model(&self, model: &str) -> Result<Vec<Bytes>, ProviderError> {
        if model.contains(['\r', '\n']) {
            return Err(ProviderError::Rejected {
                message: "`model` must not contain a line break".to_owned(),
                param: Some("model".to_owned()),
            });
        }
        let model_part = self
            .parts
            .iter()
            .find(|p| p.filename.is_none() && p.name == "model");
        Ok(match model_part {
            Some(part) if self.raw[part.content.clone()] == *model.as_bytes() => {
                vec![self.raw.clone()]
            }
            Some(part) => vec![
                self.raw.slice(..part.content.start),
                Bytes::from(model.to_owned()),
                self.raw.slice(part.content.end..),
            ],
            None => vec![
                self.raw.slice(..self.close_at),
                Bytes::from(format!(
                    "--{}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n",
                    self.boundary
                )),
                self.raw.slice(self.close_at..),
            ],
        })
    }

    /// What the request log keeps of the upload when payloads are logged: the text fields,
    /// and each file's name, type and size (never its bytes).
    pub fn log_summary(&self) -> Bytes {
        let files: Vec<serde_json::Value> = self
            .files()
            .into_iter()
            .map(|f| {
                serde_json::json!({
                    "field": f.field,
                    "filename": f.filename,
                    "content_type": f.content_type,
                    "bytes": f.bytes,
                })
            })
            .collect();
        let mut map = self.fields();
        map.insert("_files".to_owned(), serde_json::Value::Array(files));
        Bytes::from(serde_json::Value::Object(map).to_string())
    }
}

impl Part {
    fn read(headers: &[httparse::Header<'_>], content: Range<usize>) -> Result<Part, ApiError> {
        let header = |name: &str| {
            headers
                .iter()
                .take_while(|h| !h.name.is_empty())
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
        };
        let disposition = header("content-disposition")
            .ok_or_else(|| malformed("a part has no Content-Disposition header"))?;
        let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
        if !kind.trim().eq_ignore_ascii_case("form-data") {
            return Err(malformed("a part's Content-Disposition is not `form-data`"));
        }
        let name = param(params, "name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| malformed("a part's Content-Disposition has no `name`"))?;
        Ok(Part {
            name,
            filename: param(params, "filename"),
            content_type: header("content-type").map(|v| v.trim().to_owned()),
            content,
        })
    }
}

/// The value of parameter `wanted` in a Content-Disposition's parameter list
/// (`; name="file"; filename="a b.mp3"`), quoted or not.
fn param(params: &str, wanted: &str) -> Option<String> {
    let mut rest = params;
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if key.eq_ignore_ascii_case(wanted) {
            return Some(value);
        }
        rest = next;
    }
}

/// The boundary of a `multipart/form-data` Content-Type.
fn boundary_of(content_type: &HeaderValue) -> Result<String, ApiError> {
    let text = content_type.to_str().unwrap_or_default();
    let mime: mime::Mime = text.parse().map_err(|_| {
        not_a_form(&format!(
            "the Content-Type `{text}` cannot be read; send the upload as multipart/form-data"
        ))
    })?;
    if mime.type_() != mime::MULTIPART || mime.subtype() != mime::FORM_DATA {
        return Err(not_a_form(&format!(
            "this endpoint takes a multipart/form-data upload (fields `file`, `model`, ...), not `{}`",
            mime.essence_str()
        )));
    }
    let boundary = mime
        .get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_owned())
        .filter(|b| (1..=70).contains(&b.len()))
        .ok_or_else(|| {
            not_a_form(
                "the multipart/form-data Content-Type has no boundary (of 1 to 70 characters)",
            )
        })?;
    Ok(boundary)
}

fn not_a_form(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message.to_owned()).with_param("Content-Type")
}

fn malformed(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameter,
        format!("the multipart/form-data body is malformed: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "multipart/form-data; boundary=XyZ";

    fn form(body: &str) -> Result<FormUpload, ApiError> {
        FormUpload::parse(
            Some(&HeaderValue::from_static(TYPE)),
            Bytes::from(body.to_owned()),
        )
    }

    const BODY: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n@oa/whisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--XY\x00\u{ff}\r\n--XyZ\r\ncontent-disposition: form-data; name=language\r\n\r\nen\r\n--XyZ--\r\n";

    #[test]
    fn finds_fields_and_files_in_place() {
        let f = form(BODY).unwrap();
        assert_eq!(f.text("model"), Some("@oa/whisper-1"));
        assert_eq!(f.text("language"), Some("en"));
        assert_eq!(f.text("file"), None, "a file is not a text field");
        let files = f.files();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].filename.as_deref(), Some("a \"b\".wav"));
        assert_eq!(files[0].content_type.as_deref(), Some("audio/wav"));
        assert_eq!(files[0].bytes, "RIFF\r\n--XY\x00\u{ff}".len());
        assert_eq!(f.fields()["language"], "en");
        assert!(!f.fields().contains_key("file"));
    }

    #[test]
    fn the_model_is_replaced_and_everything_else_kept() {
        let f = form(BODY).unwrap();
        let joined: Vec<u8> = f.with_model("whisper-1").unwrap().concat();
        assert_eq!(
            joined,
            BODY.replace("@oa/whisper-1", "whisper-1").as_bytes()
        );
        let same = f.with_model("@oa/whisper-1").unwrap();
        assert_eq!(same.len(), 1, "the client's own bytes");
        assert!(f.with_model("a\r\n--XyZ").is_err());
    }

    #[test]
    fn a_missing_model_is_added_as_a_part() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--XyZ--";
        let f = form(body).unwrap();
        let joined = String::from_utf8(f.with_model("m").unwrap().concat()).unwrap();
        let again =
            FormUpload::parse(Some(&HeaderValue::from_static(TYPE)), Bytes::from(joined)).unwrap();
        assert_eq!(again.text("model"), Some("m"));
        assert_eq!(again.files()[0].bytes, 3);
    }

    #[test]
    fn repeated_names_become_arrays() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"g[]\"\r\n\r\nword\r\n--XyZ\r\nContent-Disposition: form-data; name=\"g[]\"\r\n\r\nsegment\r\n--XyZ--\r\n";
        assert_eq!(
            form(body).unwrap().fields()["g[]"],
            serde_json::json!(["word", "segment"])
        );
    }

    #[test]
    fn bad_forms_are_400s_that_say_why() {
        let json = FormUpload::parse(
            Some(&HeaderValue::from_static("application/json")),
            Bytes::from_static(b"{}"),
        )
        .unwrap_err();
        assert!(
            json.message.contains("multipart/form-data"),
            "{}",
            json.message
        );
        let no_boundary = FormUpload::parse(
            Some(&HeaderValue::from_static("multipart/form-data")),
            Bytes::from_static(b""),
        )
        .unwrap_err();
        assert!(
            no_boundary.message.contains("boundary"),
            "{}",
            no_boundary.message
        );
        assert!(FormUpload::parse(None, Bytes::new()).is_err());
        for bad in [
            "",
            "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
            "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--",
            "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--",
            "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n",
            "--XyZjunk\r\n\r\n--XyZ--",
        ] {
            let err = form(bad).unwrap_err();
            assert_eq!(err.status, 400, "{bad:?}");
        }
    }
}
