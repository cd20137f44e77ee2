//! `portico master-key rotate`: every provider secret re-encrypted under a new master key,
//! offline (every process using the database stopped), in an order that leaves, whatever
//! point a crash stops it at, a state that one of the two keys opens (docs/security.md):
//!
//! 1. The current key opens the database (its canary is checked), else nothing is done.
//! 2. With a key file: the new key is written to `master.key.new` (0600, synced) first, so it
//!    is on disk before anything is encrypted under it. With `PORTICO_MASTER_KEY`: a
//!    generated new key is printed first, for the same reason.
//! 3. One transaction re-encrypts every secret and the canary (`SqlStore::rotate_master_key`):
//!    before its commit the old key opens everything, after it the new one.
//! 4. With a key file: `master.key.new` is renamed over `master.key` (atomic).
//!
//! A crash between 3 and 4 leaves the database under the new key with `master.key` still the
//! old one: `portico serve` then fails saying so, and running this command again finishes the
//! rotation (it finds that `master.key.new` opens the database and renames it into place).

use std::path::{Path, PathBuf};

use portico_store::{MasterKey, SqlStore, StoreError};

use crate::Fatal;
use crate::cli::MasterKeyRotateArgs;

const KEY_FILE: &str = "master.key";
const NEW_KEY_FILE: &str = "master.key.new";
const DEFAULT_DATA_DIR: &str = ".portico";

/// Where the current key comes from.
enum KeySource {
    /// `PORTICO_MASTER_KEY`: the new key is printed, not stored.
    Env,
    /// The data dir's `master.key`: replaced by the new key.
    File(PathBuf),
}

/// Runs `portico master-key rotate`.
pub(crate) async fn rotate(args: MasterKeyRotateArgs) -> Result<(), Fatal> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let env_key = std::env::var("PORTICO_MASTER_KEY")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| MasterKey::from_env_value(&v))
        .transpose()
        .map_err(|e| Fatal::usage(e.to_string()))?;
    let database_url = args.database_url.as_deref().filter(|u| !u.is_empty());
    let (current, source) = match env_key {
        Some(key) => (key, KeySource::Env),
        None if database_url.is_some() => {
            return Err(Fatal::usage(
                "PORTICO_DATABASE_URL needs PORTICO_MASTER_KEY: the current master key of the shared database",
            ));
        }
        None => {
            let path = data_dir.join(KEY_FILE);
            if !path.exists() {
                return Err(Fatal::usage(format!(
                    "no master key to rotate: PORTICO_MASTER_KEY is not set and {} does not exist (is --data-dir right?)",
                    path.display()
                )));
            }
            let key = MasterKey::read_file(&path).map_err(|e| Fatal::other(e.to_string()))?;
            (key, KeySource::File(path))
        }
    };
    let new = match args.new_key.as_deref().filter(|k| !k.is_empty()) {
        Some(text) => Some(
            MasterKey::from_value(text, "--new-key (PORTICO_NEW_MASTER_KEY)")
                .map_err(|e| Fatal::usage(e.to_string()))?,
        ),
        None => None,
    };
    if new.as_ref().is_some_and(|n| n.same_key(&current)) {
        return Err(Fatal::usage(
            "the new master key is the current one; give another, or none to have one generated",
        ));
    }

    let store = match open(database_url, &data_dir, current.clone()).await {
        Ok(store) => store,
        Err(StoreError::WrongMasterKey { .. }) if matches!(source, KeySource::File(_)) => {
            return finish_interrupted(database_url, &data_dir).await;
        }
        Err(e) => return Err(Fatal::other(format!("cannot open the database: {e}"))),
    };

    let generated = new.is_none();
    let new = new.unwrap_or_else(MasterKey::generate);
    match &source {
        KeySource::File(_) => {
            let pending = data_dir.join(NEW_KEY_FILE);
            // The current key opened the database, so a leftover `master.key.new` is from a
            // rotation that never committed: it opens nothing.
            let _ = std::fs::remove_file(&pending);
            new.write_new_file(&pending)
                .map_err(|e| Fatal::other(format!("cannot write {}: {e}", pending.display())))?;
        }
        KeySource::Env if generated => out(&format!(
            "portico: new master key (not in force until this command says so; store it now): {}",
            new.expose_base64()
        )),
        KeySource::Env => {}
    }

    let report = store.rotate_master_key(&new).await;
    store.close().await;
    if report.is_err() && matches!(source, KeySource::File(_)) {
        // Nothing was encrypted under it: it must not be mistaken for the database's key.
        let _ = std::fs::remove_file(data_dir.join(NEW_KEY_FILE));
    }
    let report = report.map_err(|e| {
        Fatal::other(format!(
            "the rotation failed and changed nothing (the current key still opens everything): {e}"
        ))
    })?;
    let what = format!(
        "{} encrypted values of {} providers re-encrypted",
        report.values, report.providers
    );
    match source {
        KeySource::File(path) => {
            install(&data_dir.join(NEW_KEY_FILE), &path)?;
            out(&format!(
                "portico: master key rotated ({what}); the new key is in {}: back it up with the database",
                path.display()
            ));
        }
        KeySource::Env => out(&format!(
            "portico: master key rotated ({what}); set PORTICO_MASTER_KEY to the {} key in every process before starting it: the old key no longer opens the database",
            if generated { "new" } else { "given" }
        )),
    }
    Ok(())
}

/// The database, on `url` or in the data dir (which must hold one: rotating creates nothing).
async fn open(url: Option<&str>, data_dir: &Path, key: MasterKey) -> Result<SqlStore, StoreError> {
    match url {
        Some(url) => SqlStore::connect(url, key).await,
        None => {
            let path = data_dir.join("portico.db");
            if !path.exists() {
                return Err(StoreError::MasterKey(format!(
                    "{} does not exist (is --data-dir right?)",
                    path.display()
                )));
            }
            SqlStore::open(&path, key).await
        }
    }
}

/// The current key file does not open the database: a rotation committed but was stopped
/// before its key file was renamed into place. When `master.key.new` opens it, finish that.
async fn finish_interrupted(url: Option<&str>, data_dir: &Path) -> Result<(), Fatal> {
    let pending = data_dir.join(NEW_KEY_FILE);
    let wrong = || {
        Fatal::other(format!(
            "the master key in {} does not open the database, and no interrupted rotation left a key that does ({}); restore the key file the database was written with",
            data_dir.join(KEY_FILE).display(),
            pending.display()
        ))
    };
    let Ok(new) = MasterKey::read_file(&pending) else {
        return Err(wrong());
    };
    match open(url, data_dir, new).await {
        Ok(store) => store.close().await,
        Err(_) => return Err(wrong()),
    }
    let path = data_dir.join(KEY_FILE);
    install(&pending, &path)?;
    out(&format!(
        "portico: finished an interrupted rotation: the database was already under the key of {}, now in {}; run the command again to rotate once more",
        pending.display(),
        path.display()
    ));
    Ok(())
}

/// Renames `pending` over `path`, atomically, and makes the rename durable.
fn install(pending: &Path, path: &Path) -> Result<(), Fatal> {
    std::fs::rename(pending, path).map_err(|e| {
        Fatal::other(format!(
            "the database is now under the new key, but {} could not be renamed to {}: {e}; rename it by hand",
            pending.display(),
            path.display()
        ))
    })?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[expect(clippy::print_stdout, reason = "the command's output")]
fn out(line: &str) {
    println!("{line}");
}
