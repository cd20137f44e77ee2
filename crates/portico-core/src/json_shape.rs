//! The shape of a JSON text measured without parsing it: how deep its arrays and objects
//! nest, and how many items an array holds.
//!
//! Both walk the bytes once, jumping over string contents with `memchr` (a request's bytes are
//! mostly message text, so most of a walk is a vectorised search for the next quote or
//! backslash), and allocate nothing. They assume nothing of validity: on broken JSON they
//! return a number that means nothing, and the parser that runs next reports the syntax error.
//! They exist so that the gateway can refuse a body nested thousands of levels deep, or a
//! conversation of a million messages, with a clear error before anything builds a tree of it
//! (`serde_json` refuses past 128 levels with a message that names neither the field nor the
//! limit, and only in the adapters that parse the whole body).

/// The deepest nesting of arrays and objects in `json`: `0` for a scalar, `1` for `{}` or
/// `[1]`, `2` for `{"a":[1]}`.
pub fn nesting_depth(json: &[u8]) -> usize {
    let mut deepest = 0;
    walk(json, |depth| {
        deepest = deepest.max(depth);
        true
    });
    deepest
}

/// Whether `json` nests arrays and objects deeper than `max` levels. Stops at the first
/// level past `max`, so an accepted body costs one walk and a refused one less.
pub fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let mut deeper = false;
    walk(json, |depth| {
        deeper = depth > max;
        !deeper
    });
    deeper
}

/// The number of items of the JSON array `json` (surrounding whitespace allowed), without
/// parsing them; `None` when `json` is not an array.
pub fn array_len(json: &[u8]) -> Option<usize> {
    let start = json.iter().position(|b| !b.is_ascii_whitespace())?;
    if json[start] != b'[' {
        return None;
    }
    let mut items = 0;
    // Whether an item of the outer array has started since the last comma.
    let mut in_item = false;
    let mut depth = 0usize;
    let mut i = start;
    while let Some(&byte) = json.get(i) {
        match byte {
            b'"' => {
                if depth == 1 && !in_item {
                    items += 1;
                    in_item = true;
                }
                i = string_end(json, i + 1);
                continue;
            }
            b'[' | b'{' => {
                if depth == 1 && !in_item {
                    items += 1;
                    in_item = true;
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => in_item = false,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                if depth == 1 && !in_item {
                    items += 1;
                    in_item = true;
                }
            }
        }
        i += 1;
    }
    Some(items)
}

/// Calls `opened(depth)` for every `[` and `{` outside strings, with the depth it opens;
/// stops when `opened` returns false.
fn walk(json: &[u8], mut opened: impl FnMut(usize) -> bool) {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&byte) = json.get(i) {
        match byte {
            b'"' => {
                i = string_end(json, i + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if !opened(depth) {
                    return;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
}

/// The index just past the closing quote of the string whose contents start at `from`
/// (`json.len()` for an unterminated one). An escape's backslash skips the byte after it,
/// which is how `\"` and `\\` are passed over.
///
/// Code in a prompt puts an escape every few bytes, where a `memchr` call costs more than it
/// saves; prose has long runs without one. So the first bytes are tested eight at a time in
/// a register (the first quote or backslash found by its bit position), and only a run
/// longer than that goes to `memchr`'s vectorised search.
fn string_end(json: &[u8], from: usize) -> usize {
    let mut i = from;
    loop {
        let mut words = 0;
        while let Some(chunk) = json.get(i..i + 8) {
            let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let found = quote_or_backslash(u64::from_le_bytes(bytes));
            if found != 0 {
                // The lowest marked byte is exact: step straight to it.
                i += (found.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
            words += 1;
            if words == 4 {
                // A long run: the vectorised search takes over.
                match json
                    .get(i..)
                    .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                {
                    Some(at) => i += at,
                    None => return json.len(),
                }
                break;
            }
        }
        match json.get(i) {
            None => return json.len(),
            Some(b'"') => return i + 1,
            Some(b'\\') => i += 2,
            Some(_) => i += 1,
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask whose lowest set bit marks the first byte of `word` (little-endian) that is `"`
/// or `\\`, zero when none is: the classic test for a zero byte, on the word XORed with each
/// byte repeated (its lowest mark is exact; marks above it may not be, and are not used).
fn quote_or_backslash(word: u64) -> u64 {
    let zeros = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zeros(word ^ (ONES * u64::from(b'"'))) | zeros(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_nesting_outside_strings_only() {
        assert_eq!(nesting_depth(b"1"), 0);
        assert_eq!(nesting_depth(b"{}"), 1);
        assert_eq!(nesting_depth(br#"{"a":[1,{"b":[]}]}"#), 4);
        // Brackets in strings, escaped quotes and backslashes do not count.
        assert_eq!(nesting_depth(br#"{"a":"[[[{{{","b":"\"[[","c":"\\"}"#), 1);
        assert_eq!(nesting_depth(br#"{"a\"[":"x\\\"[[[["}"#), 1);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(nesting_depth(deep.as_bytes()), 10_000);
        assert!(nests_deeper_than(deep.as_bytes(), 9_999));
        assert!(!nests_deeper_than(deep.as_bytes(), 10_000));
        // Long strings (the vectorised path) and escapes at every offset of a word.
        let long = format!("{{\"a\":\"{}\\\"[{}\"}}", "x".repeat(100), "y".repeat(37));
        assert_eq!(nesting_depth(long.as_bytes()), 1, "{long}");
        for pad in 0..20 {
            let text = format!(
                "[\"{}\\\\\",[\"{}\\\"]\"]]",
                "p".repeat(pad),
                "q".repeat(pad)
            );
            assert_eq!(nesting_depth(text.as_bytes()), 2, "{text}");
            assert_eq!(array_len(text.as_bytes()), Some(2), "{text}");
        }
        // Broken input never panics.
        for broken in [&b"\"abc\\"[..], b"]]]]", b"{\"a", b"\\", b"[\"\\"] {
            let _ = nesting_depth(broken);
            let _ = array_len(broken);
        }
    }

    #[test]
    fn counts_the_items_of_an_array() {
        assert_eq!(array_len(b"[]"), Some(0));
        assert_eq!(array_len(b" [ ] "), Some(0));
        assert_eq!(array_len(b"[1]"), Some(1));
        assert_eq!(array_len(b"[1, -2.5e3 ,true,null]"), Some(4));
        assert_eq!(
            array_len(br#"[{"role":"user","content":"a, b, [c]"},{"x":[1,2,3]},"s,\"]",[]]"#),
            Some(4)
        );
        assert_eq!(array_len(b"{\"a\":1}"), None);
        assert_eq!(array_len(b"\"[1,2]\""), None);
        assert_eq!(array_len(b""), None);
        let many = format!("[{}{{}}]", "{},".repeat(9_999));
        assert_eq!(array_len(many.as_bytes()), Some(10_000));
    }
}
