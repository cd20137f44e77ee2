//! Real PostgreSQL and Redis servers for the scale-out tests.
//!
//! - [`TestPostgres`]: a fresh, empty database on the PostgreSQL server that `scripts/test.sh`
//!   (through `scripts/services.sh`) starts for the whole run and names in
//!   `PORTICO_TEST_POSTGRES_URL`. One database per test, dropped when the value is dropped,
//!   so tests run in parallel without seeing each other's rows. Starting one server per test
//!   would cost an `initdb` (about a second) each time; a database costs a few milliseconds.
//! - [`TestRedis`]: a `redis-server` of the test's own, on a Unix socket in a temporary
//!   directory, without persistence. Starting one takes a few milliseconds, and a test can
//!   stop and restart it to see what the gateway does while Redis is away.
//!
//! Without `PORTICO_TEST_POSTGRES_URL`, or without `redis-server` on the `PATH`, these panic
//! with a message that says how to get them: a scale-out test that silently skips would pass
//! while testing nothing.

#![expect(
    clippy::panic,
    reason = "test support: a server that cannot be had is the test's failure, said clearly"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The variable `scripts/services.sh` sets to the URL of its PostgreSQL server's `postgres`
/// database (a superuser's, so tests can create databases).
pub const POSTGRES_URL_VAR: &str = "PORTICO_TEST_POSTGRES_URL";

/// A database of one test's own on the shared PostgreSQL server. Dropped when this is.
#[derive(Debug)]
pub struct TestPostgres {
    admin_url: String,
    name: String,
    url: String,
}

fn postgres_admin_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{POSTGRES_URL_VAR} is not set: the PostgreSQL tests need a server. Run the suite \
             with scripts/test.sh (it starts one), or `eval \"$(scripts/services.sh start)\"` \
             first (Debian: apt-get install postgresql redis-server)"
        ),
    }
}

/// `url` with its database name replaced by `name` (the path of a `postgres://` URL).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    // postgres://user@host:port/db: the database is what follows the first `/` after `//`.
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl TestPostgres {
    /// Creates an empty database for this test.
    ///
    /// # Panics
    ///
    /// When `PORTICO_TEST_POSTGRES_URL` is not set or the server cannot be reached.
    pub async fn database() -> TestPostgres {
        let admin_url = postgres_admin_url();
        let name = format!("portico_test_{}", uuid_like());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR} ({admin_url}): {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let _ = conn.close().await;
        let url = with_database(&admin_url, &name);
        TestPostgres {
            admin_url,
            name,
            url,
        }
    }

    /// The database's URL, for `PORTICO_DATABASE_URL` or a store's `connect`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Dropped from async tests too, where blocking on the runtime is not allowed: a thread
        // of its own with a small runtime. `WITH (FORCE)` ends connections a killed process
        // left behind.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// A random lowercase hex name part (no uuid dependency for one name).
fn uuid_like() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// A `redis-server` of one test's own on a Unix socket; killed when dropped.
#[derive(Debug)]
pub struct TestRedis {
    dir: tempfile_dir::Dir,
    child: Option<Child>,
}

/// The program name looked up on the `PATH` (`PORTICO_TEST_REDIS_SERVER` overrides it).
fn redis_server_bin() -> PathBuf {
    std::env::var_os("PORTICO_TEST_REDIS_SERVER")
        .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

impl TestRedis {
    /// Starts a server and waits until it answers.
    ///
    /// # Panics
    ///
    /// When `redis-server` cannot be started (not installed) or does not come up in 10 s.
    pub fn start() -> TestRedis {
        let dir = tempfile_dir::Dir::new("portico-redis");
        let mut redis = TestRedis { dir, child: None };
        redis.spawn();
        redis
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn spawn(&mut self) {
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(redis_server_bin())
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}); the Redis tests need it \
                     (Debian: apt-get install redis-server)"
                )
            });
        self.child = Some(child);
        wait_for_socket(&socket);
    }

    /// The URL for `PORTICO_REDIS_URL` (`redis+unix:///path/redis.sock`).
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Stops the server (SIGKILL): what a crash looks like to its clients.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts the server again on the same socket, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until a Unix socket accepts connections.
fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server did not open {} within 10 s",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A temporary directory removed when dropped (the testkit has no tempfile dependency).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    #[derive(Debug)]
    pub(super) struct Dir(PathBuf);

    impl Dir {
        pub(super) fn new(prefix: &str) -> Dir {
            // Short: a Unix socket path must fit in about 100 bytes.
            let path = std::env::temp_dir().join(format!("{prefix}-{}", super::uuid_like()));
            std::fs::create_dir_all(&path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
            Dir(path)
        }

        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced_in_every_url_shape() {
        assert_eq!(
            with_database("postgres://u@localhost:5432/postgres", "t1"),
            "postgres://u@localhost:5432/t1"
        );
        assert_eq!(
            with_database("postgres://postgres@/postgres?host=/tmp/pg", "t1"),
            "postgres://postgres@/t1?host=/tmp/pg"
        );
        assert_eq!(
            with_database("postgres://u@localhost", "t1"),
            "postgres://u@localhost/t1"
        );
    }
}
