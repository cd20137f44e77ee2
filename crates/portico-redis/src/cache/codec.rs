//! A cached answer as the bytes stored in Redis: a version byte, then the fields in a fixed
//! order, each length-prefixed where it has a length. Our own small format rather than JSON:
//! the payload is bytes (JSON would need base64, a third larger), and nothing but Portico
//! reads it. An entry this version cannot read (written by another version, or damaged) is
//! a miss.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use portico_cache::{CachedAnswer, CachedEvent, Payload};

/// The format's version; a reader skips entries of any other.
const VERSION: u8 = 1;

/// The bytes of `answer`, stored until `expires_at_ms`.
pub(crate) fn encode(answer: &CachedAnswer, expires_at_ms: i64) -> Bytes {
    let mut out = BytesMut::with_capacity(answer.size() + 64);
    out.put_u8(VERSION);
    out.put_u16(answer.status);
    out.put_i64(answer.stored_at_ms);
    out.put_i64(expires_at_ms);
    put_text(&mut out, answer.provider.as_deref());
    put_text(&mut out, answer.model.as_deref());
    put_count(&mut out, answer.prompt_tokens);
    put_count(&mut out, answer.completion_tokens);
    match answer.cost_usd {
        Some(cost) => {
            out.put_u8(1);
            out.put_f64(cost);
        }
        None => out.put_u8(0),
    }
    match &answer.payload {
        Payload::Whole(body) => {
            out.put_u8(0);
            put_bytes(&mut out, body);
        }
        Payload::Stream(events) => {
            out.put_u8(1);
            out.put_u32(u32::try_from(events.len()).unwrap_or(u32::MAX));
            for event in events {
                put_text(&mut out, event.name.as_deref());
                put_bytes(&mut out, &event.data);
            }
        }
    }
    out.freeze()
}

/// The answer in `bytes` and when it expires; `None` when they are not an entry of this
/// version.
pub(crate) fn decode(bytes: Bytes) -> Option<(CachedAnswer, i64)> {
    let mut buf = bytes;
    if get_u8(&mut buf)? != VERSION {
        return None;
    }
    if buf.remaining() < 2 + 8 + 8 {
        return None;
    }
    let status = buf.get_u16();
    let stored_at_ms = buf.get_i64();
    let expires_at_ms = buf.get_i64();
    let provider = get_text(&mut buf)?;
    let model = get_text(&mut buf)?;
    let prompt_tokens = get_count(&mut buf)?;
    let completion_tokens = get_count(&mut buf)?;
    let cost_usd = match get_u8(&mut buf)? {
        0 => None,
        _ if buf.remaining() >= 8 => Some(buf.get_f64()),
        _ => return None,
    };
    let payload = match get_u8(&mut buf)? {
        0 => Payload::Whole(get_bytes(&mut buf)?),
        1 => {
            if buf.remaining() < 4 {
                return None;
            }
            let count = usize::try_from(buf.get_u32()).ok()?;
            // Each event takes at least 5 bytes: a bound before allocating.
            if count > buf.remaining() / 5 + 1 {
                return None;
            }
            let mut events = Vec::with_capacity(count);
            for _ in 0..count {
                let name = get_text(&mut buf)?;
                let data = get_bytes(&mut buf)?;
                events.push(CachedEvent { name, data });
            }
            Payload::Stream(events)
        }
        _ => return None,
    };
    if buf.has_remaining() {
        return None;
    }
    let answer = CachedAnswer {
        status,
        payload,
        provider,
        model,
        prompt_tokens,
        completion_tokens,
        cost_usd,
        stored_at_ms,
    };
    Some((answer, expires_at_ms))
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.put_slice(bytes);
}

fn put_text(out: &mut BytesMut, text: Option<&str>) {
    match text {
        Some(text) => {
            out.put_u8(1);
            put_bytes(out, text.as_bytes());
        }
        None => out.put_u8(0),
    }
}

fn put_count(out: &mut BytesMut, count: Option<u64>) {
    match count {
        Some(count) => {
            out.put_u8(1);
            out.put_u64(count);
        }
        None => out.put_u8(0),
    }
}

fn get_u8(buf: &mut Bytes) -> Option<u8> {
    buf.has_remaining().then(|| buf.get_u8())
}

fn get_bytes(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < 4 {
        return None;
    }
    let len = usize::try_from(buf.get_u32()).ok()?;
    (buf.remaining() >= len).then(|| buf.split_to(len))
}

fn get_text(buf: &mut Bytes) -> Option<Option<String>> {
    match get_u8(buf)? {
        0 => Some(None),
        _ => {
            let bytes = get_bytes(buf)?;
            String::from_utf8(bytes.to_vec()).ok().map(Some)
        }
    }
}

fn get_count(buf: &mut Bytes) -> Option<Option<u64>> {
    match get_u8(buf)? {
        0 => Some(None),
        _ if buf.remaining() >= 8 => Some(Some(buf.get_u64())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Vec<CachedAnswer> {
        let whole = CachedAnswer {
            status: 200,
            payload: Payload::Whole(Bytes::from_static(b"{\"id\":\"x\"}")),
            provider: Some("openai".into()),
            model: Some("gpt-4o-mini".into()),
            prompt_tokens: Some(12),
            completion_tokens: None,
            cost_usd: Some(0.000_25),
            stored_at_ms: 1_796_562_000_000,
        };
        let stream = CachedAnswer {
            payload: Payload::Stream(vec![
                CachedEvent {
                    name: Some("message_start".into()),
                    data: Bytes::from_static(b"{}"),
                },
                CachedEvent {
                    name: None,
                    data: Bytes::new(),
                },
            ]),
            provider: None,
            model: None,
            prompt_tokens: None,
            cost_usd: None,
            ..whole.clone()
        };
        vec![whole, stream]
    }

    #[test]
    fn answers_round_trip() {
        for answer in answers() {
            let bytes = encode(&answer, 42);
            assert_eq!(decode(bytes), Some((answer, 42)));
        }
    }

    #[test]
    fn anything_else_is_not_an_entry() {
        let bytes = encode(&answers()[1], 42);
        for cut in 0..bytes.len() {
            assert_eq!(decode(bytes.slice(..cut)), None, "cut at {cut}");
        }
        let mut other = bytes.to_vec();
        other[0] = 9;
        assert_eq!(decode(Bytes::from(other)), None);
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(decode(Bytes::from(longer)), None);
    }
}
