//! Inline media of a request: images and documents, which Bedrock takes only as bytes in the
//! request (it cannot fetch a URL), in the formats it names.

use portico_providers::ProviderError;
use portico_providers::chat::ImageUrl;
use serde_json::Value;

use crate::error::invalid_request;
use crate::wire::{Document, Image, Source};

/// An inline image; Bedrock cannot fetch a URL.
pub(crate) fn image(url: &ImageUrl, param: &str) -> Result<Image, ProviderError> {
    let Some((media, data)) = url.as_data() else {
        return Err(invalid_request(
            "Bedrock cannot fetch images by URL; send the image inline as a base64 data URL (data:image/png;base64,...)",
            Some(param),
        ));
    };
    let format = match media.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(invalid_request(
                format!("Bedrock takes PNG, JPEG, GIF and WebP images, not `{other}`"),
                Some(param),
            ));
        }
    };
    Ok(Image {
        format: format.to_owned(),
        source: Source {
            bytes: data.to_owned(),
        },
    })
}

/// An inline document from a `file` part's `file_data` data URL.
pub(crate) fn document(file: &Value, param: &str, index: usize) -> Result<Document, ProviderError> {
    let data = file.get("file_data").and_then(Value::as_str);
    let Some((media, bytes)) = data.and_then(|d| {
        ImageUrl {
            url: d.to_owned(),
            detail: None,
        }
        .as_data()
        .map(|(m, b)| (m.to_ascii_lowercase(), b.to_owned()))
    }) else {
        return Err(invalid_request(
            "Bedrock needs files inline: send `file.file_data` as a base64 data URL (file ids refer to OpenAI's file store)",
            Some(param),
        ));
    };
    let format = match media.as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        other => {
            return Err(invalid_request(
                format!(
                    "Bedrock takes PDF, CSV, DOC(X), XLS(X), HTML, TXT and MD documents, not `{other}`"
                ),
                Some(param),
            ));
        }
    };
    let stem = file
        .get("filename")
        .and_then(Value::as_str)
        .map(|f| f.rsplit_once('.').map_or(f, |(stem, _)| stem))
        .unwrap_or_default();
    Ok(Document {
        format: format.to_owned(),
        name: document_name(stem, index),
        source: Source { bytes },
    })
}

/// A document name of the characters Bedrock allows (letters, digits, single spaces,
/// hyphens, parentheses, square brackets).
pub(crate) fn document_name(stem: &str, index: usize) -> String {
    let mut name = String::new();
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || "-()[]".contains(c) {
            c
        } else if c.is_whitespace() {
            ' '
        } else {
            '-'
        };
        if !(c == ' ' && name.ends_with(' ')) {
            name.push(c);
        }
    }
    let name = name.trim().to_owned();
    if name.is_empty() {
        format!("document-{}", index + 1)
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_use_allowed_characters() {
        assert_eq!(document_name("Q3 report_final", 0), "Q3 report-final");
        assert_eq!(document_name("  ", 2), "document-3");
    }

    #[test]
    fn image_formats() {
        let img = |url: &str| {
            image(
                &ImageUrl {
                    url: url.to_owned(),
                    detail: None,
                },
                "p",
            )
        };
        assert_eq!(img("data:image/jpg;base64,AAAA").unwrap().format, "jpeg");
        assert_eq!(img("data:image/WEBP;base64,AAAA").unwrap().format, "webp");
        assert_eq!(
            img("data:image/tiff;base64,AAAA").unwrap_err().status(),
            Some(400)
        );
        assert_eq!(img("https://x/y.png").unwrap_err().status(), Some(400));
    }
}
