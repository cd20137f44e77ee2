//! The embedded files and the build's asset version.
//!
//! The version is a hash of every asset, computed at compile time, so a URL under
//! `/assets/{version}/` names exactly one content and may be cached forever. Modules import
//! each other by relative path (`./api.js`), so they all resolve under the same version.

use std::sync::LazyLock;

/// One embedded file.
pub(crate) struct Asset {
    /// The file name under `/assets/{version}/`.
    pub(crate) name: &'static str,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Its bytes.
    pub(crate) body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

/// Every file the page loads. The page itself is [`index_html`].
pub(crate) static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("chart.js", JS),
    asset!("login.js", JS),
    asset!("logs.js", JS),
    asset!("detail.js", JS),
    asset!("analytics.js", JS),
    asset!("providers.js", JS),
    asset!("models.js", JS),
    asset!("keys.js", JS),
    asset!("configs.js", JS),
    asset!("budgets.js", JS),
];

const INDEX_TEMPLATE: &str = include_str!("../assets/index.html");

/// FNV-1a over every asset and the page, folded at compile time.
const VERSION_HASH: u64 = {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < ASSETS.len() {
        hash = fnv1a(hash, ASSETS[i].body);
        i += 1;
    }
    fnv1a(hash, INDEX_TEMPLATE.as_bytes())
};

const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

static VERSION: LazyLock<String> = LazyLock::new(|| format!("{VERSION_HASH:016x}"));

static INDEX: LazyLock<String> = LazyLock::new(|| INDEX_TEMPLATE.replace("{{version}}", version()));

/// This build's asset version: 16 hex digits.
pub(crate) fn version() -> &'static str {
    &VERSION
}

/// The page, with its asset URLs pointing at this build's version.
pub(crate) fn index_html() -> &'static str {
    &INDEX
}

/// The asset named `name`, if this build has it.
pub(crate) fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}
