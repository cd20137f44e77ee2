//! Opening a [`SqlStore`]: the pool for each engine, the engine's migrations, the master-key
//! check.
//!
//! Both engines are reached through sqlx's `Any` driver, which takes only URLs: a SQLite file
//! is opened through a `sqlite://` URL built from its path, and the settings `Any` cannot
//! carry in a URL (WAL, `synchronous`) are set on each new connection.

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use portico_core::SystemClock;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;

use super::{Backend, SqlStore, verify_master_key};
use crate::{MasterKey, StoreError};

/// SQLite has one writer at a time; a few connections let reads proceed beside it.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// PostgreSQL: enough for the admin API's writes and the reads of a snapshot reload beside
/// them, small enough that many processes stay well under the server's `max_connections`.
const POSTGRES_MAX_CONNECTIONS: u32 = 8;
/// How long a caller waits for a PostgreSQL connection (all in use, or the server slow to
/// answer) before failing, rather than hanging a request or the start.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl SqlStore {
    /// Opens (creating if missing, with its parent directory) the SQLite database file at
    /// `path`: WAL journal, `synchronous=NORMAL`, a 5 s busy timeout, foreign keys on. Runs the
    /// migrations, then verifies `master` against the canary written on first open: a database
    /// created under another master key gives [`StoreError::WrongMasterKey`].
    ///
    /// The file is created `0600` before SQLite opens it, so its `-wal` and `-shm` are too
    /// (SQLite gives them the database's mode); an older, looser file is tightened.
    pub async fn open(path: &Path, master: MasterKey) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        crate::private_files::prepare_sqlite_file(path).map_err(sqlx::Error::Io)?;
        let url = sqlite_file_url(path)?;
        // The busy timeout (5 s) and foreign keys are sqlx's SQLite defaults; the journal
        // settings are not, and a URL cannot give them.
        let pool = AnyPoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        SqlStore::init(pool, Backend::Sqlite, master).await
    }

    /// Opens a private in-memory SQLite database, for tests and throwaway runs. Everything is
    /// lost when the store is dropped.
    pub async fn open_in_memory(master: MasterKey) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        // An in-memory database lives as long as its one connection: never let it be closed.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await?;
        SqlStore::init(pool, Backend::Sqlite, master).await
    }

    /// Opens the database `url` names (`PORTICO_DATABASE_URL`): `postgres://` or
    /// `postgresql://` for PostgreSQL (a pool of 8 connections, 10 s to get one), or
    /// `sqlite://PATH` for a SQLite file opened as [`SqlStore::open`] does (`sqlite::memory:`
    /// for a private in-memory one). Runs that engine's migrations and checks `master` as
    /// [`SqlStore::open`] does.
    ///
    /// Many processes may connect to one PostgreSQL database at once, an empty one included:
    /// the migrations run under sqlx's advisory lock, one process after the other. Any other
    /// scheme is a [`StoreError::Invalid`] naming the ones supported (the URL itself is not
    /// repeated: it may hold a password).
    pub async fn connect(url: &str, master: MasterKey) -> Result<SqlStore, StoreError> {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => {
                sqlx::any::install_default_drivers();
                let pool = AnyPoolOptions::new()
                    .max_connections(POSTGRES_MAX_CONNECTIONS)
                    .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?;
                SqlStore::init(pool, Backend::Postgres, master).await
            }
            Some("sqlite") => match sqlite_path(url)? {
                None => SqlStore::open_in_memory(master).await,
                Some(path) => SqlStore::open(Path::new(&path), master).await,
            },
            other => {
                let given = match other {
                    Some(scheme) => format!("the scheme `{scheme}:` is not supported"),
                    None => "it has no scheme".to_owned(),
                };
                Err(StoreError::Invalid(format!(
                    "cannot use the database URL: {given}; give postgres://USER@HOST/DATABASE \
                     (or postgresql://...) for PostgreSQL, or sqlite://PATH for a SQLite file"
                )))
            }
        }
    }

    /// Runs the engine's migrations and checks the master key.
    async fn init(
        pool: AnyPool,
        backend: Backend,
        master: MasterKey,
    ) -> Result<SqlStore, StoreError> {
        // The files of each engine are embedded at compile time; the SQLite ones are those
        // every existing data dir was migrated with, unchanged (sqlx checks their checksums).
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        let mut conn = pool.acquire().await?;
        verify_master_key(&mut conn, &master).await?;
        drop(conn);
        Ok(SqlStore {
            pool,
            backend,
            master,
            clock: Arc::new(SystemClock),
        })
    }
}

/// The `sqlite://` URL of the file at `path`. Made absolute, since a relative path would be
/// read as the URL's host; percent-encoded, so `?`, `#` or `%` in a directory name stay part of
/// the path.
fn sqlite_file_url(path: &Path) -> Result<String, StoreError> {
    let absolute = std::path::absolute(path).map_err(sqlx::Error::Io)?;
    let text = absolute.to_str().ok_or_else(|| {
        StoreError::Invalid(format!(
            "the database path {} is not valid UTF-8; choose a data dir whose path is",
            absolute.display()
        ))
    })?;
    let mut url = String::from("sqlite://");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(url, "%{byte:02X}");
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

/// The file a `sqlite:` URL names, percent-decoded; `None` for an in-memory database
/// (`sqlite::memory:`, `sqlite://:memory:`, `mode=memory`). Other query parameters are not
/// used: the file is always opened as [`SqlStore::open`] opens it.
fn sqlite_path(url: &str) -> Result<Option<String>, StoreError> {
    let rest = url
        .get("sqlite:".len()..)
        .unwrap_or_default()
        .trim_start_matches("//");
    let (database, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = database == ":memory:"
        || query
            .split('&')
            .any(|pair| pair.eq_ignore_ascii_case("mode=memory"));
    if memory {
        return Ok(None);
    }
    if database.is_empty() {
        return Err(StoreError::Invalid(
            "the database URL sqlite:// names no file; give sqlite:///path/to/portico.db".into(),
        ));
    }
    // sqlx's own parser does the percent-decoding.
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{database}"))?;
    Ok(Some(options.get_filename().to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_keep_odd_directory_names_in_the_path() {
        let url = sqlite_file_url(Path::new("/data/a b?c#d%e/portico.db")).unwrap();
        assert_eq!(
            url, "sqlite:///data/a%20b%3Fc%23d%25e/portico.db?mode=rwc",
            "{url}"
        );
        assert_eq!(
            sqlite_path(&url).unwrap().as_deref(),
            Some("/data/a b?c#d%e/portico.db")
        );
    }

    #[test]
    fn sqlite_urls_name_a_file_or_memory() {
        assert_eq!(sqlite_path("sqlite::memory:").unwrap(), None);
        assert_eq!(sqlite_path("sqlite://:memory:").unwrap(), None);
        assert_eq!(sqlite_path("sqlite://?mode=memory").unwrap(), None);
        assert_eq!(
            sqlite_path("sqlite:///var/lib/portico/portico.db").unwrap(),
            Some("/var/lib/portico/portico.db".to_owned())
        );
        assert_eq!(
            sqlite_path("sqlite:data/portico.db").unwrap(),
            Some("data/portico.db".to_owned())
        );
        assert!(matches!(
            sqlite_path("sqlite://"),
            Err(StoreError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_repeating_the_url() {
        for url in [
            "mysql://root:hunter2@db/portico",
            "/var/lib/portico.db",
            "redis://x",
        ] {
            let err = SqlStore::connect(url, MasterKey::generate())
                .await
                .unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, StoreError::Invalid(_)), "{msg}");
            assert!(
                msg.contains("postgres://") && msg.contains("sqlite://"),
                "{msg}"
            );
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }

    #[tokio::test]
    async fn a_sqlite_url_opens_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("with space").join("portico.db");
        let url = format!("sqlite://{}", path.display()).replace(' ', "%20");
        let store = SqlStore::connect(&url, MasterKey::generate())
            .await
            .unwrap();
        assert_eq!(store.backend_name(), "sqlite");
        store.close().await;
        assert!(path.exists());
        let memory = SqlStore::connect("sqlite::memory:", MasterKey::generate())
            .await
            .unwrap();
        assert_eq!(memory.backend_name(), "sqlite");
    }
}
