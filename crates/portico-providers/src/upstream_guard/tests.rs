use super::*;

fn list(s: &str) -> UpstreamAllowlist {
    UpstreamAllowlist::parse(s).unwrap()
}

fn url_ok(list: &UpstreamAllowlist, url: &str) -> bool {
    list.check_url_str(url).is_ok()
}

fn addr(s: &str) -> SocketAddr {
    SocketAddr::new(s.parse().unwrap(), 443)
}

#[test]
fn by_default_everything_but_the_metadata_services_is_allowed() {
    let open = UpstreamAllowlist::default();
    assert!(!open.is_restricted());
    for url in [
        "https://api.openai.com/v1",
        "http://10.0.0.7:8080",
        "http://127.0.0.1:11434",
        "http://[::1]:8000",
        "http://localhost:4000",
    ] {
        assert!(url_ok(&open, url), "{url}");
    }
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://100.100.100.200/",
    ] {
        let err = open.check_url_str(url).unwrap_err().to_string();
        assert!(err.contains("cloud metadata service"), "{url}: {err}");
        assert!(err.contains("--upstream-allowlist"), "{err}");
    }
    assert!(open.check_url_str("file:///etc/passwd").is_err());
    assert!(open.check_url_str("not a url").is_err());
}

#[test]
fn a_metadata_service_is_allowed_only_when_listed_exactly() {
    assert!(url_ok(&list("169.254.169.254"), "http://169.254.169.254/"));
    assert!(url_ok(
        &list("metadata.google.internal"),
        "http://metadata.google.internal/"
    ));
    assert!(url_ok(&list("[fd00:ec2::254]"), "http://[fd00:ec2::254]/"));
    // A wide network or a suffix is not enough.
    for wide in ["0.0.0.0/0", "169.254.0.0/16", ".internal", "::/0"] {
        let l = list(wide);
        assert!(!url_ok(&l, "http://169.254.169.254/"), "{wide}");
        assert!(!url_ok(&l, "http://metadata.google.internal/"), "{wide}");
        assert!(!url_ok(&l, "http://[fd00:ec2::254]/"), "{wide}");
    }
}

#[test]
fn a_list_allows_its_hosts_suffixes_and_networks_only() {
    let l = list("api.openai.com, .corp.example, 10.0.0.0/8, 192.168.1.5, [2001:db8::]/32");
    assert!(l.is_restricted());
    for url in [
        "https://api.openai.com/v1",
        "https://API.OpenAI.com./v1",
        "http://llm.corp.example:8000",
        "http://a.b.corp.example",
        "http://10.1.2.3:8080",
        "http://192.168.1.5",
        "http://[2001:db8::1]/",
    ] {
        assert!(url_ok(&l, url), "{url}");
    }
    for url in [
        "http://127.0.0.1:8080",
        "http://192.168.1.6",
        "http://[2001:db9::1]/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let err = l.check_url_str(url).unwrap_err().to_string();
        assert!(
            err.contains("not allowed by --upstream-allowlist"),
            "{url}: {err}"
        );
    }
    // Host names not listed pass the configuration check only when the list has networks:
    // then their addresses decide, when they are resolved.
    assert!(url_ok(&l, "http://unknown.example"));
    let names_only = list("api.openai.com,.corp.example");
    let err = names_only
        .check_url_str("http://evil.example")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`evil.example` is not allowed"), "{err}");
    assert!(!url_ok(&names_only, "http://corp.example.evil.com"));
}

#[test]
fn bad_entries_are_refused_with_what_is_expected() {
    for bad in ["http://x", "a b", "10.0.0.0/33", "..x", "exa mple.com"] {
        let err = UpstreamAllowlist::parse(bad).unwrap_err().to_string();
        assert!(err.contains("is not a host name"), "{bad}: {err}");
    }
    assert_eq!(
        UpstreamAllowlist::parse(" , ").unwrap(),
        UpstreamAllowlist::default()
    );
    assert_eq!(list("*.corp.example"), list(".corp.example"));
}

#[test]
fn resolved_addresses_are_filtered_by_the_list() {
    // A listed name may resolve anywhere but to a metadata service.
    let l = list("api.example.com,10.0.0.0/8");
    assert_eq!(
        l.filter_resolved("api.example.com", [addr("203.0.113.9")])
            .unwrap(),
        [addr("203.0.113.9")]
    );
    let err = l
        .filter_resolved("api.example.com", [addr("169.254.169.254")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("169.254.169.254 (`api.example.com` resolves to it)"),
        "{err}"
    );
    // Another name: only its addresses in a listed network are kept.
    assert_eq!(
        l.filter_resolved("other.example", [addr("127.0.0.1"), addr("10.0.0.5")])
            .unwrap(),
        [addr("10.0.0.5")]
    );
    let err = l
        .filter_resolved("rebind.example", [addr("127.0.0.1")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("127.0.0.1 (`rebind.example` resolves to it) is not allowed"),
        "{err}"
    );
    // The default list: a name rebound to the metadata address is refused.
    let open = UpstreamAllowlist::default();
    assert!(
        open.filter_resolved("rebind.example", [addr("169.254.169.254")])
            .is_err()
    );
    assert!(
        open.filter_resolved("rebind.example", [addr("::ffff:169.254.169.254")])
            .is_err()
    );
}

#[tokio::test]
async fn the_resolver_refuses_localhost_unless_loopback_is_listed() {
    let refused = GuardedResolver::new(Arc::new(list("10.0.0.0/8")));
    let name: Name = "localhost".parse().unwrap();
    let err = refused.resolve(name).await.err().unwrap().to_string();
    assert!(
        err.contains("`localhost` resolves to it) is not allowed"),
        "{err}"
    );

    let allowed = GuardedResolver::new(Arc::new(list("127.0.0.0/8,::1")));
    let addrs: Vec<SocketAddr> = allowed
        .resolve("localhost".parse().unwrap())
        .await
        .unwrap()
        .collect();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
}

#[tokio::test]
async fn the_shared_client_cannot_connect_through_a_refused_name() {
    use portico_testkit::MockUpstream;

    let upstream = MockUpstream::start().await;
    let port = upstream.addr().port();
    let url = format!("http://localhost:{port}/v1/models");
    // 127.0.0.0/8 not listed: `localhost` resolves to 127.0.0.1, which is refused at connect.
    let client = crate::http::build_guarded_client(
        crate::http::HttpOptions::default(),
        Arc::new(list("10.0.0.0/8")),
    )
    .unwrap();
    let err = client.reqwest().get(&url).send().await.unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("is not allowed by --upstream-allowlist"),
        "{text}"
    );
    assert_eq!(upstream.hits(), 0);

    let client = crate::http::build_guarded_client(
        crate::http::HttpOptions::default(),
        Arc::new(list("127.0.0.0/8,::1")),
    )
    .unwrap();
    let resp = client.reqwest().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.hits(), 1);
}
