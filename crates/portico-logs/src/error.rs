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
    /// A stored value could not be encoded or decoded.
    #[error("request log encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// The spill file could not be read or written.
    #[error("request log spill file: {0}")]
    Io(#[from] std::io::Error),
}
