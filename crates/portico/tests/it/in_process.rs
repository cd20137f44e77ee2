//! `portico serve`'s wiring run in-process (`portico::serve::serve`): on a listener the test
//! bound, stopped by a future the test completes, with the access log handed to the test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser as _;
use portico::cli::{Cli, Command};
use portico::serve::{Listen, serve};
use portico_testkit::MockUpstream;

use crate::support::{SERVICE_KEY, chat, standard_catalog};

#[tokio::test]
async fn the_server_runs_in_process_on_a_given_listener_until_its_signal() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portico.yaml");
    std::fs::write(&config, standard_catalog(&upstream)).unwrap();
    let data = dir.path().join("data");
    let cli = Cli::try_parse_from([
        "portico",
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .unwrap();
    let Command::Serve(args) = cli.command else {
        panic!("not serve");
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let lines = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let access_log = {
        let lines = Arc::clone(&lines);
        move |line: Vec<u8>| lines.lock().unwrap().push(line)
    };
    let server = tokio::spawn(serve(
        args,
        Listen::Bound(listener),
        async {
            let _ = stopped.await;
        },
        access_log,
    ));

    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&chat("@openai-mock/m", "in process"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: in process");
    assert_eq!(upstream.hits(), 1);

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stopped after its signal")
        .unwrap();
    assert!(result.is_ok(), "{:?}", result.err());
    let lines = lines.lock().unwrap();
    let logged: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert!(
        logged
            .iter()
            .any(|r| r["id"] == id.as_str() && r["status"] == 200),
        "the access log got the request: {logged:?}"
    );
}
