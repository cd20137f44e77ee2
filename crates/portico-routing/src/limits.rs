//! Amplification bounds: how much upstream work one client request may cause (spec §13).
//!
//! Without them a config is a multiplier: an inline `x-portkey-config` with 15,000 fallback
//! targets made 15,000 upstream calls for one request, and its one log record held 2.5 MB of
//! attempts. Both bounds are far above what a real config needs (a few regions, a few
//! retries) and low enough that no request can turn one call into a flood.
//!
//! Both are process-wide settings with these defaults, set once at start from
//! `--max-config-targets` and `--max-upstream-attempts` ([`set_limits`]) and read with
//! [`max_targets`] and [`max_attempts`].
//!
//! - [`MAX_TARGETS`] is checked when a config is parsed ([`crate::RoutingConfig::parse`]),
//!   so it applies to every config wherever it comes from: `x-portkey-config`, the catalog
//!   file, the admin API, a key's attached config (and the merge of a header over it).
//! - [`MAX_ATTEMPTS`] is enforced by the engine's dispatcher, which counts every upstream
//!   try of a request, retries and fallbacks together, and stops with the last error.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The default of the most targets a routing config may hold: every entry of every `targets` array,
/// nested groups and their members all counted. A config beyond it is a 400 that names the
/// limit and its count. 64 covers any real fallback chain or load-balancing pool with room
/// to spare; a config near it would already be hard to reason about.
pub const MAX_TARGETS: usize = 64;

/// The default of the most upstream attempts one request makes, retries and fallbacks together. When the
/// budget is spent the request is answered with the last attempt's error (saying the budget
/// was spent) even if the config had more to try. 16 is, for example, a primary with 5
/// retries, a backup with 5 retries and a few more fallbacks; a request that has failed 16
/// times will rarely be saved by the 17th, and each extra try costs the client time and the
/// upstream load.
pub const MAX_ATTEMPTS: usize = 16;

static TARGETS: AtomicUsize = AtomicUsize::new(MAX_TARGETS);
static ATTEMPTS: AtomicUsize = AtomicUsize::new(MAX_ATTEMPTS);

/// Sets both bounds for the process (at start, before any config is parsed); each is at
/// least 1.
pub fn set_limits(max_targets: usize, max_attempts: usize) {
    TARGETS.store(max_targets.max(1), Ordering::Relaxed);
    ATTEMPTS.store(max_attempts.max(1), Ordering::Relaxed);
}

/// The most targets a config may hold in this process ([`MAX_TARGETS`] unless set).
pub fn max_targets() -> usize {
    TARGETS.load(Ordering::Relaxed)
}

/// The most upstream attempts one request makes in this process ([`MAX_ATTEMPTS`] unless
/// set).
pub fn max_attempts() -> usize {
    ATTEMPTS.load(Ordering::Relaxed)
}
