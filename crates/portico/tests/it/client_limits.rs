//! What a client's request may cost (spec section 13): the key is checked on the headers
//! before any of the body is read, an announced body over the limit is refused at once, a
//! body that stalls gets a 408, and a request head that trickles in (or never comes) loses
//! its connection. Driven over raw TCP, since an HTTP client library would not send half a
//! request.

use std::time::{Duration, Instant};

use portico_testkit::MockUpstream;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{Gateway, SERVICE_KEY, standard_catalog, wait_for_logs};

/// The gateway with small client limits: 1 s for a request head, 1 s of body stall, 4 KiB
/// bodies.
async fn strict_gateway() -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = standard_catalog(&upstream);
    Gateway::start_with_env(
        upstream,
        &catalog,
        &[
            ("PORTICO_HEADER_TIMEOUT_SECS", "1"),
            ("PORTICO_BODY_TIMEOUT_SECS", "1"),
            ("PORTICO_MAX_BODY_BYTES", "4096"),
        ],
    )
    .await
}

/// Sends a request head announcing `length` body bytes, and `body` (possibly less).
async fn send_head(gw: &Gateway, key: Option<&str>, length: usize, body: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(gw.portico.addr()).await.unwrap();
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: portico\r\nContent-Type: application/json\r\n{auth}x-portkey-trace-id: {trace}\r\nContent-Length: {length}\r\n\r\n",
        trace = trace_of(key, length),
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    tcp
}

fn trace_of(key: Option<&str>, length: usize) -> String {
    format!(
        "limits-{}-{length}",
        if key.is_some() { "key" } else { "nokey" }
    )
}

/// Reads an HTTP answer's status line and body (the gateway closes or ends the answer).
pub(crate) async fn read_answer(tcp: &mut TcpStream, within: Duration) -> (u16, String) {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            // The answers here are small JSON errors: stop once the body is complete.
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n")
                && let Some(len) = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                && body.len() >= len
            {
                break;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer within {within:?}: {:?}",
        String::from_utf8_lossy(&got)
    );
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn a_wrong_or_missing_key_is_refused_before_the_body_is_read() {
    let gw = strict_gateway().await;
    // 60 MB announced, none of it sent: the 401 can only come from the headers.
    for key in [None, Some("prt-not-a-key-0000000000000")] {
        let mut tcp = send_head(&gw, key, 60_000_000, b"").await;
        let (status, body) = read_answer(&mut tcp, Duration::from_secs(5)).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("authentication_error"), "{body}");
    }
    assert_eq!(gw.upstream.hits(), 0);
}

#[tokio::test]
async fn an_announced_body_over_the_limit_is_refused_at_once_and_logged() {
    let gw = strict_gateway().await;
    let mut tcp = send_head(&gw, Some(SERVICE_KEY), 4097, b"{").await;
    let (status, body) = read_answer(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("is 4097 bytes"), "{body}");
    assert!(body.contains("PORTICO_MAX_BODY_BYTES"), "{body}");
    let logged = wait_for_logs(
        &gw.portico,
        &format!("trace_id={}", trace_of(Some(SERVICE_KEY), 4097)),
        1,
    )
    .await;
    assert_eq!(logged[0]["status"], 413);
    assert_eq!(gw.upstream.hits(), 0);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused() {
    let gw = strict_gateway().await;
    let mut tcp = TcpStream::connect(gw.portico.addr()).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: portico\r\nAuthorization: Bearer {SERVICE_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("800\r\n{}\r\n", "x".repeat(0x800));
    for _ in 0..3 {
        // The gateway may answer and close before the last chunk: a failed write is fine.
        let _ = tcp.write_all(chunk.as_bytes()).await;
    }
    let (status, body) = read_answer(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(gw.upstream.hits(), 0);
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_logged() {
    let gw = strict_gateway().await;
    let started = Instant::now();
    let mut tcp = send_head(&gw, Some(SERVICE_KEY), 100, b"{\"model\":").await;
    let (status, body) = read_answer(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("client_timeout"), "{body}");
    assert!(body.contains("after 9 bytes"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered before the stall timeout"
    );
    let logged = wait_for_logs(
        &gw.portico,
        &format!("trace_id={}", trace_of(Some(SERVICE_KEY), 100)),
        1,
    )
    .await;
    assert_eq!(logged[0]["status"], 408);
    assert_eq!(gw.upstream.hits(), 0);
}

/// Whether the gateway closes `tcp` within `within` (reads end with 0 bytes or an error).
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn request_heads_that_trickle_or_never_come_lose_their_connections() {
    let gw = strict_gateway().await;
    let mut silent = Vec::new();
    let mut trickling = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(gw.portico.addr()).await.unwrap());
        let mut tcp = TcpStream::connect(gw.portico.addr()).await.unwrap();
        tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: p")
            .await
            .unwrap();
        trickling.push(tcp);
    }
    // Keep the trickle going past the deadline: a byte every 300 ms.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for tcp in &mut trickling {
            let _ = tcp.write_all(b"x").await;
        }
    }
    for tcp in silent.iter_mut().chain(trickling.iter_mut()) {
        assert!(
            closed_within(tcp, Duration::from_secs(5)).await,
            "a connection without a complete request head is still open"
        );
    }
    // The gateway still serves.
    let resp = gw
        .post(
            "/v1/chat/completions",
            crate::support::chat("@openai-mock/m", "still here"),
        )
        .await;
    assert_eq!(resp.status(), 200);
}
