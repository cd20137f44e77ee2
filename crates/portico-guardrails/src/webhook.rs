//! `default.webhook` without the I/O: which addresses a webhook may call (the address
//! guard), what it is sent, and how its answer is read. The engine makes the call.
//!
//! The guard refuses, unless the URL's host (or `host:port`) is on the allow-list:
//! link-local addresses (IPv4 169.254.0.0/16, which holds the cloud metadata service
//! 169.254.169.254, and IPv6 fe80::/10), the other well-known metadata addresses
//! (`fd00:ec2::254`, `100.100.100.200`, `metadata.google.internal`), the unspecified
//! addresses (0.0.0.0 and ::, which reach the local host), and the gateway's own listener
//! (its port on a loopback or its own address), so a guardrail cannot call the admin API.
//! It is checked on the URL's host and again on every address the host resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde_json::{Map, Value, json};

use crate::shape::Hook;

/// Why a webhook address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardError(pub String);

impl std::fmt::Display for GuardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GuardError {}

/// Which addresses a webhook may reach; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct AddressGuard {
    /// The gateway's own listening addresses.
    pub own: Vec<SocketAddr>,
    /// Hosts (`hooks.internal`, `10.0.0.5`) or `host:port`s the guard lets through anyway.
    pub allow: Vec<String>,
}

const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata", "instance-data"];

impl AddressGuard {
    fn allowed(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().unwrap_or(0);
        self.allow.iter().any(|a| {
            a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(&format!("{host}:{port}"))
        })
    }

    /// Checks the URL itself (scheme, host name, a literal address).
    pub fn check_url(&self, url: &url::Url) -> Result<(), GuardError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(GuardError("a webhook must be an http(s) URL".to_owned()));
        }
        if self.allowed(url) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(0);
        match url.host() {
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if METADATA_HOSTS.contains(&name.as_str()) {
                    return Err(GuardError(format!(
                        "the webhook host `{name}` is a cloud metadata service"
                    )));
                }
                Ok(())
            }
            Some(url::Host::Ipv4(ip)) => self.check_addr(SocketAddr::new(IpAddr::V4(ip), port)),
            Some(url::Host::Ipv6(ip)) => self.check_addr(SocketAddr::new(IpAddr::V6(ip), port)),
            None => Err(GuardError("the webhook URL has no host".to_owned())),
        }
    }

    /// Checks the addresses the URL's host resolved to.
    pub fn check_resolved(&self, url: &url::Url, addrs: &[SocketAddr]) -> Result<(), GuardError> {
        if self.allowed(url) {
            return Ok(());
        }
        addrs.iter().try_for_each(|a| self.check_addr(*a))
    }

    fn check_addr(&self, addr: SocketAddr) -> Result<(), GuardError> {
        let ip = match addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let refused = |why: &str| Err(GuardError(format!("the webhook address {addr} is {why}")));
        match ip {
            IpAddr::V4(v4) => {
                if v4.is_link_local() {
                    return refused("link-local (the cloud metadata range)");
                }
                if v4 == Ipv4Addr::new(100, 100, 100, 200) {
                    return refused("a cloud metadata service");
                }
            }
            IpAddr::V6(v6) => {
                if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                    return refused("link-local");
                }
                if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                    return refused("a cloud metadata service");
                }
            }
        }
        if ip.is_unspecified() {
            return refused("unspecified (it reaches this host)");
        }
        for own in &self.own {
            if own.port() == addr.port()
                && (ip == own.ip() || ip.is_loopback() || own.ip().is_unspecified())
            {
                return refused("the gateway's own listener");
            }
        }
        Ok(())
    }
}

/// What a webhook is sent and how its answer is read.
#[derive(Debug, Clone, Copy)]
pub struct Webhook;

impl Webhook {
    /// The JSON a webhook receives: the request (and the answer, after the call) with their
    /// texts, the hook's event name and the request's metadata.
    pub fn body(
        hook: Hook,
        request: &Value,
        request_text: &str,
        response: Option<(&Value, &str)>,
        metadata: Option<&Map<String, Value>>,
    ) -> Value {
        json!({
            "request": {"json": request, "text": request_text},
            "response": response.map(|(json, text)| json!({"json": json, "text": text})),
            "eventType": hook.event(),
            "metadata": metadata,
        })
    }

    /// The verdict in a webhook's answer (`{"verdict": bool}`), if it has one.
    pub fn verdict(answer: &Value) -> Option<bool> {
        answer.get("verdict").and_then(Value::as_bool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn refuses_metadata_link_local_and_the_gateway_itself() {
        let guard = AddressGuard {
            own: vec!["127.0.0.1:8787".parse().unwrap()],
            allow: vec![],
        };
        assert!(
            guard
                .check_url(&url("http://169.254.169.254/latest"))
                .is_err()
        );
        assert!(guard.check_url(&url("http://[fe80::1]/")).is_err());
        assert!(
            guard
                .check_url(&url("http://metadata.google.internal/"))
                .is_err()
        );
        assert!(
            guard
                .check_url(&url("http://127.0.0.1:8787/admin/v1/keys"))
                .is_err()
        );
        assert!(guard.check_url(&url("http://localhost:8787/x")).is_ok());
        assert!(
            guard
                .check_resolved(
                    &url("http://localhost:8787/x"),
                    &["127.0.0.1:8787".parse().unwrap()]
                )
                .is_err()
        );
        assert!(guard.check_url(&url("http://0.0.0.0:9/")).is_err());
        assert!(guard.check_url(&url("http://127.0.0.1:9000/hook")).is_ok());
        assert!(guard.check_url(&url("https://hooks.example.com/v")).is_ok());
        let open = AddressGuard {
            own: guard.own.clone(),
            allow: vec!["169.254.169.254".into()],
        };
        assert!(
            open.check_url(&url("http://169.254.169.254/latest"))
                .is_ok()
        );
    }
}
