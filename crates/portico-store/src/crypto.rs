//! The master key that encrypts provider secrets at rest.
//!
//! A [`MasterKey`] is 32 random bytes used with XChaCha20-Poly1305. It comes from
//! `PORTICO_MASTER_KEY` (standard base64 or hex) or from `<data_dir>/master.key`, which is created
//! on first start. The 24-byte nonce of XChaCha20 is large enough to draw at random for every
//! encryption, so no counter has to be kept.
//!
//! Encrypted blob format: a version byte (`1`), the 24-byte nonce, then ciphertext and the
//! 16-byte tag. The version byte is also the associated data, so it cannot be altered silently.
//!
//! What this is not: a key-management system. Rotating the master key re-encrypts the stored
//! secrets (`SqlStore::rotate_master_key`, run by `portico master-key rotate`); this module
//! gives that command the key's text ([`MasterKey::expose_base64`]) and the key files
//! ([`MasterKey::read_file`], [`MasterKey::write_new_file`]).

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;

use crate::StoreError;

/// The environment variable a master key may come from, named in messages.
const ENV_VAR: &str = "PORTICO_MASTER_KEY";
/// The file a master key is kept in, inside the data dir.
const FILE_NAME: &str = "master.key";
/// The format version of encrypted blobs.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The 32-byte key that encrypts provider secrets at rest (XChaCha20-Poly1305).
///
/// Its `Debug` output shows only where it came from, never the key.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    /// Where the key came from (`PORTICO_MASTER_KEY`, a file path, `generated`), for messages.
    source: String,
}

/// Why a blob could not be decrypted; mapped to a [`StoreError`] by the caller, which knows the
/// table.
#[derive(Debug)]
pub(crate) enum DecryptError {
    /// Not a blob of a format this version writes.
    Malformed(&'static str),
    /// The tag did not verify: another master key, or a tampered blob.
    WrongKey,
}

impl MasterKey {
    /// Parses the value of `PORTICO_MASTER_KEY`: 32 bytes as standard base64 (44 characters) or
    /// as 64 hex digits. Surrounding whitespace is ignored. The error never contains the value.
    pub fn from_env_value(s: &str) -> Result<MasterKey, StoreError> {
        let key = parse_key(s).ok_or_else(|| {
            StoreError::MasterKey(format!(
                "{ENV_VAR} must be 32 bytes written as standard base64 (44 characters) or as \
                 64 hex digits; generate one with `openssl rand -base64 32`"
            ))
        })?;
        Ok(MasterKey {
            key,
            source: ENV_VAR.to_owned(),
        })
    }

    /// Reads `<data_dir>/master.key`, or creates it with a new random key when it is missing.
    ///
    /// The data dir is created if needed. The file holds the key in base64 and is created with
    /// mode 0600 on unix, atomically: it is written under a temporary name and then linked into
    /// place, so a crash never leaves a half-written key, and when two processes race the loser
    /// reads the winner's key.
    pub fn load_or_create(data_dir: &Path) -> Result<MasterKey, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let source = path.display().to_string();
        let io_err = |what: &str, e: io::Error| {
            StoreError::MasterKey(format!("cannot {what} {source}: {e}"))
        };

        crate::private_files::create_dir_all(data_dir)
            .map_err(|e| io_err("create the directory of", e))?;
        match fs::read_to_string(&path) {
            Ok(text) => return MasterKey::from_file_text(&text, source),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", e)),
        }

        let key = MasterKey::generate();
        let text = format!("{}\n", STANDARD.encode(key.key));
        let tmp = data_dir.join(format!(
            ".{FILE_NAME}.{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let written =
            write_private(&tmp, text.as_bytes()).and_then(|()| fs::hard_link(&tmp, &path));
        // The temporary name is never needed again, whatever happened.
        let _ = fs::remove_file(&tmp);
        match written {
            Ok(()) => {
                sync_dir(data_dir);
                tracing::info!(path = %source, "created a new master key");
                Ok(MasterKey { source, ..key })
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(&path).map_err(|e| io_err("read", e))?;
                MasterKey::from_file_text(&text, source)
            }
            Err(e) => Err(io_err("create", e)),
        }
    }

    /// Parses a key given as text (`--new-key`): the forms of `PORTICO_MASTER_KEY`. `what`
    /// names it in messages and is its [`MasterKey::source`]. The error never contains it.
    pub fn from_value(s: &str, what: &str) -> Result<MasterKey, StoreError> {
        let key = parse_key(s).ok_or_else(|| {
            StoreError::MasterKey(format!(
                "{what} must be 32 bytes written as standard base64 (44 characters) or as 64 \
                 hex digits; generate one with `openssl rand -base64 32`"
            ))
        })?;
        Ok(MasterKey {
            key,
            source: what.to_owned(),
        })
    }

    /// Reads an existing key file (never creates one).
    pub fn read_file(path: &Path) -> Result<MasterKey, StoreError> {
        let source = path.display().to_string();
        let text = fs::read_to_string(path)
            .map_err(|e| StoreError::MasterKey(format!("cannot read {source}: {e}")))?;
        MasterKey::from_file_text(&text, source)
    }

    /// Writes this key into `path` in the key file's form (base64 and a newline), which must
    /// not exist, with mode 0600 on unix, synced to disk with its directory entry.
    pub fn write_new_file(&self, path: &Path) -> io::Result<()> {
        write_private(path, format!("{}\n", self.expose_base64()).as_bytes())?;
        if let Some(dir) = path.parent() {
            sync_dir(dir);
        }
        Ok(())
    }

    /// The key as standard base64, the form of `master.key` and `PORTICO_MASTER_KEY`: for the
    /// one place that must store or show it (a rotation's new key).
    pub fn expose_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    /// Whether two keys are the same key (constant time).
    pub fn same_key(&self, other: &MasterKey) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.key[..], &other.key[..]).into()
    }

    /// A new random key (from the operating system's generator).
    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        MasterKey {
            key,
            source: "a generated key".to_owned(),
        }
    }

    /// Where the key came from: `PORTICO_MASTER_KEY`, the path of the key file, or a
    /// description of a generated key. Safe to print.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Encrypts with a fresh random nonce: version byte `1`, 24-byte nonce, ciphertext and tag.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad: &[VERSION],
        };
        #[expect(
            clippy::expect_used,
            reason = "XChaCha20-Poly1305 fails only for plaintexts over 256 GiB"
        )]
        let sealed = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("plaintext within the AEAD length limit");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a blob written by [`MasterKey::encrypt`]. A blob written under another master key
    /// gives [`StoreError::WrongMasterKey`].
    pub fn decrypt(&self, blob: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.decrypt_for("(encrypted value)", blob)
    }

    /// [`MasterKey::decrypt`], naming `table` when the blob is malformed.
    pub(crate) fn decrypt_for(
        &self,
        table: &'static str,
        blob: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        self.try_decrypt(blob).map_err(|e| match e {
            DecryptError::Malformed(detail) => StoreError::Corrupt {
                table,
                detail: detail.to_owned(),
            },
            DecryptError::WrongKey => self.wrong_key(),
        })
    }

    /// The error for data written under another master key.
    pub(crate) fn wrong_key(&self) -> StoreError {
        StoreError::WrongMasterKey {
            path: self.source.clone(),
        }
    }

    fn try_decrypt(&self, blob: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let (&version, rest) = blob
            .split_first()
            .ok_or(DecryptError::Malformed("empty encrypted value"))?;
        if version != VERSION {
            return Err(DecryptError::Malformed(
                "encrypted value of an unknown format version",
            ));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(DecryptError::Malformed("encrypted value too short"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: &[VERSION],
        };
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| DecryptError::WrongKey)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.key.into())
    }

    fn from_file_text(text: &str, source: String) -> Result<MasterKey, StoreError> {
        let key = parse_key(text).ok_or_else(|| {
            StoreError::MasterKey(format!(
                "{source} must hold 32 bytes written as standard base64; restore the original \
                 file, or remove it only if no provider secrets were stored with it"
            ))
        })?;
        warn_if_readable_by_others(&source);
        Ok(MasterKey { key, source })
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("key", &"***")
            .field("source", &self.source)
            .finish()
    }
}

/// 32 bytes from 64 hex digits or standard base64 (padding optional).
fn parse_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let mut key = [0u8; 32];
    if s.len() == 64 && hex::decode_to_slice(s, &mut key).is_ok() {
        return Some(key);
    }
    let bytes = STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .ok()?;
    key = bytes.try_into().ok()?;
    Some(key)
}

/// Creates `path` (which must not exist) readable by its owner only, writes and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the new directory entry durable; best effort, as not every platform can open a
/// directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path,
            "the master key file is readable by other users; run `chmod 600` on it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_written_to_a_file_reads_back_private_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key.new");
        let key = MasterKey::generate();
        key.write_new_file(&path).unwrap();
        let read = MasterKey::read_file(&path).unwrap();
        assert!(read.same_key(&key));
        assert!(!read.same_key(&MasterKey::generate()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // It is never overwritten.
        assert!(MasterKey::generate().write_new_file(&path).is_err());
        let text = key.expose_base64();
        assert!(
            MasterKey::from_value(&text, "--new-key")
                .unwrap()
                .same_key(&key)
        );
        let err = MasterKey::from_value("not-a-key", "--new-key")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--new-key") && !err.contains("not-a-key"),
            "{err}"
        );
        // `Debug` shows where it came from, never the key (a panic message prints `Debug`).
        let debug = format!("{read:?}");
        assert!(!debug.contains(&text), "{debug}");
        assert!(debug.contains("master.key.new"), "{debug}");
    }

    #[test]
    fn encrypt_round_trips_and_uses_fresh_nonces() {
        let key = MasterKey::generate();
        let a = key.encrypt(b"sk-secret");
        let b = key.encrypt(b"sk-secret");
        assert_ne!(a, b, "nonces are random");
        assert_eq!(a[0], 1);
        assert_eq!(a.len(), 1 + 24 + b"sk-secret".len() + 16);
        assert_eq!(key.decrypt(&a).unwrap(), b"sk-secret");
        assert_eq!(key.decrypt(&key.encrypt(b"")).unwrap(), b"");
    }

    #[test]
    fn another_key_or_a_tampered_blob_is_rejected() {
        let key = MasterKey::from_env_value(&"ab".repeat(32)).unwrap();
        let blob = key.encrypt(b"sk-secret");
        let other = MasterKey::generate();
        let err = other.decrypt(&blob).unwrap_err();
        assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");

        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            key.decrypt(&tampered),
            Err(StoreError::WrongMasterKey { .. })
        ));

        let mut versioned = blob;
        versioned[0] = 2;
        assert!(matches!(
            key.decrypt(&versioned),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            key.decrypt(&[1, 2]),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(key.decrypt(&[]), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn env_value_accepts_base64_and_hex_of_the_same_key() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let from_b64 = MasterKey::from_env_value(&STANDARD.encode(&bytes)).unwrap();
        let from_hex = MasterKey::from_env_value(&format!(" {}\n", hex::encode(&bytes))).unwrap();
        assert_eq!(from_b64.key, from_hex.key);
        assert_eq!(from_b64.source(), "PORTICO_MASTER_KEY");
        let upper = MasterKey::from_env_value(&hex::encode_upper(&bytes)).unwrap();
        assert_eq!(upper.key, from_hex.key);
    }

    #[test]
    fn malformed_env_value_is_named_but_not_echoed() {
        let not_hex = "zz".repeat(32); // 64 characters, neither hex nor base64 of 32 bytes
        let too_long = STANDARD.encode([7u8; 33]);
        for bad in [
            "not-a-key-hunter2-hunter2",
            "c2hvcnQ=", // base64 of 5 bytes
            not_hex.as_str(),
            too_long.as_str(),
            "",
        ] {
            let err = MasterKey::from_env_value(bad).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::MasterKey(_)));
            assert!(msg.contains("PORTICO_MASTER_KEY"), "{msg}");
            assert!(msg.contains("base64") && msg.contains("hex"), "{msg}");
            if !bad.is_empty() {
                assert!(!msg.contains(bad), "the value leaked: {msg}");
            }
        }
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let bytes = [0x5au8; 32];
        let key = MasterKey::from_env_value(&STANDARD.encode(bytes)).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&STANDARD.encode(bytes)), "{shown}");
        assert!(!shown.contains(&hex::encode(bytes)), "{shown}");
        assert!(!shown.contains("90, 90"), "{shown}");
        assert!(shown.contains("PORTICO_MASTER_KEY"), "{shown}");
    }

    #[test]
    fn key_file_is_created_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("nested").join("data");
        let first = MasterKey::load_or_create(&data_dir).unwrap();
        let second = MasterKey::load_or_create(&data_dir).unwrap();
        assert_eq!(first.key, second.key);
        let path = data_dir.join("master.key");
        assert_eq!(first.source(), path.display().to_string());

        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(STANDARD.decode(text.trim()).unwrap(), first.key);
        // Only the key file is left behind, no temporary files.
        let names: Vec<_> = fs::read_dir(&data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["master.key"]);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }

        let blob = first.encrypt(b"x");
        assert_eq!(second.decrypt(&blob).unwrap(), b"x");
    }

    #[test]
    fn malformed_key_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "oops-secretish").unwrap();
        let msg = MasterKey::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("master.key"), "{msg}");
        assert!(!msg.contains("oops-secretish"), "{msg}");
        // The bad file is left for the user to fix, not replaced.
        assert_eq!(fs::read_to_string(&path).unwrap(), "oops-secretish");
    }
}
