//! The dashboard's Budgets page in real headless Chromium against the real binary: spend made
//! by real requests shown as the admin API counts it, a named budget created, changed and
//! deleted through the form (and refused with the API's message when invalid), and the limits
//! of a key and of providers set through their admin API objects. Screenshots as in
//! `dashboard.rs` (see `browser.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use portico_testkit::MockUpstream;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::dashboard::sign_in;
use crate::support::{ADMIN_KEY, Gateway, PROVIDER_KEY, SERVICE_KEY};

/// The API key of the provider made through the admin API; the page must keep it and never
/// show it.
const CAPPED_API_KEY: &str = "sk-api-capped-ptsecret-0000";

/// `@oa` (a priced model, a token budget and a rate limit), the service key with a USD budget
/// and a rate limit, and a named budget for team backend with room for two requests.
fn catalog(upstream: &MockUpstream) -> String {
    let base = upstream.base_url();
    format!(
        r#"
providers:
  - slug: oa
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
    models:
      - id: priced
        pricing: {{ input_per_mtok: 10000, output_per_mtok: 10000 }}
      - plain
    budget: {{ tokens: 900, period: day }}
    rate_limit: {{ requests_per_minute: 100 }}
keys:
  - name: service
    key: {SERVICE_KEY}
    budget: {{ cost_usd: 5, period: month }}
    rate_limit: {{ requests_per_minute: 60 }}
budgets:
  - name: team-backend
    match: {{ metadata.team: backend }}
    budget: {{ tokens: 150, period: week }}
"#
    )
}

/// A chat request of 40 one-letter words with the service key and `team` in its metadata:
/// the mock reports 40 prompt and 41 completion tokens, $0.81 at `@oa/priced`'s price.
async fn spend(gw: &Gateway, model: &str, team: &str) -> (u16, Value) {
    let text = ["a"; 40].join(" ");
    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-metadata", json!({ "team": team }).to_string())
        .json(&json!({"model": model, "max_tokens": 1,
                      "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An admin API call: its status and body.
async fn admin(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = gw
        .http
        .request(method.parse().unwrap(), gw.url(&format!("/admin/v1{path}")))
        .bearer_auth(ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Dollars as the page writes them (`format.js`'s `usd`), for the amounts this test uses.
fn usd(n: f64) -> String {
    if n == 0.0 {
        "$0".to_owned()
    } else if n.abs() >= 1.0 {
        format!("${n:.2}")
    } else {
        assert!(n.abs() >= 0.01, "no amounts under a cent here: {n}");
        format!("${n:.4}")
    }
}

/// A count as the page writes it; this test keeps counts under 1,000, so no digit grouping.
fn count(n: &Value) -> String {
    let n = n.as_u64().unwrap_or(0);
    assert!(n < 1000, "{n}");
    n.to_string()
}

/// What the page should show for each subject of `GET /admin/v1/budgets`: every limit's
/// figures (`budget/usd` → `$1.62 of $5.00`) and the budget's reset time.
fn expected(list: &Value) -> Value {
    let mut subjects: BTreeMap<String, Value> = BTreeMap::new();
    for e in list["data"].as_array().unwrap() {
        let subject = e["subject"].as_str().unwrap();
        let shown = subjects
            .entry(subject.to_owned())
            .or_insert_with(|| json!({"figures": {}, "resets": null}));
        let figures = shown["figures"].as_object_mut().unwrap();
        if e["kind"] == "budget" {
            if let Some(limit) = e["cost_usd_limit"].as_f64() {
                let spent = e["cost_usd_spent"].as_f64().unwrap();
                figures.insert(
                    "budget/usd".into(),
                    json!(format!("{} of {}", usd(spent), usd(limit))),
                );
            }
            if !e["tokens_limit"].is_null() {
                figures.insert(
                    "budget/tokens".into(),
                    json!(format!(
                        "{} of {} tokens",
                        count(&e["tokens_spent"]),
                        count(&e["tokens_limit"])
                    )),
                );
            }
            shown["resets"] = e["resets_at"].clone();
        } else {
            if !e["requests_limit"].is_null() {
                figures.insert(
                    "rate_limit/requests".into(),
                    json!(format!(
                        "{} of {} requests",
                        count(&e["requests_spent"]),
                        count(&e["requests_limit"])
                    )),
                );
            }
            if !e["tokens_limit"].is_null() {
                figures.insert(
                    "rate_limit/tokens".into(),
                    json!(format!(
                        "{} of {} tokens",
                        count(&e["tokens_spent"]),
                        count(&e["tokens_limit"])
                    )),
                );
            }
        }
    }
    json!(subjects)
}

/// The same, read from the page's table.
const SHOWN: &str = "Object.fromEntries([...document.querySelectorAll('tbody tr[data-subject]')].map(r => [r.dataset.subject, {
  figures: Object.fromEntries([...r.querySelectorAll('.usage')].map(u => [u.dataset.entry + '/' + u.dataset.measure, u.querySelector('.figures').textContent])),
  resets: r.querySelector('td.budget time')?.getAttribute('datetime') ?? null,
}]))";

/// Waits until the page shows exactly what `GET /admin/v1/budgets` answers (the page polls
/// every five seconds); answers that list.
async fn page_matches_api(browser: &Browser, gw: &Gateway) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, list) = admin(gw, "GET", "/budgets?limit=500", None).await;
        assert_eq!(status, 200, "{list}");
        let want = expected(&list);
        let shown = browser
            .client
            .execute(&format!("return {SHOWN}"), vec![])
            .await
            .unwrap();
        if shown == want {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "the page shows\n{shown:#}\nthe admin API answers\n{want:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status badge of a subject's row.
async fn state(browser: &Browser, subject: &str) -> String {
    browser
        .text(&format!("tr[data-subject='{subject}'] td.state .badge"))
        .await
}

/// The page's source holds none of the secrets the gateway knows.
async fn no_secret_in(browser: &Browser) {
    let page = browser.client.source().await.unwrap();
    for secret in [ADMIN_KEY, SERVICE_KEY, PROVIDER_KEY, CAPPED_API_KEY] {
        assert!(!page.contains(secret), "a secret is in the page: {secret}");
    }
}

/// Chooses `target` (`key:<name>`, `provider:<slug>`) in the limits form.
async fn choose_target(browser: &Browser, target: &str) {
    browser
        .client
        .execute(
            &format!(
                "const s = document.querySelector(\"{LIMITS} select[name=target]\"); s.value = '{target}'; s.dispatchEvent(new Event('change'));"
            ),
            vec![],
        )
        .await
        .unwrap();
}

const LIMITS: &str = "form[aria-label='Limits of a key or provider']";

/// Fills the fields of `form` named by their API paths (`budget.tokens`), then submits it
/// and waits for the form to close.
async fn submit_limits(browser: &Browser, form: &str, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        browser
            .fill(&format!("{form} [name='{name}']"), value)
            .await;
    }
    browser.click(&format!("{form} button[type=submit]")).await;
    browser
        .until(
            "the form closed",
            &format!("!document.querySelector(\"{form}\")"),
        )
        .await;
}

/// Polls the admin API's `path` until `check` holds for its answer.
async fn wait_api(gw: &Gateway, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = admin(gw, "GET", path, None).await;
        if check(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} answers {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_dashboard_shows_spend_against_budgets_and_manages_them() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let upstream = MockUpstream::start().await;
    let text = catalog(&upstream);
    let gw = Gateway::start_with(upstream, &text).await;

    // Two requests of team backend: $1.62 of the key's $5, 162 tokens of @oa's 900, and the
    // named budget's 150 tokens exhausted, so a third is refused.
    for _ in 0..2 {
        let (status, body) = spend(&gw, "@oa/priced", "backend").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = spend(&gw, "@oa/priced", "backend").await;
    assert_eq!(status, 412, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("budget `budget:team-backend` is exhausted"),
        "{body}"
    );

    // A key and two providers made through the API, whose limits the page sets below.
    let (status, key) = admin(
        &gw,
        "POST",
        "/keys",
        Some(json!({"name": "api-limited", "type": "service"})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let models = json!([{"id": "priced", "pricing": {"input_per_mtok": 1.5, "output_per_mtok": 2.0}}, "plain"]);
    let (status, capped) = admin(
        &gw,
        "POST",
        "/providers",
        Some(
            json!({"slug": "api-capped", "kind": "openai", "api_key": CAPPED_API_KEY,
                    "base_url": gw.upstream.base_url(), "models": models}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{capped}");
    let (status, mock) = admin(
        &gw,
        "POST",
        "/providers",
        Some(json!({"slug": "api-mock", "kind": "mock", "mock": {"latency_ms": 3}})),
    )
    .await;
    assert_eq!(status, 201, "{mock}");

    sign_in(&browser, &gw).await;
    browser.open(&gw.url("/#/budgets")).await;
    let list = page_matches_api(&browser, &gw).await;
    let subjects: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "budget:team-backend",
            "key:service",
            "key:service",
            "provider:oa",
            "provider:oa"
        ]
    );
    let service = &list["data"][1];
    assert_eq!(service["kind"], "budget");
    assert!(
        (service["cost_usd_spent"].as_f64().unwrap() - 1.62).abs() < 1e-9,
        "{service}"
    );
    assert_eq!(state(&browser, "budget:team-backend").await, "exhausted");
    assert_eq!(state(&browser, "key:service").await, "ok");
    assert_eq!(state(&browser, "provider:oa").await, "ok");
    let shown = browser
        .text("tr[data-subject='key:service'] [data-entry=budget][data-measure=usd] .figures")
        .await;
    assert_eq!(shown, "$1.62 of $5.00");
    let period = browser
        .text("tr[data-subject='budget:team-backend'] td.budget .period")
        .await;
    assert!(period.starts_with("per week · resets "), "{period}");
    let matched = browser
        .text("tr[data-subject='budget:team-backend'] td.subject .detail")
        .await;
    assert_eq!(matched, "metadata.team=backend");
    // The catalog file's records are changed in the file, not here.
    let actions = browser
        .text("tr[data-subject='key:service'] td.actions-cell")
        .await;
    assert_eq!(actions, "read-only");
    no_secret_in(&browser).await;
    browser.screenshot("budgets").await;

    // A named budget the API refuses: its message and field are shown, the field marked.
    browser.click(".page-head button.primary").await;
    let new = "form[aria-label='New budget']";
    browser
        .fill(&format!("{new} input[name=name]"), "team-search")
        .await;
    browser
        .fill(&format!("{new} input[name=match]"), "team=search")
        .await;
    submit_fields(&browser, new, &[("budget.cost_usd", "0")]).await;
    let (status, refused) = admin(
        &gw,
        "POST",
        "/budgets",
        Some(
            json!({"name": "team-search", "match": {"metadata.team": "search"},
                    "budget": {"cost_usd": 0, "period": "month"}}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "budget.cost_usd");
    let message = refused["error"]["message"].as_str().unwrap();
    let error = browser
        .until(
            "the API's 400 message",
            "document.getElementById('budget-error')?.textContent",
        )
        .await;
    assert_eq!(
        error.as_str().unwrap(),
        format!("{message}\nField: budget.cost_usd")
    );
    let marked = browser
        .until(
            "the field marked",
            &format!("document.querySelector(\"{new} [name='budget.cost_usd']\").getAttribute('aria-invalid')"),
        )
        .await;
    assert_eq!(marked, "true");
    browser.screenshot("budgets-error").await;

    // Corrected: created, listed, and in the API as the form said.
    submit_limits(
        &browser,
        new,
        &[
            ("budget.cost_usd", ""),
            ("budget.tokens", "500"),
            ("rate_limit.requests_per_minute", "30"),
        ],
    )
    .await;
    let created = wait_api(&gw, "/budgets/team-search", |b| b["name"] == "team-search").await;
    assert_eq!(created["match"], json!({"metadata.team": "search"}));
    assert_eq!(created["budget"], json!({"tokens": 500, "period": "month"}));
    assert_eq!(created["rate_limit"], json!({"requests_per_minute": 30}));
    assert_eq!(created["source"], "api");
    browser
        .until(
            "the new budget's row",
            "document.querySelector(\"tr[data-subject='budget:team-search']\")",
        )
        .await;
    let list = page_matches_api(&browser, &gw).await;
    let kinds: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == "budget:team-search")
        .map(|e| &e["kind"])
        .collect();
    assert_eq!(kinds, [&json!("budget"), &json!("rate_limit")], "{list}");

    // Its limit changed in place; then spent by a request of team search.
    browser
        .click("button[aria-label='Edit budget:team-search']")
        .await;
    let edit = "form[aria-label='Edit budget team-search']";
    let name_locked = browser
        .until(
            "the name read-only",
            &format!("document.querySelector(\"{edit} input[name=name]\").readOnly"),
        )
        .await;
    assert_eq!(name_locked, true);
    submit_limits(&browser, edit, &[("budget.tokens", "700")]).await;
    wait_api(&gw, "/budgets/team-search", |b| {
        b["budget"] == json!({"tokens": 700, "period": "month"})
    })
    .await;
    let (status, body) = spend(&gw, "@oa/plain", "search").await;
    assert_eq!(status, 200, "{body}");
    let list = page_matches_api(&browser, &gw).await;
    let search = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == "budget:team-search" && e["kind"] == "budget")
        .unwrap();
    assert_eq!(
        (
            search["tokens_spent"].as_u64(),
            search["tokens_limit"].as_u64()
        ),
        (Some(81), Some(700))
    );
    let figures = browser
        .text("tr[data-subject='budget:team-search'] [data-entry=budget][data-measure=tokens] .figures")
        .await;
    assert_eq!(figures, "81 of 700 tokens");

    // Deleted: gone from the page and from the API.
    browser
        .click("button[aria-label='Delete budget:team-search']")
        .await;
    browser.client.accept_alert().await.unwrap();
    browser
        .until(
            "the row gone",
            "!document.querySelector(\"tr[data-subject='budget:team-search']\") && document.querySelector(\"tr[data-subject='key:service']\")",
        )
        .await;
    assert_eq!(admin(&gw, "GET", "/budgets/team-search", None).await.0, 404);
    page_matches_api(&browser, &gw).await;

    // A key's limits, set with PATCH through the limits form, then its rate limit removed.
    browser.click(".page-head button:not(.primary)").await;
    browser
        .until(
            "the limits form",
            &format!("document.querySelector(\"{LIMITS} option[value='key:api-limited']\")"),
        )
        .await;
    let choices = browser
        .until(
            "the choices",
            &format!("[...document.querySelectorAll(\"{LIMITS} select[name=target] option\")].map(o => o.value)"),
        )
        .await;
    assert_eq!(
        choices,
        json!([
            "key:api-limited",
            "provider:api-capped",
            "provider:api-mock"
        ]),
        "only records made through the API can be changed"
    );
    choose_target(&browser, "key:api-limited").await;
    submit_limits(
        &browser,
        LIMITS,
        &[
            ("budget.cost_usd", "2"),
            ("rate_limit.requests_per_minute", "5"),
        ],
    )
    .await;
    let key = wait_api(&gw, "/keys/api-limited", |k| !k["budget"].is_null()).await;
    assert_eq!(key["budget"], json!({"cost_usd": 2.0, "period": "month"}));
    assert_eq!(key["rate_limit"], json!({"requests_per_minute": 5}));
    browser
        .click("button[aria-label='Edit key:api-limited']")
        .await;
    let selected = browser
        .until(
            "the key chosen",
            &format!("document.querySelector(\"{LIMITS} select[name=target]\")?.value"),
        )
        .await;
    assert_eq!(selected, "key:api-limited");
    submit_limits(&browser, LIMITS, &[("rate_limit.requests_per_minute", "")]).await;
    let key = wait_api(&gw, "/keys/api-limited", |k| k["rate_limit"].is_null()).await;
    assert_eq!(
        key["budget"],
        json!({"cost_usd": 2.0, "period": "month"}),
        "removing the rate limit kept the budget"
    );

    // A provider's limits, through PUT: its models, settings and stored API key are kept.
    browser.click(".page-head button:not(.primary)").await;
    choose_target(&browser, "provider:api-capped").await;
    submit_limits(
        &browser,
        LIMITS,
        &[
            ("budget.tokens", "800"),
            ("rate_limit.tokens_per_minute", "900"),
        ],
    )
    .await;
    let after = wait_api(&gw, "/providers/api-capped", |p| !p["budget"].is_null()).await;
    assert_eq!(after["budget"], json!({"tokens": 800, "period": "month"}));
    assert_eq!(after["rate_limit"], json!({"tokens_per_minute": 900}));
    assert_eq!(after["models"], capped["models"]);
    assert_eq!(after["api_key_set"], true);
    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"model": "@api-capped/plain", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        gw.upstream.last_request().unwrap().bearer(),
        Some(CAPPED_API_KEY),
        "setting limits lost the stored API key"
    );

    // Changed from the Providers page's link, which shows them.
    browser.open(&gw.url("/#/providers")).await;
    let link = browser
        .text("a[href='#/budgets?provider=api-capped']")
        .await;
    assert_eq!(link, "800 tokens/month, 900 tokens/min");
    browser
        .click("a[href='#/budgets?provider=api-capped']")
        .await;
    let selected = browser
        .until(
            "the provider chosen",
            &format!("document.querySelector(\"{LIMITS} select[name=target]\")?.value"),
        )
        .await;
    assert_eq!(selected, "provider:api-capped");
    submit_limits(&browser, LIMITS, &[("budget.tokens", "600")]).await;
    let after = wait_api(&gw, "/providers/api-capped", |p| {
        p["budget"] == json!({"tokens": 600, "period": "month"})
    })
    .await;
    assert_eq!(after["rate_limit"], json!({"tokens_per_minute": 900}));

    // A mock provider keeps its mock settings.
    browser.click(".page-head button:not(.primary)").await;
    choose_target(&browser, "provider:api-mock").await;
    submit_limits(
        &browser,
        LIMITS,
        &[("rate_limit.requests_per_minute", "40")],
    )
    .await;
    let after = wait_api(&gw, "/providers/api-mock", |p| !p["rate_limit"].is_null()).await;
    assert_eq!(after["rate_limit"], json!({"requests_per_minute": 40}));
    assert_eq!(after["budget"], Value::Null);
    assert_eq!(after["settings"], mock["settings"]);

    // Every one of them listed as the API counts it; the Keys page links to the key's.
    browser.open(&gw.url("/#/budgets")).await;
    let list = page_matches_api(&browser, &gw).await;
    for subject in [
        "key:api-limited",
        "provider:api-capped",
        "provider:api-mock",
    ] {
        assert!(
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["subject"] == subject),
            "{subject} is not in {list}"
        );
    }
    no_secret_in(&browser).await;
    let summary = browser.text("#budgets-summary").await;
    assert_eq!(summary, "6 subjects with limits · 1 exhausted");
    browser.screenshot("budgets-limits").await;
    browser.screenshot_at("budgets-narrow", 420).await;
    browser.open(&gw.url("/#/keys")).await;
    let link = browser.text("tr[data-key=api-limited] td.limits a").await;
    assert_eq!(link, "$2/month");
}

/// Fills `fields` of `form` and submits it, leaving it open (for an answer the API refuses).
async fn submit_fields(browser: &Browser, form: &str, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        browser
            .fill(&format!("{form} [name='{name}']"), value)
            .await;
    }
    browser.click(&format!("{form} button[type=submit]")).await;
}
