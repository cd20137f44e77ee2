//! `portico-bench ttfb`: time to first body byte and total time of streamed answers.
//!
//! Sends exactly `--requests` POSTs (after `--warmup` uncounted ones) over a pooled keep-alive
//! hyper client with `--concurrency` requests in flight, and prints percentiles as JSON. The
//! clock starts before the request is written and stops at the first non-empty body frame
//! (TTFB) and at the end of the body (total). Bounded: every request has a timeout and the
//! count is fixed, so the run always ends.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::stats::Percentiles;

/// Options of `portico-bench ttfb`.
#[derive(clap::Args, Debug)]
pub(crate) struct TtfbArgs {
    /// Target URL (http only), e.g. http://127.0.0.1:8787/v1/chat/completions.
    #[arg(long)]
    url: Uri,
    /// A request header, `'Name: value'`; repeat for more.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// The JSON body, inline (starting with `{`) or a file path.
    #[arg(long)]
    body: String,
    /// Requests to measure.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Uncounted requests sent first (open connections, warm caches).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Give up on one request after this long.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

/// What one request took.
struct Sample {
    ttfb_ms: f64,
    total_ms: f64,
    bytes: usize,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Everything a worker needs to build and send one request.
struct Plan {
    client: HttpClient,
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    timeout: Duration,
}

/// Runs the measurement and prints the JSON report.
pub(crate) fn run(args: TtfbArgs) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let headers = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = if args.body.trim_start().starts_with('{') {
        Bytes::from(args.body.clone())
    } else {
        Bytes::from(std::fs::read(&args.body).with_context(|| format!("reading {}", args.body))?)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(args.concurrency)
            .build(connector);
        let plan = Arc::new(Plan {
            client,
            url: args.url.clone(),
            headers,
            body,
            timeout: Duration::from_secs(args.timeout_s),
        });
        if args.warmup > 0 {
            let _ = measure(&plan, args.warmup, args.concurrency).await;
        }
        let started = Instant::now();
        let (samples, errors) = measure(&plan, args.requests, args.concurrency).await;
        (samples, errors, started.elapsed())
    });
    let (samples, errors, wall) = report;
    let ok = samples.len();
    let mut ttfb: Vec<f64> = samples.iter().map(|s| s.ttfb_ms).collect();
    let mut total: Vec<f64> = samples.iter().map(|s| s.total_ms).collect();
    let bytes = samples.first().map_or(0, |s| s.bytes);
    crate::print_json(&json!({
        "url": args.url.to_string(),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "ok": ok,
        "errors": errors.len(),
        "first_error": errors.first(),
        "wall_s": wall.as_secs_f64(),
        "bytes_per_response": bytes,
        "ttfb_ms": Percentiles::of(&mut ttfb),
        "total_ms": Percentiles::of(&mut total),
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// Sends `count` requests with `concurrency` in flight; returns the samples and error texts.
async fn measure(plan: &Arc<Plan>, count: usize, concurrency: usize) -> (Vec<Sample>, Vec<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(count.max(1)) {
        let plan = Arc::clone(plan);
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let mut samples = Vec::new();
            let mut errors = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                match tokio::time::timeout(plan.timeout, one(&plan)).await {
                    Ok(Ok(sample)) => samples.push(sample),
                    Ok(Err(err)) => errors.push(format!("{err:#}")),
                    Err(_) => errors.push(format!("timed out after {:?}", plan.timeout)),
                }
            }
            (samples, errors)
        });
    }
    let mut samples = Vec::with_capacity(count);
    let mut errors = Vec::new();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok((s, e)) => {
                samples.extend(s);
                errors.extend(e);
            }
            Err(err) => errors.push(format!("worker failed: {err}")),
        }
    }
    (samples, errors)
}

async fn one(plan: &Plan) -> anyhow::Result<Sample> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(plan.url.clone());
    for (name, value) in &plan.headers {
        request = request.header(name, value);
    }
    let request = request.body(Full::new(plan.body.clone()))?;
    let started = Instant::now();
    let response = plan.client.request(request).await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut first = None;
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref()
            && !data.is_empty()
        {
            first.get_or_insert_with(|| started.elapsed());
            bytes += data.len();
        }
    }
    let total = started.elapsed();
    if !status.is_success() {
        bail!("status {status}");
    }
    let Some(first) = first else {
        bail!("empty body");
    };
    Ok(Sample {
        ttfb_ms: first.as_secs_f64() * 1e3,
        total_ms: total.as_secs_f64() * 1e3,
        bytes,
    })
}

/// Parses `Name: value`.
fn parse_header(text: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let Some((name, value)) = text.split_once(':') else {
        bail!("header {text:?} is not 'Name: value'");
    };
    Ok((
        HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("header name in {text:?}"))?,
        HeaderValue::from_str(value.trim()).with_context(|| format!("header value in {text:?}"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        let (name, value) = parse_header("Authorization: Bearer abc:def").unwrap();
        assert_eq!(name, "authorization");
        assert_eq!(value, "Bearer abc:def");
        assert!(parse_header("no colon").is_err());
    }
}
