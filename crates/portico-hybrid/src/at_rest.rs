//! The gateway's copy of the last snapshot, in its data dir: encrypted, authenticated,
//! written atomically.
//!
//! The snapshot holds provider secrets, so the file (`snapshot.enc`) is sealed with
//! XChaCha20-Poly1305 (ChaCha20-Poly1305 with a 24-byte nonce, which is safe to draw at
//! random for every write; the file is rewritten on every catalog change) under a key
//! derived from the gateway's token: HMAC-SHA256 keyed by the token over a fixed label. Not
//! the token's SHA-256, which is the signing key and the stored key hash; the token itself
//! is not in the data dir. Whoever has the data dir but not the token reads nothing.
//!
//! File layout: `PSNAP1` (6 bytes, also the AEAD's associated data), the 24-byte nonce,
//! then the ciphertext of the control plane's signature (64 hex characters) followed by the
//! document's bytes exactly as received. Loading decrypts (any change to the file fails the
//! AEAD tag), then verifies the signature as if the snapshot had just arrived.
//!
//! Writes go to a temporary file (`0600`, synced) renamed over the old one, so a crash
//! leaves the old snapshot or the new one, never half of one.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac as _};
use portico_core::KeyHash;
use rand::RngCore as _;
use sha2::Sha256;

use crate::document::{DocumentError, SnapshotDocument};
use crate::signing::{self, SignatureError};

/// The file name of the snapshot in the data dir.
pub const SNAPSHOT_FILE: &str = "snapshot.enc";

const MAGIC: &[u8; 6] = b"PSNAP1";
const NONCE_LEN: usize = 24;
const SIGNATURE_LEN: usize = 64;
/// The label the at-rest key is derived under (changing it orphans every file).
const KEY_LABEL: &[u8] = b"portico-hybrid snapshot at rest v1";

/// A snapshot whose signature was checked: its bytes, signature and parsed document.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The document's bytes exactly as the control plane signed them.
    pub body: Vec<u8>,
    /// The signature, lowercase hex.
    pub signature: String,
    /// The parsed document.
    pub document: SnapshotDocument,
}

impl Verified {
    /// Verifies `signature` over `body` under `key` (the token's hash), then parses it.
    pub fn check(
        key: &KeyHash,
        body: Vec<u8>,
        signature: Option<&str>,
    ) -> Result<Verified, VerifyError> {
        signing::verify(key, &body, signature)?;
        let document = SnapshotDocument::parse(&body)?;
        Ok(Verified {
            body,
            signature: signature.unwrap_or_default().trim().to_ascii_lowercase(),
            document,
        })
    }
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Its signature did not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// It is not a document this version reads.
    #[error(transparent)]
    Document(#[from] DocumentError),
}

/// Why the snapshot file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// Reading or writing it failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The file does not decrypt: it was changed, damaged, or written with another token.
    #[error(
        "{path} was changed or is damaged, or was written by a gateway with another token: it does not decrypt with this token's key"
    )]
    Tampered {
        /// The file.
        path: String,
    },
    /// It decrypted, but what it holds is not a verified snapshot.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        source: VerifyError,
    },
}

/// The key snapshots are sealed with, derived from the token.
#[derive(Clone)]
pub struct AtRestKey([u8; 32]);

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AtRestKey(***)")
    }
}

impl AtRestKey {
    /// The key for `token`.
    pub fn from_token(token: &str) -> AtRestKey {
        // HMAC accepts keys of any length; the error arm cannot happen.
        let mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(token.as_bytes());
        let mut key = [0u8; 32];
        if let Ok(mut mac) = mac {
            mac.update(KEY_LABEL);
            key.copy_from_slice(&mac.finalize().into_bytes());
        }
        AtRestKey(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals `signature` and `body` into the file's bytes.
    pub fn seal(&self, signature: &str, body: &[u8]) -> Result<Vec<u8>, io::Error> {
        if signature.len() != SIGNATURE_LEN {
            return Err(io::Error::other(
                "a snapshot signature is 64 hex characters",
            ));
        }
        let mut plain = Vec::with_capacity(SIGNATURE_LEN + body.len());
        plain.extend_from_slice(signature.as_bytes());
        plain.extend_from_slice(body);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: MAGIC,
                },
            )
            .map_err(|_| io::Error::other("the snapshot could not be encrypted"))?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a file's bytes into (signature, body); `None` when they do not decrypt.
    pub fn open(&self, bytes: &[u8]) -> Option<(String, Vec<u8>)> {
        let rest = bytes.strip_prefix(MAGIC)?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: MAGIC,
                },
            )
            .ok()?;
        if plain.len() < SIGNATURE_LEN {
            return None;
        }
        let (signature, body) = plain.split_at(SIGNATURE_LEN);
        Some((String::from_utf8(signature.to_vec()).ok()?, body.to_vec()))
    }
}

/// The snapshot file of a gateway's data dir.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    path: PathBuf,
    key: AtRestKey,
    /// The token's hash, which the snapshot's signature is checked with.
    signing_key: KeyHash,
}

impl SnapshotFile {
    /// `snapshot.enc` in `data_dir`, for the gateway with `token`.
    pub fn new(data_dir: &Path, token: &str) -> SnapshotFile {
        SnapshotFile {
            path: data_dir.join(SNAPSHOT_FILE),
            key: AtRestKey::from_token(token),
            signing_key: KeyHash::of(token),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The snapshot kept by an earlier run, decrypted and verified; `None` when there is
    /// none.
    pub fn load(&self) -> Result<Option<Verified>, SnapshotFileError> {
        let path = self.path.display().to_string();
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SnapshotFileError::Io { path, source }),
        };
        let (signature, body) = self
            .key
            .open(&bytes)
            .ok_or_else(|| SnapshotFileError::Tampered { path: path.clone() })?;
        Verified::check(&self.signing_key, body, Some(&signature))
            .map(Some)
            .map_err(|source| SnapshotFileError::Invalid { path, source })
    }

    /// Keeps `snapshot`, replacing the previous one atomically.
    pub fn save(&self, snapshot: &Verified) -> Result<(), SnapshotFileError> {
        let io = |source| SnapshotFileError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let bytes = self
            .key
            .seal(&snapshot.signature, &snapshot.body)
            .map_err(io)?;
        write_atomic(&self.path, &bytes).map_err(io)
    }
}

/// Writes `bytes` to `path` through a `0600` temporary file in the same directory, synced,
/// then renamed over `path`; the directory is synced so the rename survives a crash.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::tests::sample;

    fn verified(token: &str) -> Verified {
        let body = serde_json::to_vec(&sample(7)).unwrap();
        let signature = signing::sign(&KeyHash::of(token), &body);
        Verified::check(&KeyHash::of(token), body, Some(&signature)).unwrap()
    }

    #[test]
    fn the_file_round_trips_and_holds_no_secret_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path(), "prt-gw-token");
        assert!(file.load().unwrap().is_none(), "no file yet");
        let snapshot = verified("prt-gw-token");
        file.save(&snapshot).unwrap();
        let bytes = std::fs::read(file.path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("sk-secret-provider-key"),
            "encrypted at rest"
        );
        assert!(!text.contains("\"providers\""));
        let back = file.load().unwrap().unwrap();
        assert_eq!(back.body, snapshot.body);
        assert_eq!(back.document.version, 7);
        // Saved twice: the same snapshot under a fresh nonce, atomically replaced.
        file.save(&snapshot).unwrap();
        assert_ne!(std::fs::read(file.path()).unwrap(), bytes);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [SNAPSHOT_FILE], "no temporary file is left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_changed_file_or_another_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path(), "prt-gw-token");
        file.save(&verified("prt-gw-token")).unwrap();
        let mut bytes = std::fs::read(file.path()).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        std::fs::write(file.path(), &bytes).unwrap();
        let err = file.load().unwrap_err();
        assert!(matches!(err, SnapshotFileError::Tampered { .. }), "{err}");
        assert!(
            err.to_string().contains("was changed or is damaged"),
            "{err}"
        );

        file.save(&verified("prt-gw-token")).unwrap();
        let other = SnapshotFile::new(dir.path(), "prt-gw-another");
        assert!(matches!(
            other.load().unwrap_err(),
            SnapshotFileError::Tampered { .. }
        ));
        std::fs::write(file.path(), b"PSNAP1").unwrap();
        assert!(matches!(
            file.load().unwrap_err(),
            SnapshotFileError::Tampered { .. }
        ));
    }

    #[test]
    fn a_sealed_snapshot_with_a_wrong_signature_is_refused_after_decryption() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path(), "prt-gw-token");
        // Signed for another gateway, sealed under this one's key.
        let mut forged = verified("prt-gw-other");
        forged.signature = signing::sign(&KeyHash::of("prt-gw-other"), &forged.body);
        file.save(&forged).unwrap();
        let err = file.load().unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotFileError::Invalid {
                    source: VerifyError::Signature(SignatureError::Mismatch),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_key_depends_on_the_token_and_is_not_its_hash() {
        let a = AtRestKey::from_token("prt-gw-a");
        assert_eq!(a.0, AtRestKey::from_token("prt-gw-a").0);
        assert_ne!(a.0, AtRestKey::from_token("prt-gw-b").0);
        assert_ne!(a.0, KeyHash::of("prt-gw-a").0);
        assert_eq!(format!("{a:?}"), "AtRestKey(***)");
    }
}
