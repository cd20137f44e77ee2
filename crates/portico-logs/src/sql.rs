//! What both stores' SQL shares: integer conversions, the `q` pattern, stored payloads.

use crate::Payload;

/// Database integers are signed; counts and milliseconds beyond i64 do not occur.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored count or duration; negative only if the row was written by something else.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `q` as a `LIKE` pattern that matches it anywhere: its `%`, `_` and `\` match themselves
/// (with `ESCAPE '\'`).
pub(crate) fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A payload as read back: the kept bytes and the size before truncation (the kept length
/// when the size was not recorded).
pub(crate) fn payload_from(bytes: Option<Vec<u8>>, size: Option<i64>) -> Option<Payload> {
    let bytes = bytes?;
    let size = size.map_or(bytes.len() as u64, to_u64);
    Some(Payload {
        bytes: bytes.into(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_match_themselves() {
        assert_eq!(like_pattern(r"100%_\x"), r"%100\%\_\\x%");
    }
}
