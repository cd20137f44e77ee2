//! Debian's headless Chromium, driven over WebDriver (chromedriver + fantoccini), for the
//! dashboard tests.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages
//! (`.ci/run` installs them). When they are missing the dashboard tests are skipped with a
//! loud message, unless `PORTICO_REQUIRE_BROWSER=1` (set by `.ci/run`) turns that into a
//! failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium with its chromedriver; both end when this is dropped.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    _profile: TempDir,
    shots: PathBuf,
}

/// chromedriver runs in a process group of its own with the Chromium it starts: ending the
/// whole group when the test ends (passed or panicked) leaves no browser behind, which
/// killing chromedriver alone would (its Chromium processes would live on, orphaned).
impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn binary(env: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.exists().then_some(path)
}

/// Where the tests save their screenshots: `$PORTICO_SCREENSHOTS`, or
/// `target/tmp/dashboard-screenshots`.
pub(crate) fn screenshot_dir() -> PathBuf {
    std::env::var_os("PORTICO_SCREENSHOTS").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots"),
        PathBuf::from,
    )
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` (after saying so on
    /// stderr) when they are not installed and the browser is not required.
    pub(crate) async fn start() -> Option<Browser> {
        let chromium = binary("PORTICO_CHROMIUM", "/usr/bin/chromium");
        let driver = binary("PORTICO_CHROMEDRIVER", "/usr/bin/chromedriver");
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let required = std::env::var("PORTICO_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            let message = "Chromium or chromedriver is not installed (/usr/bin/chromium, /usr/bin/chromedriver); \
                 install them with `apt-get install -y chromium chromium-driver`";
            assert!(!required, "{message} (PORTICO_REQUIRE_BROWSER=1)");
            eprintln!(
                "\n!!!!!!!!\n!!!!!!!! SKIPPED the dashboard browser test: {message}\n!!!!!!!!\n"
            );
            return None;
        };
        // chromedriver cannot be told to take port 0, so ask the kernel for a free port and
        // hand it over; another process could take it in between, hence the retries.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(&driver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .process_group(0)
                .spawn()
                .unwrap();
            let url = format!("http://127.0.0.1:{port}");
            match connect(&url, &chromium, &mut child).await {
                Ok((client, profile)) => {
                    let shots = screenshot_dir();
                    std::fs::create_dir_all(&shots).unwrap();
                    client.set_window_size(1360, 900).await.unwrap();
                    return Some(Browser {
                        client,
                        driver: child,
                        _profile: profile,
                        shots,
                    });
                }
                Err(e) => {
                    if let Some(pid) = child.id() {
                        let _ = std::process::Command::new("kill")
                            .args(["-KILL", "--", &format!("-{pid}")])
                            .stderr(Stdio::null())
                            .status();
                    }
                    last_error = e;
                }
            }
        }
        panic!("could not start a Chromium session through chromedriver: {last_error}");
    }

    /// Opens `url` (the gateway's address plus a `#/…` route).
    pub(crate) async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits until `expr` (a JavaScript expression, evaluated in the page) is truthy and
    /// answers its value; fails with `what` and the page's text when it never is.
    pub(crate) async fn until(&self, what: &str, expr: &str) -> Value {
        let script = format!("try {{ return ({expr}) || null; }} catch (e) {{ return null; }}");
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.client.execute(&script, vec![]).await.unwrap();
            if !value.is_null() {
                return value;
            }
            if Instant::now() > deadline {
                let text = self
                    .client
                    .execute("return document.body.innerText", vec![])
                    .await
                    .unwrap();
                panic!(
                    "timed out waiting for {what} ({expr}); the page shows:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `css`, once there is one.
    pub(crate) async fn text(&self, css: &str) -> String {
        let expr = format!("document.querySelector({css:?})?.textContent");
        self.until(&format!("an element {css}"), &expr)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Types `text` into the field matching `css` (after clearing it).
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        self.until(
            &format!("a field {css}"),
            &format!("document.querySelector({css:?})"),
        )
        .await;
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the element matching `css`, once there is one.
    pub(crate) async fn click(&self, css: &str) {
        self.until(
            &format!("an element {css}"),
            &format!("document.querySelector({css:?})"),
        )
        .await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Saves a PNG of the page (the window grown to the page's height, up to 2,400 px) as
    /// `<name>.png` in [`screenshot_dir`].
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        self.screenshot_at(name, 1360).await
    }

    /// [`Browser::screenshot`] with the window `width` pixels wide (a phone is about 420).
    pub(crate) async fn screenshot_at(&self, name: &str, width: u32) -> PathBuf {
        self.client.set_window_size(width, 900).await.unwrap();
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900)
            .clamp(900, 2400);
        self.client
            .set_window_size(width, u32::try_from(height).unwrap())
            .await
            .unwrap();
        // Let the browser finish painting what the last change scheduled.
        self.client
            .execute_async(
                "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        self.client.set_window_size(1360, 900).await.unwrap();
        path
    }
}

async fn connect(
    url: &str,
    chromium: &Path,
    driver: &mut Child,
) -> Result<(Client, TempDir), String> {
    let profile = tempfile::tempdir().unwrap();
    // The flags this closed network needs: no background connections to Google's services,
    // no QUIC, no first-run work; a fresh profile per test.
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        &format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium, "args": args}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited: {status}"));
        }
        let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(url)
            .await;
        match attempt {
            Ok(client) => return Ok((client, profile)),
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            // chromedriver is still starting: its port is not open yet.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
