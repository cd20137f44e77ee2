//! The content parts of a user message: text, images, audio and files, as Gemini parts.
//!
//! A `data:` URL travels inline (`inlineData`); an `https://`, `http://` or `gs://` URL as
//! `fileData`, which Gemini fetches itself. OpenAI `file_id`s and unknown part types are
//! refused with a 400 naming the part.

use portico_providers::ProviderError;
use portico_providers::chat::{Content as ChatContent, ContentPart, ImageUrl, Message};
use serde_json::Value;

use crate::error::invalid_request;
use crate::wire::{Blob, FileData, Part};

/// A user message's parts: text, images, audio and files.
pub(crate) fn user_parts(message: &Message, index: usize) -> Result<Vec<Part>, ProviderError> {
    let parts = match &message.content {
        None => return Ok(Vec::new()),
        Some(ChatContent::Text(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(ChatContent::Text(text)) => return Ok(vec![Part::text(text.clone())]),
        Some(ChatContent::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("messages[{index}].content[{j}]");
        match part {
            ContentPart::Text { text, .. } if text.is_empty() => {}
            ContentPart::Text { text, .. } => out.push(Part::text(text.clone())),
            ContentPart::ImageUrl { image_url } => out.push(image_part(image_url, &param)?),
            ContentPart::InputAudio { input_audio } => out.push(audio_part(input_audio, &param)?),
            ContentPart::File { file } => out.push(file_part(file, &param)?),
            ContentPart::Other(other) => {
                let kind = other.get("type").and_then(Value::as_str).unwrap_or("?");
                return Err(invalid_request(
                    format!(
                        "{param} has type \"{kind}\", which Portico cannot send to Gemini; use text, image_url, input_audio or file parts"
                    ),
                    &param,
                ));
            }
        }
    }
    Ok(out)
}

fn inline(mime_type: &str, data: &str) -> Part {
    Part {
        inline_data: Some(Blob {
            mime_type: mime_type.to_owned(),
            data: data.to_owned(),
        }),
        ..Part::default()
    }
}

/// A `data:` URL inline; an `https://`, `http://` or `gs://` URL as `fileData`, which Gemini
/// fetches, with the media type guessed from the extension.
fn image_part(image: &ImageUrl, param: &str) -> Result<Part, ProviderError> {
    if let Some((mime_type, data)) = image.as_data() {
        return Ok(inline(mime_type, data));
    }
    let url = image.url.as_str();
    if ["https://", "http://", "gs://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        return Ok(Part {
            file_data: Some(FileData {
                mime_type: Some(guess_mime_type(url).to_owned()),
                file_uri: url.to_owned(),
            }),
            ..Part::default()
        });
    }
    Err(invalid_request(
        format!(
            "{param}.image_url.url must be an https://, http:// or gs:// URL or a base64 data: URL"
        ),
        param,
    ))
}

/// The media type of a file URL from its extension; `image/jpeg` when it has none Portico
/// knows.
pub(crate) fn guess_mime_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or(path);
    let extension = last
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

/// `input_audio: {data, format}` inline as `audio/<format>`.
fn audio_part(audio: &Value, param: &str) -> Result<Part, ProviderError> {
    let data = audio.get("data").and_then(Value::as_str);
    let format = audio.get("format").and_then(Value::as_str);
    match (data, format) {
        (Some(data), Some(format)) => Ok(inline(&format!("audio/{format}"), data)),
        _ => Err(invalid_request(
            format!("{param}.input_audio needs base64 `data` and a `format` such as \"wav\""),
            param,
        )),
    }
}

/// `file: {file_data}` (a `data:` URL) inline. OpenAI `file_id`s mean nothing to Gemini.
fn file_part(file: &Value, param: &str) -> Result<Part, ProviderError> {
    let data_url = file
        .get("file_data")
        .and_then(Value::as_str)
        .map(|url| ImageUrl {
            url: url.to_owned(),
            detail: None,
        });
    match data_url.as_ref().and_then(ImageUrl::as_data) {
        Some((mime_type, data)) => Ok(inline(mime_type, data)),
        None => Err(invalid_request(
            format!(
                "{param}.file must carry file_data as a base64 data: URL; an OpenAI file_id cannot be read by Gemini"
            ),
            param,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_from_extensions() {
        assert_eq!(guess_mime_type("https://x/a.PNG?sig=1"), "image/png");
        assert_eq!(guess_mime_type("gs://b/doc.pdf"), "application/pdf");
        assert_eq!(guess_mime_type("https://x/photo"), "image/jpeg");
        assert_eq!(
            guess_mime_type("https://x.example/dir.v2/img"),
            "image/jpeg"
        );
    }
}
