//! Gateway key secrets: generation, hashing, and a redacting wrapper for provider secrets.
//!
//! Gateway keys are 256-bit random strings, so a single SHA-256 is the right hash: a slow
//! password hash (argon2, bcrypt) protects low-entropy secrets against guessing, which a
//! random 256-bit key does not need, and it would cost milliseconds on every request.
//! GitHub and Stripe tokens are stored the same way.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The prefix of every generated gateway key, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "prt-";

/// The SHA-256 of a gateway key secret: what the store keeps instead of the secret.
///
/// Its equality is constant-time ([`KeyHash::ct_eq`]), so the snapshot's hash-map probe,
/// which compares the presented key's hash with the stored ones in its bucket, takes the same
/// time however many leading bytes match. That probe would be no timing oracle even with a
/// plain `memcmp`: what is compared is the SHA-256 of the presented secret, so an attacker
/// who learns how many leading hash bytes matched learns nothing about the next secret to
/// try (choosing a secret whose hash has a given prefix costs a preimage search), and
/// `HashMap`'s SipHash with a random per-process key keeps the bucket itself unpredictable.
#[derive(Clone, Copy, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl PartialEq for KeyHash {
    fn eq(&self, other: &KeyHash) -> bool {
        self.ct_eq(other)
    }
}

// By hand because `PartialEq` is: the same bytes as the derived `Hash`, so equal hashes (the
// same bytes) still hash alike.
impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl KeyHash {
    /// Hashes a presented secret.
    pub fn of(secret: &str) -> KeyHash {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Compares in constant time (what `==` does too).
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lowercase hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<KeyHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(KeyHash(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

/// Whether two secrets are equal, in time that depends on neither their contents nor their
/// lengths: both are hashed with SHA-256 and the digests compared with `subtle`. For a
/// secret held as text and compared directly (the metrics token); gateway keys are compared
/// by [`KeyHash`]. A plain `==` stops at the first differing byte, and `subtle`'s slice
/// comparison at a length mismatch, which would tell a prober the secret's length.
pub fn secrets_equal(presented: &str, expected: &str) -> bool {
    KeyHash::of(presented).ct_eq(&KeyHash::of(expected))
}

/// Generates a new gateway key: `prt-<label>-<43 chars of base64url of 32 random bytes>`.
pub fn generate_key(label: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{label}-{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A short hint of a key for listings, revealing almost nothing: the last four characters,
/// after the non-secret `prt-<label>-` prefix of a generated key (`prt-svc-…x9Qa`). Keys
/// from files may be as short as 16 characters, so no more than four are ever shown.
pub fn key_hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    let generated_prefix = secret
        .strip_prefix(KEY_PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .filter(|(label, random)| !label.is_empty() && random.len() >= 32)
        .map(|(label, _)| format!("{KEY_PREFIX}{label}-"));
    match generated_prefix {
        Some(prefix) => format!("{prefix}…{tail}"),
        None => format!("…{tail}"),
    }
}

/// A secret string (a provider API key, a gateway key from a file) that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_prefixed() {
        let a = generate_key("admin");
        let b = generate_key("admin");
        assert_ne!(a, b);
        assert!(a.starts_with("prt-admin-"), "{a}");
        assert_eq!(a.len(), "prt-admin-".len() + 43);
    }

    #[test]
    fn hash_hex_round_trips() {
        let h = KeyHash::of("prt-x-secret");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert!(h.ct_eq(&KeyHash::of("prt-x-secret")));
        assert!(!h.ct_eq(&KeyHash::of("prt-x-other")));
        assert_eq!(KeyHash::from_hex("zz"), None);
    }

    #[test]
    fn key_hash_equality_is_the_constant_time_comparison() {
        let a = KeyHash::of("prt-x-secret");
        let mut b = a;
        assert!(a == b && a.ct_eq(&b));
        // A difference in the last byte only, and in the first only.
        b.0[31] ^= 1;
        assert!(a != b && !a.ct_eq(&b));
        let mut c = a;
        c.0[0] ^= 0x80;
        assert!(a != c && !a.ct_eq(&c));
        // Still usable as a map key.
        let map = std::collections::HashMap::from([(a, 1)]);
        assert_eq!(map.get(&KeyHash::of("prt-x-secret")), Some(&1));
        assert_eq!(map.get(&b), None);
    }

    #[test]
    fn secrets_equal_compares_whole_secrets_of_any_length() {
        assert!(secrets_equal("metrics-token-123", "metrics-token-123"));
        assert!(!secrets_equal("metrics-token-124", "metrics-token-123"));
        assert!(!secrets_equal("metrics-token-12", "metrics-token-123"));
        assert!(!secrets_equal("metrics-token-1234", "metrics-token-123"));
        assert!(!secrets_equal("", "metrics-token-123"));
        assert!(secrets_equal("", ""));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let h = KeyHash::of("sk-very-secret");
        assert!(!format!("{h:?}").contains("sk-very"));
    }

    #[test]
    fn hints_show_at_most_four_secret_characters() {
        let generated = generate_key("svc");
        let hint = key_hint(&generated);
        assert!(hint.starts_with("prt-svc-…"), "{hint}");
        assert!(generated.ends_with(&hint["prt-svc-…".len()..]));
        assert_eq!(key_hint("my-fixed-secret-key-1234"), "…1234");
        assert_eq!(key_hint("abc"), "…abc");
    }
}
