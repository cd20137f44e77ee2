//! The dashboard in real headless Chromium against the real binary: sign in, find requests by
//! trace id and by metadata, read a request's payloads and attempts, see analytics charts,
//! create a key and use its secret. Each step saves a screenshot (see `browser.rs`).

use reqwest::Response;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{ADMIN_KEY, Gateway, SERVICE_KEY, chat};

/// Sends a chat request with a trace id and metadata; answers the gateway's request id.
async fn traced(gw: &Gateway, key: &str, body: Value, trace: &str, metadata: Value) -> String {
    let resp: Response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-portkey-trace-id", trace)
        .header("x-portkey-metadata", metadata.to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.bytes().await.unwrap();
    id
}

/// Waits until the admin API lists `n` logged requests (the log writer is asynchronous).
pub(crate) async fn wait_logged(gw: &Gateway, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let resp = gw
            .http
            .get(gw.url("/admin/v1/logs?limit=500"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let count = body["data"].as_array().map_or(0, Vec::len);
        if count >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GET /admin/v1/logs lists {count} of {n} requests (status {status}): {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Signs in to the dashboard with the admin key and waits for the navigation.
pub(crate) async fn sign_in(browser: &Browser, gw: &Gateway) {
    browser.open(&gw.url("/")).await;
    browser.fill("#admin-key", ADMIN_KEY).await;
    browser.click("form button[type=submit]").await;
    browser
        .until(
            "the signed-in navigation",
            "!document.getElementById('nav').hidden",
        )
        .await;
}

/// The ids of the log rows on screen, top to bottom.
const ROW_IDS: &str = "[...document.querySelectorAll('tbody tr[data-id]')].map(r => r.dataset.id)";

async fn rows_equal(browser: &Browser, what: &str, ids: &[&str]) {
    let want = serde_json::to_string(ids).unwrap();
    browser
        .until(what, &format!("JSON.stringify({ROW_IDS}) === {want:?}"))
        .await;
}

#[tokio::test]
async fn sign_in_refuses_wrong_keys_and_sign_out_forgets_the_key() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    // The dashboard has `/`; an unknown API path keeps the gateway's JSON 404.
    let page = gw.http.get(gw.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let missing = gw
        .http
        .get(gw.url("/v1/no-such-thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found", "{body}");

    browser.open(&gw.url("/")).await;
    browser.screenshot("login").await;

    browser
        .fill("#admin-key", "prt-not-a-key-000000000000")
        .await;
    browser.click("form button[type=submit]").await;
    browser
        .until(
            "the wrong-key message",
            "document.getElementById('login-error').textContent.includes('not valid')",
        )
        .await;

    browser.fill("#admin-key", SERVICE_KEY).await;
    browser.click("form button[type=submit]").await;
    browser
        .until(
            "the not-admin message",
            "document.getElementById('login-error').textContent.includes('not an admin key')",
        )
        .await;
    browser.screenshot("login-error").await;

    browser.fill("#admin-key", ADMIN_KEY).await;
    browser.click("form button[type=submit]").await;
    browser
        .until("the logs page", "document.title.startsWith('Logs')")
        .await;
    let page = browser.client.source().await.unwrap();
    assert!(
        !page.contains(ADMIN_KEY),
        "the admin key is rendered in the page"
    );

    browser.click("#logout").await;
    browser
        .until("the sign-in form", "document.getElementById('admin-key')")
        .await;
    let stored = browser
        .client
        .execute("return sessionStorage.length", vec![])
        .await
        .unwrap();
    assert_eq!(
        stored,
        json!(0),
        "the key stays in sessionStorage after sign-out"
    );
}

#[tokio::test]
async fn finds_requests_by_trace_id_and_metadata_and_shows_payloads_and_attempts() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    let search = traced(
        &gw,
        SERVICE_KEY,
        chat("@openai-mock/gpt-4o-mini", "hello dashboard"),
        "trace-dash-1",
        json!({"team": "search", "env": "prod"}),
    )
    .await;
    let billing = traced(
        &gw,
        SERVICE_KEY,
        chat("@openai-mock/gpt-4o", "an invoice question"),
        "trace-dash-2",
        json!({"team": "billing"}),
    )
    .await;
    let mut streamed = chat("@openai-mock/gpt-4o-mini", "stream me");
    streamed["stream"] = json!(true);
    let stream = traced(
        &gw,
        SERVICE_KEY,
        streamed,
        "trace-dash-3",
        json!({"team": "search"}),
    )
    .await;
    gw.upstream
        .enqueue(portico_testkit::MockReply::error(500, "upstream is down"));
    let failed = traced(
        &gw,
        SERVICE_KEY,
        chat("@openai-mock/gpt-4o", "this one fails"),
        "trace-dash-4",
        json!({"team": "billing"}),
    )
    .await;
    wait_logged(&gw, 4).await;

    sign_in(&browser, &gw).await;
    rows_equal(
        &browser,
        "every request, newest first",
        &[&failed, &stream, &billing, &search],
    )
    .await;
    browser.screenshot("logs").await;
    browser.screenshot_at("logs-narrow", 420).await;

    // By trace id, through the filter form; the filter lands in the URL.
    browser.fill("input[name=trace_id]", "trace-dash-1").await;
    browser
        .click("form[aria-label='Log filters'] button[type=submit]")
        .await;
    rows_equal(&browser, "the one request of trace-dash-1", &[&search]).await;
    let url = browser.client.current_url().await.unwrap();
    assert!(url.as_str().contains("trace_id=trace-dash-1"), "{url}");

    // By metadata, from a shared URL.
    browser.open(&gw.url("/#/logs?metadata.team=search")).await;
    rows_equal(&browser, "the team=search requests", &[&stream, &search]).await;
    // And through the form.
    browser.open(&gw.url("/#/logs")).await;
    rows_equal(
        &browser,
        "every request again",
        &[&failed, &stream, &billing, &search],
    )
    .await;
    browser.fill("input[name=metadata]", "team=billing").await;
    browser
        .click("form[aria-label='Log filters'] button[type=submit]")
        .await;
    rows_equal(&browser, "the team=billing requests", &[&failed, &billing]).await;
    browser.screenshot("logs-filtered").await;

    // A request's detail: its payloads and its attempt.
    browser.open(&gw.url("/#/logs")).await;
    rows_equal(
        &browser,
        "every request again",
        &[&failed, &stream, &billing, &search],
    )
    .await;
    browser.click(&format!("tr[data-id='{search}'] td a")).await;
    let request = browser.text("#request-payload").await;
    assert!(request.contains("hello dashboard"), "{request}");
    let parsed: Value = serde_json::from_str(&request).unwrap();
    assert_eq!(
        parsed["messages"][0]["content"], "hello dashboard",
        "{request}"
    );
    let response = browser.text("#response-payload").await;
    assert!(response.contains("echo: hello dashboard"), "{response}");
    let attempt = browser
        .until(
            "the attempts table",
            "document.querySelector('section[aria-labelledby=attempts-title] tbody tr')?.innerText",
        )
        .await;
    assert!(
        attempt.as_str().unwrap().contains("openai-mock"),
        "{attempt}"
    );
    let trace = browser.text("[data-field=trace_id] dd").await;
    assert_eq!(trace, "trace-dash-1");
    browser.screenshot("detail").await;

    // A streamed answer is shown as its event-stream text.
    browser.open(&gw.url(&format!("/#/logs/{stream}"))).await;
    let response = browser.text("#response-payload").await;
    assert!(response.contains("data: "), "{response}");

    // The failed request shows its upstream error.
    browser.open(&gw.url(&format!("/#/logs/{failed}"))).await;
    let attempt = browser
        .until(
            "the failed attempt",
            "document.querySelector('section[aria-labelledby=attempts-title] tbody tr')?.innerText",
        )
        .await;
    assert!(attempt.as_str().unwrap().contains("500"), "{attempt}");
    browser.screenshot("detail-error").await;
}

#[tokio::test]
async fn new_requests_appear_live_at_the_top() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    let first = traced(
        &gw,
        SERVICE_KEY,
        chat("@openai-mock/m", "one"),
        "live-1",
        json!({}),
    )
    .await;
    wait_logged(&gw, 1).await;
    sign_in(&browser, &gw).await;
    rows_equal(&browser, "the first request", &[&first]).await;
    let second = traced(
        &gw,
        SERVICE_KEY,
        chat("@openai-mock/m", "two"),
        "live-2",
        json!({}),
    )
    .await;
    rows_equal(
        &browser,
        "the second request, polled in",
        &[&second, &first],
    )
    .await;

    // Paused: a new request does not appear until live updates resume.
    browser.click(".live button").await;
    let third = traced(
        &gw,
        SERVICE_KEY,
        chat("@openai-mock/m", "three"),
        "live-3",
        json!({}),
    )
    .await;
    wait_logged(&gw, 3).await;
    let shown = browser
        .client
        .execute(&format!("return {ROW_IDS}"), vec![])
        .await
        .unwrap();
    assert_eq!(shown, json!([second, first]), "a paused list changed");
    browser.click(".live button").await;
    rows_equal(
        &browser,
        "the third request after resuming",
        &[&third, &second, &first],
    )
    .await;
}

#[tokio::test]
async fn analytics_draws_charts_of_the_logged_requests() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    for (i, model) in ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
        .iter()
        .enumerate()
    {
        traced(
            &gw,
            SERVICE_KEY,
            chat(&format!("@openai-mock/{model}"), "count these words please"),
            &format!("a-{i}"),
            json!({"team": "search"}),
        )
        .await;
    }
    wait_logged(&gw, 4).await;
    sign_in(&browser, &gw).await;

    browser.open(&gw.url("/#/analytics?interval=hour")).await;
    browser
        .until(
            "a drawn chart line",
            "document.querySelector('.chart svg path.line')?.getAttribute('d')",
        )
        .await;
    let requests = browser
        .until("the requests total", "[...document.querySelectorAll('.total')].find(t => t.querySelector('.label').textContent === 'Requests')?.querySelector('.value').textContent")
        .await;
    assert_eq!(requests, json!("4"));
    let charts = browser
        .until("five charts", "document.querySelectorAll('.chart svg').length === 5 && [...document.querySelectorAll('.chart h2')].map(h => h.textContent)")
        .await;
    assert_eq!(
        charts,
        json!(["Cost (USD)", "Tokens", "Requests", "Errors", "Latency (ms)"])
    );
    browser.screenshot("analytics").await;

    // Grouped by model: one line per model and a totals table.
    browser
        .open(&gw.url("/#/analytics?interval=hour&group_by=model"))
        .await;
    let groups = browser
        .until("the by-model table", "document.querySelectorAll('table[aria-label=\"Totals by model\"] tbody tr').length === 2 && [...document.querySelectorAll('table[aria-label=\"Totals by model\"] tbody tr')].map(r => [r.cells[0].textContent, r.cells[1].textContent])")
        .await;
    assert_eq!(groups, json!([["gpt-4o-mini", "3"], ["gpt-4o", "1"]]));
    browser.screenshot("analytics-by-model").await;

    // A group links to its requests in the log.
    browser
        .click("table[aria-label='Totals by model'] a[href='#/logs?model=gpt-4o']")
        .await;
    browser
        .until(
            "the one gpt-4o request",
            "location.hash === '#/logs?model=gpt-4o' && document.querySelectorAll('tbody tr[data-id]').length === 1",
        )
        .await;
}

#[tokio::test]
async fn a_key_created_in_the_dashboard_works_and_its_secret_is_shown_once() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    sign_in(&browser, &gw).await;

    browser.open(&gw.url("/#/keys")).await;
    browser
        .until(
            "the key list",
            "document.querySelector('tr[data-key=service]')",
        )
        .await;
    browser.click(".page-head button.primary").await;
    browser
        .fill(
            "form[aria-label='Create a key'] input[name=name]",
            "dashboard-made",
        )
        .await;
    browser
        .click("form[aria-label='Create a key'] button[type=submit]")
        .await;
    let secret = browser.text("#new-key-secret").await;
    assert!(secret.len() > 16, "{secret}");
    browser
        .until(
            "the new key in the list",
            "document.querySelector('tr[data-key=dashboard-made]')",
        )
        .await;
    browser.screenshot("keys-created").await;

    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&chat("@openai-mock/gpt-4o-mini", "made in the dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // "Done" drops the secret from the page; the list shows only a hint.
    browser.click(".secret-once button:last-child").await;
    browser
        .until(
            "the secret gone",
            "!document.getElementById('new-key-secret')",
        )
        .await;
    let page = browser.client.source().await.unwrap();
    assert!(!page.contains(&secret), "the secret is still in the page");
    assert!(
        !page.contains(SERVICE_KEY),
        "a stored key's secret is in the page"
    );
    browser.screenshot("keys").await;

    // Keys of the catalog file are read-only here (the API refuses to change them).
    let fixed = browser
        .until(
            "the file key's row",
            "document.querySelector('tr[data-key=service]')?.innerText",
        )
        .await;
    assert!(fixed.as_str().unwrap().contains("read-only"), "{fixed}");

    // Payload logging off, in place; the API agrees.
    browser
        .click("input[aria-label='Log payloads of dashboard-made']")
        .await;
    browser
        .until("the toggle saved", "document.querySelector('tr[data-key=dashboard-made] label.check')?.textContent === 'off'")
        .await;
    wait_key_field(&gw, "dashboard-made", "log_payloads", &json!(false)).await;

    // Revoke the new key: it stops working.
    browser
        .click("button[aria-label='Revoke dashboard-made']")
        .await;
    browser.client.accept_alert().await.unwrap();
    browser
        .until(
            "the key revoked",
            "document.querySelector('tr[data-key=dashboard-made].revoked')",
        )
        .await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&chat("@openai-mock/gpt-4o-mini", "after revoking"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn catalog_pages_list_providers_models_and_show_config_errors_with_their_path() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    sign_in(&browser, &gw).await;

    browser.open(&gw.url("/#/providers")).await;
    let slugs = browser
        .until("the providers", "document.querySelectorAll('tbody tr td strong').length >= 2 && [...document.querySelectorAll('tbody tr td strong')].map(s => s.textContent)")
        .await;
    assert!(
        slugs.as_array().unwrap().contains(&json!("@openai-mock")),
        "{slugs}"
    );
    let page = browser.client.source().await.unwrap();
    assert!(
        !page.contains(crate::support::PROVIDER_KEY),
        "a provider's API key is in the page"
    );
    browser.screenshot("providers").await;

    // Add a provider through the form, use it, then delete it.
    browser.click(".page-head button.primary").await;
    let form = "form[aria-label='Add a provider']";
    browser
        .fill(&format!("{form} input[name=slug]"), "added-in-ui")
        .await;
    browser
        .client
        .execute(
            &format!(
                "document.querySelector(\"{form} select[name=kind]\").value = 'openai-compatible'"
            ),
            vec![],
        )
        .await
        .unwrap();
    browser
        .fill(
            &format!("{form} input[name=base_url]"),
            &gw.upstream.base_url(),
        )
        .await;
    browser
        .fill(
            &format!("{form} input[name=api_key]"),
            "sk-ptsecret-added-in-the-ui-0000",
        )
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    browser
        .until("the added provider", "[...document.querySelectorAll('tbody tr td strong')].some(s => s.textContent === '@added-in-ui')")
        .await;
    assert_eq!(
        gw.post(
            "/v1/chat/completions",
            chat("@added-in-ui/some-model", "hi")
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        gw.upstream.last_request().unwrap().bearer(),
        Some("sk-ptsecret-added-in-the-ui-0000")
    );
    let page = browser.client.source().await.unwrap();
    assert!(
        !page.contains("sk-ptsecret-added-in-the-ui-0000"),
        "the new provider's API key is in the page"
    );

    // Edit it: an allow-list; the empty API key field keeps the stored key.
    browser
        .click("button[aria-label='Edit @added-in-ui']")
        .await;
    let edit = "form[aria-label='Edit provider added-in-ui']";
    browser
        .fill(&format!("{edit} textarea[name=models]"), "only-this")
        .await;
    browser.click(&format!("{edit} button[type=submit]")).await;
    browser
        .until(
            "the allow-list in the row",
            "[...document.querySelectorAll('tbody tr')].find(r => r.cells[0].textContent === '@added-in-ui')?.cells[4].textContent === 'only-this'",
        )
        .await;
    let allowed = gw
        .post("/v1/chat/completions", chat("@added-in-ui/only-this", "hi"))
        .await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        gw.upstream.last_request().unwrap().bearer(),
        Some("sk-ptsecret-added-in-the-ui-0000"),
        "the edit lost the stored API key"
    );
    let refused = gw
        .post(
            "/v1/chat/completions",
            chat("@added-in-ui/some-model", "hi"),
        )
        .await;
    assert!(refused.status().is_client_error(), "{}", refused.status());

    browser
        .click("button[aria-label='Delete @added-in-ui']")
        .await;
    browser.client.accept_alert().await.unwrap();
    browser
        .until("the provider gone", "![...document.querySelectorAll('tbody tr td strong')].some(s => s.textContent === '@added-in-ui')")
        .await;
    assert_eq!(
        gw.post(
            "/v1/chat/completions",
            chat("@added-in-ui/some-model", "hi")
        )
        .await
        .status(),
        404
    );

    browser.open(&gw.url("/#/models")).await;
    let priced = browser
        .until("the priced model", "[...document.querySelectorAll('tbody tr')].find(r => r.cells[0].textContent === '@restricted/gpt-priced')?.innerText")
        .await;
    assert!(priced.as_str().unwrap().contains("$1.00"), "{priced}");
    browser.screenshot("models").await;

    browser.open(&gw.url("/#/configs")).await;
    browser.click(".page-head button.primary").await;
    browser
        .fill("form[aria-label='New config'] input[name=id]", "broken")
        .await;
    browser
        .client
        .execute(
            "document.querySelector('textarea[name=config]').value = JSON.stringify({strategy: {mode: 'sideways'}, targets: [{provider: '@openai-mock'}]})",
            vec![],
        )
        .await
        .unwrap();
    browser
        .click("form[aria-label='New config'] button[type=submit]")
        .await;
    let error = browser
        .until(
            "the API's 400 message",
            "document.getElementById('config-error').textContent",
        )
        .await;
    assert!(error.as_str().unwrap().contains("strategy.mode"), "{error}");
    browser.screenshot("configs-error").await;

    browser
        .client
        .execute(
            "document.querySelector('textarea[name=config]').value = JSON.stringify({strategy: {mode: 'fallback'}, targets: [{provider: '@openai-mock'}, {provider: '@restricted'}]})",
            vec![],
        )
        .await
        .unwrap();
    browser
        .click("form[aria-label='New config'] button[type=submit]")
        .await;
    let row = browser
        .until("the new config", "[...document.querySelectorAll('tbody tr')].find(r => r.cells[0].textContent === 'broken')?.innerText")
        .await;
    assert!(
        row.as_str().unwrap().contains("fallback, 2 targets"),
        "{row}"
    );
    browser.screenshot("configs").await;

    // Attach it to a key (made through the API) from the keys page, then detach it.
    let made = gw
        .http
        .post(gw.url("/admin/v1/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "api-made", "type": "service"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
    browser.open(&gw.url("/#/keys")).await;
    let select = "select[aria-label='Config of api-made']";
    browser
        .until(
            "the config choice",
            &format!("document.querySelector(\"{select} option[value=broken]\")"),
        )
        .await;
    for (choice, expected) in [("broken", json!("broken")), ("", Value::Null)] {
        browser
            .client
            .execute(
                &format!("const s = document.querySelector(\"{select}\"); s.value = '{choice}'; s.dispatchEvent(new Event('change'));"),
                vec![],
            )
            .await
            .unwrap();
        wait_key_field(&gw, "api-made", "config", &expected).await;
        if choice == "broken" {
            // While a key uses it, deleting the config is refused with the key's name.
            browser.open(&gw.url("/#/configs")).await;
            browser.click("button[aria-label='Delete broken']").await;
            browser.client.accept_alert().await.unwrap();
            let refused = browser
                .until(
                    "the 409 message",
                    "document.querySelector('.error')?.textContent",
                )
                .await;
            assert!(refused.as_str().unwrap().contains("api-made"), "{refused}");
            browser.open(&gw.url("/#/keys")).await;
            browser
                .until(
                    "the key list",
                    &format!("document.querySelector(\"{select}\")?.value === 'broken'"),
                )
                .await;
        }
    }

    // Detached, it can be edited and deleted.
    browser.open(&gw.url("/#/configs")).await;
    browser.click("button[aria-label='Edit broken']").await;
    browser
        .client
        .execute(
            "document.querySelector('textarea[name=config]').value = JSON.stringify({strategy: {mode: 'loadbalance'}, targets: [{provider: '@openai-mock'}, {provider: '@restricted'}]})",
            vec![],
        )
        .await
        .unwrap();
    browser
        .click("form[aria-label='Edit config broken'] button[type=submit]")
        .await;
    browser
        .until(
            "the edited config",
            "[...document.querySelectorAll('tbody tr')].find(r => r.cells[0].textContent === 'broken')?.cells[1].textContent === 'loadbalance, 2 targets'",
        )
        .await;
    browser.click("button[aria-label='Delete broken']").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .until("no config left", "document.querySelector('td.empty')")
        .await;
}

/// Polls `GET /admin/v1/keys/{name}` until `field` equals `expected`.
async fn wait_key_field(gw: &Gateway, name: &str, field: &str, expected: &Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let key: Value = gw
            .http
            .get(gw.url(&format!("/admin/v1/keys/{name}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if &key[field] == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "key {name}: {field} is not {expected}: {key}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failed_over_request_shows_each_attempt() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    // The first target answers 503; the fallback target answers.
    gw.upstream.enqueue(portico_testkit::MockReply::error(
        503,
        "first target overloaded",
    ));
    let config = json!({
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "@openai-mock"}, {"provider": "@restricted", "override_params": {"model": "gpt-allowed"}}],
    });
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-config", config.to_string())
        .header("x-portkey-trace-id", "trace-fallback")
        .json(&chat("gpt-4o-mini", "fall back please"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let id = resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    wait_logged(&gw, 1).await;

    sign_in(&browser, &gw).await;
    browser.open(&gw.url(&format!("/#/logs/{id}"))).await;
    let attempts = browser
        .until(
            "two attempts",
            "document.querySelectorAll('section[aria-labelledby=attempts-title] tbody tr').length === 2 && [...document.querySelectorAll('section[aria-labelledby=attempts-title] tbody tr')].map(r => [r.cells[1].textContent, r.cells[6].textContent, r.cells[8].textContent])",
        )
        .await;
    assert_eq!(
        attempts,
        json!([
            ["openai-mock", "503", "first target overloaded"],
            ["restricted", "200", "—"]
        ]),
        "{attempts}"
    );
    browser.screenshot("detail-fallback").await;
}
