//! The header limits' cost per request: [`HeadLimits::check`] (a count and a sum over the
//! headers) on the head an OpenAI SDK sends through Portkey's headers (16 headers).

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use criterion::{Criterion, criterion_group, criterion_main};
use portico_server::HeadLimits;

fn sdk_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "127.0.0.1:8787"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
        ("content-length", "36512"),
        ("user-agent", "OpenAI/Python 1.99.1"),
        (
            "authorization",
            "Bearer prt-0123456789abcdef0123456789abcdef",
        ),
        ("x-stainless-lang", "python"),
        ("x-stainless-package-version", "1.99.1"),
        ("x-stainless-os", "Linux"),
        ("x-stainless-arch", "x64"),
        ("x-stainless-runtime", "CPython"),
        ("x-stainless-retry-count", "0"),
        ("x-portkey-trace-id", "session-auth-refactor"),
        (
            "x-portkey-metadata",
            "{\"team\":\"backend\",\"project\":\"api-v2\"}",
        ),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn bench_head(c: &mut Criterion) {
    let headers = sdk_headers();
    let limits = HeadLimits::default();
    c.bench_function("head_limits/check_16_headers", |b| {
        b.iter(|| black_box(limits.check(black_box(&headers)).is_none()));
    });
}

criterion_group!(benches, bench_head);
criterion_main!(benches);
