//! [`LogError`]: why the request log could not be read or written.

/// A failure of the request log's storage.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The database answered an error.
    #[error("request log database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("request log migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The writer thread's connection answered an error.
    #[error("request log database: {0}")]
    Write(String),
    /// The database file is corrupt, or not a database at all (SQLite's `SQLITE_CORRUPT`,
    /// `SQLITE_NOTADB`).
    #[error("request log database is corrupt: {0}")]
    Corrupt(String),
    /// A stored value could not be encoded or decoded.
    #[error("request log encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// The spill file could not be read or written.
    #[error("request log spill file: {0}")]
    Io(#[from] std::io::Error),
}

impl LogError {
    /// Whether the database file is corrupt or not a database (rather than busy, full or
    /// unreachable): a write will not succeed until the file is replaced.
    pub fn is_corrupt(&self) -> bool {
        let sqlx_corrupt = |err: &sqlx::Error| match err {
            sqlx::Error::Database(db) => db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                // The primary code is the low byte of an extended one.
                .is_some_and(|c| matches!(c & 0xff, SQLITE_CORRUPT | SQLITE_NOTADB)),
            _ => false,
        };
        match self {
            LogError::Corrupt(_) => true,
            LogError::Database(err) => sqlx_corrupt(err),
            LogError::Migrate(sqlx::migrate::MigrateError::Execute(err)) => sqlx_corrupt(err),
            _ => false,
        }
    }
}

/// SQLite's result codes for a corrupt file and a file that is not a database.
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;
