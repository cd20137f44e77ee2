//! What only the SQLite store has: its files.

use super::*;
use crate::store_tests::entry;

#[cfg(unix)]
#[tokio::test]
async fn the_log_database_and_its_wal_and_shm_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteLogStore::open(&dir.path().join("logs.db"))
        .await
        .unwrap();
    assert_eq!(store.insert(vec![entry("a", 0)].into()).await.unwrap(), 1);
    for name in ["logs.db", "logs.db-wal", "logs.db-shm"] {
        let path = dir.path().join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}
