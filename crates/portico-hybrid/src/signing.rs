//! Snapshot signatures: HMAC-SHA256 over the exact bytes of the body, in the
//! [`SIGNATURE_HEADER`] header, as lowercase hex.
//!
//! The HMAC key is the gateway key's stored hash ([`KeyHash`], the SHA-256 of the token):
//! the control plane has it in its store, the gateway computes it from its token, and it is
//! never sent (the snapshot leaves keys of type `gateway` out, so it does not carry it
//! either). The bytes are verified as received, before they are parsed, so what is verified
//! is exactly what is used and kept.

use hmac::{Hmac, Mac as _};
use portico_core::KeyHash;
use sha2::Sha256;

/// The response header that carries a snapshot's signature.
pub const SIGNATURE_HEADER: &str = "x-portico-signature";

type HmacSha256 = Hmac<Sha256>;

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature came with the body.
    #[error("the snapshot carries no signature (header {SIGNATURE_HEADER})")]
    Missing,
    /// The signature is not 64 hex digits.
    #[error("the snapshot's signature is not 64 hex digits")]
    Malformed,
    /// The signature is not the body's under this gateway's key.
    #[error(
        "the snapshot's signature does not match its body: it was changed on the way, or signed for another gateway key"
    )]
    Mismatch,
}

fn mac(key: &KeyHash) -> HmacSha256 {
    // HMAC pads a key shorter than the hash's 64-byte block with zeros, so the padded block
    // is the same key; taking it whole makes construction infallible.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(&key.0);
    <HmacSha256 as hmac::digest::KeyInit>::new(&block.into())
}

/// The signature of `body` under the gateway key whose hash is `key`, as lowercase hex.
pub fn sign(key: &KeyHash, body: &[u8]) -> String {
    let mut mac = mac(key);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `signature` (hex) against `body` under `key`, in constant time.
pub fn verify(key: &KeyHash, body: &[u8], signature: Option<&str>) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(signature.trim(), &mut tag).map_err(|_| SignatureError::Malformed)?;
    let mut mac = mac(key);
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_own_body_under_its_own_key() {
        let key = KeyHash::of("prt-gw-token");
        let body = br#"{"format":1,"version":3}"#;
        let signature = sign(&key, body);
        assert_eq!(signature.len(), 64);
        assert_eq!(verify(&key, body, Some(&signature)), Ok(()));
        // One byte changed.
        let mut changed = body.to_vec();
        changed[20] = b'4';
        assert_eq!(
            verify(&key, &changed, Some(&signature)),
            Err(SignatureError::Mismatch)
        );
        // Another gateway's key.
        assert_eq!(
            verify(&KeyHash::of("prt-gw-other"), body, Some(&signature)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(&key, body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify(&key, body, Some("not hex")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(&key, body, Some(&signature[..62])),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn signatures_are_plain_hmac_sha256() {
        // The value Python's `hmac.new(b"\x0b" * 32, b"Hi There", hashlib.sha256)` gives:
        // another implementation can check a signature without Portico's code.
        assert_eq!(
            sign(&KeyHash([0x0b; 32]), b"Hi There"),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }
}
