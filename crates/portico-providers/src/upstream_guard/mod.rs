//! The SSRF guard: which hosts the gateway may connect to when an admin (catalog file, admin
//! API) or a guardrail sets an outgoing URL, checked when the URL is set and again on every
//! address a host name resolves to when a connection opens.
//!
//! [`UpstreamAllowlist`] holds the entries of `--upstream-allowlist`: host names (`api.x.com`),
//! host suffixes (`.internal.example`, any name ending so), and CIDRs (`10.0.0.0/8`, a single
//! address). Empty (the default), every host is allowed except the cloud metadata services
//! ([`METADATA_ADDRESSES`], [`METADATA_HOSTS`]); with entries, only what they match is. A
//! metadata service stays refused unless an entry names it exactly (its address, or
//! `metadata.google.internal`): a wide CIDR such as `0.0.0.0/0` does not let it through.
//!
//! The connect-time check is [`GuardedResolver`], the shared client's DNS resolver: it resolves
//! the name itself and hands the connector only the addresses the list allows, so a name that
//! resolves to a refused address (DNS rebinding, `localhost` when 127.0.0.0/8 is not listed)
//! cannot be reached. A URL with a literal address is not resolved, so it is checked when it
//! is set ([`UpstreamAllowlist::check_url`]); it cannot change afterwards.
//!
//! What it is not: the webhook guard of `portico-guardrails` (which also keeps a guardrail
//! off the gateway's own listener); a webhook passes both.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Cloud metadata addresses: AWS, GCP and Azure's 169.254.169.254, AWS's IPv6 fd00:ec2::254,
/// Alibaba's 100.100.100.200.
pub const METADATA_ADDRESSES: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

/// Cloud metadata host names.
pub const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog"];

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// This host name exactly (lowercase, no trailing dot).
    Host(String),
    /// Any host name ending with this (starts with a dot).
    Suffix(String),
    /// Any address in this network.
    Net(IpNet),
}

/// The hosts outgoing connections may reach (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamAllowlist {
    entries: Vec<Entry>,
}

/// Why a URL or an address is refused; its text says what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardError(pub String);

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GuardError {}

const FLAG: &str = "--upstream-allowlist (PORTICO_UPSTREAM_ALLOWLIST)";

impl UpstreamAllowlist {
    /// Parses a comma-separated list: `host`, `.suffix`, `CIDR` or a single address. Empty or
    /// blank: the default (everything but the metadata services).
    pub fn parse(list: &str) -> Result<UpstreamAllowlist, GuardError> {
        let mut entries = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            // `[::1]` and `[fd00::]/8`: IPv6 as in a URL.
            let unbracketed = raw.replace(['[', ']'], "");
            let item = unbracketed.as_str();
            let entry = if let Ok(net) = item.parse::<IpNet>() {
                Entry::Net(net.trunc())
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                Entry::Net(IpNet::from(ip))
            } else if let Some(suffix) = item.strip_prefix('.').or_else(|| item.strip_prefix("*."))
            {
                Entry::Suffix(format!(".{}", host_name(suffix, raw)?))
            } else {
                Entry::Host(host_name(item, raw)?)
            };
            entries.push(entry);
        }
        Ok(UpstreamAllowlist { entries })
    }

    /// Whether the list has entries (else only the metadata services are refused).
    pub fn is_restricted(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Checks a URL when it is set: its scheme, a literal address fully, a host name as far as
    /// a name can be judged before it is resolved.
    pub fn check_url(&self, url: &url::Url) -> Result<(), GuardError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(GuardError(format!(
                "`{}` is not an http(s) URL",
                url.scheme()
            )));
        }
        match url.host() {
            Some(url::Host::Domain(name)) => self.check_name(name),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip), None),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip), None),
            None => Err(GuardError("the URL has no host".to_owned())),
        }
    }

    /// [`UpstreamAllowlist::check_url`] on text.
    pub fn check_url_str(&self, url: &str) -> Result<(), GuardError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| GuardError(format!("`{url}` is not a valid URL: {e}")))?;
        self.check_url(&parsed)
    }

    /// A host name before it is resolved: a metadata name unless listed exactly; with a
    /// list, a name it matches, or any name when it has networks (the addresses decide).
    fn check_name(&self, name: &str) -> Result<(), GuardError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.check_ip(ip, None);
        }
        let exact = self.entries.contains(&Entry::Host(name.clone()));
        if METADATA_HOSTS.contains(&name.as_str()) && !exact {
            return Err(GuardError(format!(
                "the host `{name}` is a cloud metadata service; list it exactly in {FLAG} to allow it"
            )));
        }
        if !self.is_restricted() || self.name_listed(&name) || self.has_networks() {
            return Ok(());
        }
        Err(GuardError(format!(
            "the host `{name}` is not allowed by {FLAG}; add it (or a suffix or network of it) there"
        )))
    }

    fn name_listed(&self, name: &str) -> bool {
        self.entries.iter().any(|e| match e {
            Entry::Host(host) => host == name,
            Entry::Suffix(suffix) => name.ends_with(suffix.as_str()),
            Entry::Net(_) => false,
        })
    }

    fn has_networks(&self) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::Net(_)))
    }

    /// One address, reached directly or through `name`.
    fn check_ip(&self, ip: IpAddr, name: Option<&str>) -> Result<(), GuardError> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let through = name
            .map(|n| format!(" (`{n}` resolves to it)"))
            .unwrap_or_default();
        if METADATA_ADDRESSES.contains(&ip) {
            let exact = self
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Net(net) if net.prefix_len() == net.max_prefix_len() && net.addr() == ip));
            if exact {
                return Ok(());
            }
            return Err(GuardError(format!(
                "the address {ip}{through} is a cloud metadata service; list it exactly in {FLAG} to allow it"
            )));
        }
        if !self.is_restricted()
            || name.is_some_and(|n| self.name_listed(n))
            || self
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Net(net) if net.contains(&ip)))
        {
            return Ok(());
        }
        Err(GuardError(format!(
            "the address {ip}{through} is not allowed by {FLAG}; add it (or its network) there"
        )))
    }

    /// The addresses `name` resolved to that may be connected to; an error naming the first
    /// refused one when none may.
    pub fn filter_resolved(
        &self,
        name: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, GuardError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in addrs {
            match self.check_ip(addr.ip(), Some(&name)) {
                Ok(()) => allowed.push(addr),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(GuardError(format!("`{name}` resolved to no address"))),
            (false, _) => Ok(allowed),
        }
    }
}

/// A host name entry, lowercase, checked for the characters a host name may have.
fn host_name(s: &str, raw: &str) -> Result<String, GuardError> {
    let s = s.trim_end_matches('.').to_ascii_lowercase();
    let valid = !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if valid {
        Ok(s)
    } else {
        Err(GuardError(format!(
            "{FLAG}: `{raw}` is not a host name (`api.example.com`), a suffix (`.example.com`), a network (`10.0.0.0/8`) or an address"
        )))
    }
}

/// The shared client's DNS resolver: the system's (`getaddrinfo`, through tokio), keeping only
/// the addresses the allow-list allows.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allowlist: Arc<UpstreamAllowlist>,
}

impl GuardedResolver {
    /// A resolver that checks every resolved address against `allowlist`.
    pub fn new(allowlist: Arc<UpstreamAllowlist>) -> GuardedResolver {
        GuardedResolver { allowlist }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowlist = Arc::clone(&self.allowlist);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: the connector sets the URL's port on each address.
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = allowlist.filter_resolved(&host, resolved)?;
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests;
