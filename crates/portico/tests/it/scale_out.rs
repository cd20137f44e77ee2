//! Scale-out (spec section 9): several `portico serve` processes on one real PostgreSQL and
//! one real Redis behave as one gateway. A key made through one works on the others, a rate
//! limit and a budget hold across them, a cache hit on one serves another, each lists every
//! process's logs, a changed catalog is in force everywhere within 5 s, and one process
//! killed leaves the others serving. Redis stopped: budgets fail closed and rate limits fail
//! open, each as documented, and both recover when it returns. Without Redis at all, a
//! budget's spend reaches the database from every process, none overwriting another's.

use std::time::{Duration, Instant};

use portico_testkit::{MockUpstream, PorticoProcess, TestPostgres, TestRedis};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, PROVIDER_KEY, SERVICE_KEY, bin};

/// 32 bytes in base64: every process sharing the database needs the same master key.
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const RATE_KEY: &str = "prt-test-rate-key-0123456789";
const BUDGET_KEY: &str = "prt-test-budget-key-0123456789";
/// The bound of spec section 9: a change through one process is in force on all within 5 s.
const PROPAGATION: Duration = Duration::from_secs(5);

fn catalog(upstream: &MockUpstream) -> String {
    let base = upstream.base_url();
    format!(
        r#"
providers:
  - slug: oa
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
configs:
  - id: cached
    config: {{ cache: {{ mode: simple, max_age: 60 }} }}
keys:
  - name: service
    key: {SERVICE_KEY}
  - name: rate
    key: {RATE_KEY}
    rate_limit: {{ requests_per_minute: 4 }}
  - name: budget
    key: {BUDGET_KEY}
    budget: {{ tokens: 300, period: month }}
"#
    )
}

/// The processes, their shared database and Redis (if any), and the upstream they call.
struct Cluster {
    upstream: MockUpstream,
    db: TestPostgres,
    redis: Option<TestRedis>,
    dir: tempfile::TempDir,
    nodes: Vec<Option<PorticoProcess>>,
    http: reqwest::Client,
}

impl Cluster {
    /// Starts `n` processes at once (so their start-up races on the empty database too).
    async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, Some(TestRedis::start())).await
    }

    /// Starts `n` processes on the database alone, without `PORTICO_REDIS_URL`.
    async fn without_redis(n: usize) -> Cluster {
        Cluster::start_with(n, None).await
    }

    async fn start_with(n: usize, redis: Option<TestRedis>) -> Cluster {
        let upstream = MockUpstream::start().await;
        let db = TestPostgres::database().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("portico.yaml"), catalog(&upstream)).unwrap();
        let mut cluster = Cluster {
            upstream,
            db,
            redis,
            dir,
            nodes: Vec::new(),
            http: reqwest::Client::new(),
        };
        let starts: Vec<_> = (0..n).map(|i| cluster.spawn(i)).collect();
        for node in futures::future::join_all(starts).await {
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    fn spawn(&self, i: usize) -> impl Future<Output = PorticoProcess> + use<> {
        let config = self.dir.path().join("portico.yaml");
        let data = self.dir.path().join(format!("node-{i}"));
        let database = self.db.url().to_owned();
        let redis = self.redis.as_ref().map(TestRedis::url);
        async move {
            let mut env = vec![
                ("PORTICO_ADMIN_KEY", ADMIN_KEY),
                ("PORTICO_MASTER_KEY", MASTER_KEY),
                ("PORTICO_DATABASE_URL", database.as_str()),
            ];
            if let Some(redis) = &redis {
                env.push(("PORTICO_REDIS_URL", redis.as_str()));
            }
            PorticoProcess::start(
                &bin(),
                &[
                    "serve",
                    "--config",
                    config.to_str().unwrap(),
                    "--listen",
                    "127.0.0.1:0",
                    "--data-dir",
                    data.to_str().unwrap(),
                ],
                &env,
            )
            .await
            .unwrap()
        }
    }

    fn redis(&mut self) -> &mut TestRedis {
        self.redis.as_mut().expect("the cluster has Redis")
    }

    fn node(&self, i: usize) -> &PorticoProcess {
        self.nodes[i].as_ref().expect("node is running")
    }

    async fn chat(&self, i: usize, key: &str, headers: &[(&str, &str)], text: &str) -> Answer {
        let mut request = self
            .http
            .post(self.node(i).url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "@oa/m", "max_tokens": 1,
                           "messages": [{"role": "user", "content": text}]}))
            .timeout(Duration::from_secs(20));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let cache = response
            .headers()
            .get("x-portkey-cache-status")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            cache,
            body,
        }
    }

    async fn admin(&self, i: usize, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(
                method.parse().unwrap(),
                self.node(i).url(&format!("/admin/v1{path}")),
            )
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits (up to the propagation bound, plus slack for a loaded test machine) until
    /// `node` answers `key` with `want`; answers how long it took.
    async fn until_status(&self, node: usize, key: &str, want: u16) -> Duration {
        let started = Instant::now();
        loop {
            let answer = self.chat(node, key, &[], "hi").await;
            if answer.status == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < PROPAGATION * 2,
                "node {node} still answers {} rather than {want} after {:?}: {}",
                answer.status,
                started.elapsed(),
                answer.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Answer {
    status: u16,
    cache: Option<String>,
    body: Value,
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_key_made_on_one_process_works_on_the_others_and_its_revocation_too() {
    let cluster = Cluster::start(3).await;
    // Three processes applied the same catalog at once: one copy of each record.
    let (status, keys) = cluster.admin(1, "GET", "/keys", None).await;
    assert_eq!(status, 200, "{keys}");
    let names: Vec<&str> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "service").count(),
        1,
        "{names:?}"
    );

    let (status, key) = cluster
        .admin(
            0,
            "POST",
            "/keys",
            Some(json!({"name": "made-on-0", "type": "service"})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["secret"].as_str().unwrap().to_owned();
    for node in [1, 2] {
        let took = cluster.until_status(node, &secret, 200).await;
        assert!(took <= PROPAGATION, "node {node} took {took:?}");
    }

    let (status, revoked) = cluster.admin(2, "DELETE", "/keys/made-on-0", None).await;
    assert_eq!(status, 204, "{revoked}");
    for node in [0, 1] {
        let took = cluster.until_status(node, &secret, 401).await;
        assert!(took <= PROPAGATION, "node {node} took {took:?}");
    }
}

#[tokio::test]
async fn a_rate_limit_and_a_budget_hold_across_processes() {
    let cluster = Cluster::start(3).await;
    // Four requests a minute for the key, whichever process they reach.
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..9 {
        let answer = cluster.chat(i % 3, RATE_KEY, &[], "hi").await;
        match answer.status {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert_eq!((admitted, refused), (4, 5));

    // 300 tokens a month: each request is estimated at about 24 tokens and charged what the
    // mock reports (5). Settlements reach Redis off the request path, so a refusal can come
    // while the previous request's reservation is still held; the key is spent when all
    // three processes refuse it in a row, after the settlements have landed.
    let mut charged = 0;
    let mut refusals_in_a_row = 0;
    for i in 0..200 {
        let answer = cluster.chat(i % 3, BUDGET_KEY, &[], "hello there").await;
        match answer.status {
            200 => {
                refusals_in_a_row = 0;
                charged += answer.body["usage"]["total_tokens"].as_u64().unwrap();
            }
            412 => {
                assert!(message(&answer.body).contains("budget"), "{}", answer.body);
                refusals_in_a_row += 1;
                if refusals_in_a_row == 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert_eq!(
        refusals_in_a_row, 3,
        "the budget never refused on every process"
    );
    // Three processes admitted what one budget holds, not three budgets' worth: nothing over
    // 300 (each request's charge is below its estimate), and refused only once less than an
    // estimate and a charge were left.
    assert!(
        (260..=300).contains(&charged),
        "the key was charged {charged} tokens of 300 across three processes"
    );
    // The budgets page of any process shows the shared spend (copied from Redis about once
    // a second).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, budgets) = cluster.admin(1, "GET", "/budgets", None).await;
        let entry = budgets["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["subject"] == "key:budget" && e["kind"] == "budget")
            .cloned()
            .unwrap_or_else(|| panic!("{budgets}"));
        let tokens = entry["tokens_spent"].as_u64().unwrap();
        if tokens == charged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the budgets page shows {tokens} tokens spent; the clients were charged {charged}: {entry}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_cache_hit_on_one_process_serves_another() {
    let cluster = Cluster::start(2).await;
    let config = [("x-portkey-config", "cached")];
    let first = cluster.chat(0, SERVICE_KEY, &config, "cache me").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.cache.as_deref(), Some("MISS"));
    // The cache write is sent off the request path: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let second = loop {
        let answer = cluster.chat(1, SERVICE_KEY, &config, "cache me").await;
        if answer.cache.as_deref() == Some("HIT") || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(second.cache.as_deref(), Some("HIT"), "{}", second.body);
    assert_eq!(second.body["choices"], first.body["choices"]);
    assert_eq!(cluster.upstream.hits(), 1, "one upstream call for both");
}

#[tokio::test]
async fn each_process_lists_every_processes_logs_and_one_killed_leaves_the_others_serving() {
    let mut cluster = Cluster::start(3).await;
    let mut ids = Vec::new();
    for i in 0..9 {
        let trace = format!("scale-out-{i}");
        let answer = cluster
            .chat(
                i % 3,
                SERVICE_KEY,
                &[("x-portkey-trace-id", trace.as_str())],
                "log me",
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        ids.push(answer.body["id"].as_str().unwrap_or_default().to_owned());
    }
    for node in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, page) = cluster.admin(node, "GET", "/logs?limit=100", None).await;
            assert_eq!(status, 200, "{page}");
            let traces: Vec<&str> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["trace_id"].as_str())
                .filter(|t| t.starts_with("scale-out-"))
                .collect();
            if traces.len() == 9 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} lists {} of 9: {traces:?}",
                traces.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // SIGKILL one: the others carry on, and can still change the catalog.
    drop(cluster.nodes[0].take());
    for node in [1, 2] {
        let answer = cluster.chat(node, SERVICE_KEY, &[], "still here").await;
        assert_eq!(answer.status, 200, "node {node}: {}", answer.body);
    }
    let (status, key) = cluster
        .admin(
            1,
            "POST",
            "/keys",
            Some(json!({"name": "after-kill", "type": "service"})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let took = cluster
        .until_status(2, key["secret"].as_str().unwrap(), 200)
        .await;
    assert!(took <= PROPAGATION, "{took:?}");
}

#[tokio::test]
async fn with_redis_down_budgets_fail_closed_and_rate_limits_open_then_recover() {
    let mut cluster = Cluster::start(2).await;
    assert_eq!(cluster.chat(0, BUDGET_KEY, &[], "hi").await.status, 200);
    cluster.redis().stop();

    let budget = cluster.chat(0, BUDGET_KEY, &[], "hi").await;
    assert_eq!(budget.status, 503, "{}", budget.body);
    let text = message(&budget.body);
    assert!(
        text.contains("Redis") && text.contains("fail closed"),
        "the message says what failed and the mode: {text}"
    );
    let rate = cluster.chat(1, RATE_KEY, &[], "hi").await;
    assert_eq!(rate.status, 200, "rate limits fail open: {}", rate.body);
    // A key with neither needs no Redis at all.
    assert_eq!(cluster.chat(1, SERVICE_KEY, &[], "hi").await.status, 200);

    cluster.redis().restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = cluster.chat(0, BUDGET_KEY, &[], "hi").await;
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after Redis returned: {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long a charge on one process may take to count on another without Redis: one
/// interval until its process delivers it to the database, one more until the other reads
/// the totals back (docs: each is 1 s).
const SPEND_LAG: Duration = Duration::from_secs(2);

/// The tokens an answer charged: what the client was told it used.
fn total_tokens(body: &Value) -> u64 {
    body["usage"]["total_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage: {body}"))
}

/// `tokens_spent` of the key `budget`'s budget on `node`'s budgets page.
async fn budget_page_tokens(cluster: &Cluster, node: usize) -> u64 {
    let (status, budgets) = cluster.admin(node, "GET", "/budgets", None).await;
    assert_eq!(status, 200, "{budgets}");
    budgets["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == "key:budget" && e["kind"] == "budget")
        .and_then(|e| e["tokens_spent"].as_u64())
        .unwrap_or_else(|| panic!("{budgets}"))
}

#[tokio::test]
async fn without_redis_budget_spend_from_every_process_adds_up_in_the_database() {
    let cluster = Cluster::without_redis(2).await;
    // 40 words: charged 81 tokens (the mock echoes them), estimated at about 40, so the
    // 300-token budget takes a few requests.
    let text = vec!["word"; 40].join(" ");
    let mut charged = 0;
    let mut refused_on = None;
    for i in 0..40 {
        let answer = cluster.chat(i % 2, BUDGET_KEY, &[], &text).await;
        match answer.status {
            200 => charged += total_tokens(&answer.body),
            412 => {
                refused_on = Some(i % 2);
                break;
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    let refused_on = refused_on.expect("the budget refused a request");
    assert!(charged >= 300, "refused after {charged} tokens of 300");

    // (a) Both refuse within the lag: the first one at once, the other once it has read the
    // first one's charges (or spent its own). What they admit meanwhile is charged too.
    let started = Instant::now();
    for node in [refused_on, 1 - refused_on] {
        loop {
            let answer = cluster.chat(node, BUDGET_KEY, &[], &text).await;
            match answer.status {
                412 => break,
                200 => charged += total_tokens(&answer.body),
                other => panic!("unexpected {other}: {}", answer.body),
            }
            assert!(
                started.elapsed() < SPEND_LAG * 2,
                "node {node} still admits after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let took = started.elapsed();
    assert!(took <= SPEND_LAG, "both refused after {took:?}");

    // (b) The database holds every token both processes charged (each delivers its own
    // as deltas), not the share of whichever process wrote last.
    let store = portico_store::SqlStore::connect(
        cluster.db.url(),
        portico_store::MasterKey::from_env_value(MASTER_KEY).unwrap(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + SPEND_LAG * 3;
    loop {
        let stored = portico_store::SpendStore::load_spend(&store)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.subject.to_string() == "key:budget")
            .map_or(0, |s| s.tokens);
        if stored == charged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database holds {stored} tokens for key:budget; the clients were charged {charged}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;
    // And each process's ledger, which its budgets page shows and its admissions use,
    // counts the other's charges too.
    for node in 0..2 {
        let deadline = Instant::now() + SPEND_LAG * 3;
        loop {
            let tokens = budget_page_tokens(&cluster, node).await;
            if tokens == charged {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} counts {tokens} tokens; both together charged {charged}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
