//! The forms a secret can take in an upstream's answer: as it is, JSON-escaped,
//! percent-encoded, and base64-encoded inside a longer encoded string.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Every encoding of `secret` to look for, each once.
pub(super) fn encodings(secret: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![secret.as_bytes().to_vec()];
    let mut add = |pattern: Vec<u8>| {
        if !pattern.is_empty() && !out.contains(&pattern) {
            out.push(pattern);
        }
    };
    let json = json_escaped(secret);
    // Some encoders (PHP's, Java's) also escape `/`, which AWS secret keys contain.
    add(json.replace('/', "\\/").into_bytes());
    add(json.into_bytes());
    add(percent_encoded(secret, b"0123456789ABCDEF").into_bytes());
    add(percent_encoded(secret, b"0123456789abcdef").into_bytes());
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            add(base64_fragment(engine, secret.as_bytes(), offset).into_bytes());
        }
    }
    out
}

/// The secret as it appears inside a JSON string.
fn json_escaped(secret: &str) -> String {
    let quoted = serde_json::Value::from(secret).to_string();
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_owned()
}

/// The secret with every byte outside RFC 3986's unreserved set as `%XX`.
fn percent_encoded(secret: &str, digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(secret.len() * 3);
    for byte in secret.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(digits[usize::from(byte >> 4)]));
            out.push(char::from(digits[usize::from(byte & 0xf)]));
        }
    }
    out
}

/// The base64 characters that depend on `secret` alone when it starts `offset` bytes (0, 1
/// or 2) into a 3-byte group of a longer encoded string.
///
/// base64 turns each 3 bytes into 4 characters, so what the secret's bytes become depends on
/// where they fall in those groups; the characters shared with the bytes before or after it
/// differ from string to string and are left out. The fragment for each alignment is still
/// 4/3 as long as the secret, too long to match anything by chance.
fn base64_fragment(
    engine: &base64::engine::GeneralPurpose,
    secret: &[u8],
    offset: usize,
) -> String {
    let mut bytes = vec![0u8; offset];
    bytes.extend_from_slice(secret);
    let encoded = engine.encode(&bytes);
    // The characters covering the filler bytes (and the first one they share with the
    // secret) come first: 0, 2 or 3 of them.
    let skip = [0, 2, 3][offset % 3];
    // Without padding, a last partial group ends in a character half made of zero fill,
    // which in a longer string would hold the next byte's bits instead.
    let keep = if bytes.len().is_multiple_of(3) {
        encoded.len()
    } else {
        encoded.len().saturating_sub(1)
    };
    encoded.get(skip..keep).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_percent_forms_escape_what_they_must() {
        let secret = "ab/c+d\"e\\f";
        let forms: Vec<String> = encodings(secret)
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert!(forms.contains(&secret.to_owned()));
        assert!(forms.contains(&r#"ab/c+d\"e\\f"#.to_owned()), "{forms:?}");
        assert!(forms.contains(&r#"ab\/c+d\"e\\f"#.to_owned()), "{forms:?}");
        assert!(
            forms.contains(&"ab%2Fc%2Bd%22e%5Cf".to_owned()),
            "{forms:?}"
        );
        assert!(
            forms.contains(&"ab%2fc%2bd%22e%5cf".to_owned()),
            "{forms:?}"
        );
    }

    #[test]
    fn each_form_is_listed_once() {
        let forms = encodings("sk-plain-secret-123");
        let mut unique = forms.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(forms.len(), unique.len(), "{forms:?}");
        assert_eq!(forms[0], b"sk-plain-secret-123");
        // Its JSON and percent forms are the secret itself; three alignments of base64 (the
        // URL-safe alphabet differs only where `+` or `/` appear).
        assert!(forms.len() >= 4, "{forms:?}");
    }

    #[test]
    fn base64_fragments_are_found_at_every_alignment_and_in_both_alphabets() {
        let secret = b"s3cr3t/key+with?odd>bytes";
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            for prefix_len in 0..7 {
                for suffix_len in 0..4 {
                    let mut whole = b"user:".repeat(3)[..prefix_len].to_vec();
                    whole.extend_from_slice(secret);
                    whole.extend(std::iter::repeat_n(b'!', suffix_len));
                    let encoded = engine.encode(&whole);
                    let fragment = base64_fragment(engine, secret, prefix_len % 3);
                    assert!(
                        encoded.contains(&fragment),
                        "prefix {prefix_len}, suffix {suffix_len}: {fragment} not in {encoded}"
                    );
                    assert!(fragment.len() >= secret.len(), "{fragment}");
                }
            }
        }
    }
}
