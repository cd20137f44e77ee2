//! Files at rest: the data dir is `0700` and every file Portico keeps in it `0600`.
//!
//! The data dir holds the catalog (`portico.db`: key hashes, encrypted provider secrets), the
//! request log (`logs.db`, `logs-spill.jsonl`: whole request and response payloads) and
//! perhaps `master.key`. Under the usual umask of 022 they would be created readable by every
//! local user, so nothing here relies on the umask: modes are given explicitly at creation.
//!
//! SQLite creates a database's `-wal`, `-shm` and `-journal` files itself, and its unix VFS
//! gives them the database file's own mode. So [`prepare_sqlite_file`] creates the database
//! file `0600` *before* SQLite opens it (SQLite treats an empty file as a new database), and
//! the companions follow. Data dirs made by older versions are repaired: each file when it
//! is opened, the dir when `portico serve` starts ([`create_data_dir`]); group and other
//! permissions are removed, with a log line saying so.
//!
//! What this is not: a guard against the file's owner or root, or a substitute for an
//! encrypted disk. On non-unix platforms every function here only creates what is missing.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The mode of the data dir and of any directory Portico creates for it.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file Portico creates in the data dir.
pub const FILE_MODE: u32 = 0o600;

/// The files SQLite may keep beside a database, by suffix.
const SQLITE_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Creates the data dir `0700` (with any missing parents), or tightens an existing one that
/// group or others may access. For `portico serve` at start-up.
pub fn create_data_dir(dir: &Path) -> io::Result<()> {
    create_dir_all(dir)?;
    tighten(dir);
    Ok(())
}

/// Creates `dir` and its missing parents `0700`; an existing directory is left as it is
/// (it may be a parent the user shares; the data dir itself is tightened at start-up by
/// [`create_data_dir`]).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)
}

/// Readies `path` for SQLite to open: its directory exists, the database file exists
/// `0600` (created empty if missing, tightened if older), and any `-wal`, `-shm` or
/// `-journal` left beside it is tightened too.
pub fn prepare_sqlite_file(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    // Never truncates: an existing database is only opened to create it if missing.
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    drop(options.open(path)?);
    tighten(path);
    for suffix in SQLITE_COMPANIONS {
        tighten(&with_suffix(path, suffix));
    }
    Ok(())
}

/// Opens `path` for appending, creating it `0600` if missing and tightening it if older.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let file = options.open(path)?;
    tighten(path);
    Ok(file)
}

/// `path` with `suffix` appended to its file name (`logs.db` → `logs.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes group and other permissions from `path`, if it exists and has any. Best effort:
/// a file that cannot be changed (another owner, a read-only mount) is reported in the log
/// and left, since refusing to start would not make it private either.
#[cfg(unix)]
pub fn tighten(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return;
    }
    let private = mode & !0o077;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)) {
        Ok(()) => tracing::info!(
            path = %path.display(),
            "tightened permissions from {mode:04o} to {private:04o}: the data dir holds secrets and request payloads"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            "cannot tighten permissions {mode:04o} (group or others may read it): {e}"
        ),
    }
}

/// Removes group and other permissions from `path` (nothing to do off unix).
#[cfg(not(unix))]
pub fn tighten(_path: &Path) {}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_data_dir_is_created_private_and_an_open_one_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        create_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700, "created parents too");
        chmod(&dir, 0o755);
        create_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // A parent that exists is not ours to change.
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o755);
        create_dir_all(&shared.join("data")).unwrap();
        assert_eq!(mode(&shared), 0o755);
        assert_eq!(mode(&shared.join("data")), 0o700);
    }

    #[test]
    fn sqlite_files_are_created_private_and_older_ones_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("data/x.db");
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
        // An older database and its companions, world-readable, with content.
        std::fs::write(&db, b"not empty").unwrap();
        chmod(&db, 0o644);
        for suffix in SQLITE_COMPANIONS {
            let companion = with_suffix(&db, suffix);
            std::fs::write(&companion, b"x").unwrap();
            chmod(&companion, 0o664);
        }
        prepare_sqlite_file(&db).unwrap();
        assert_eq!(std::fs::read(&db).unwrap(), b"not empty", "never truncated");
        assert_eq!(mode(&db), 0o600);
        for suffix in SQLITE_COMPANIONS {
            assert_eq!(mode(&with_suffix(&db, suffix)), 0o600, "{suffix}");
        }
    }

    #[test]
    fn appended_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spill.jsonl");
        drop(open_append(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        chmod(&path, 0o644);
        drop(open_append(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
    }
}
