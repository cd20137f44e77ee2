//! Master-key rotation: every secret stored under the current master key (each provider's API
//! key and credentials, and the canary) re-encrypted under a new one, in one write transaction,
//! so the database is wholly under one key or the other, never both.
//!
//! The store does not touch the key file: where the new key is kept, and in which order, is the
//! command's (`portico master-key rotate`, docs/security.md).

use crate::{MasterKey, StoreError};

use super::{CANARY_KEY, CANARY_TEXT, SqlStore};

/// What a rotation re-encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationReport {
    /// Providers whose secrets were re-encrypted (those with an API key or credentials).
    pub providers: usize,
    /// Encrypted values rewritten, the canary included.
    pub values: usize,
}

/// One provider's encrypted columns.
type ProviderSecrets = (String, Option<Vec<u8>>, Option<Vec<u8>>);

impl SqlStore {
    /// Re-encrypts every stored secret under `new`, in one transaction: on any error nothing
    /// is changed. The store's own key must be the one the database was written with (it was
    /// checked when the store was opened, and is again here, inside the transaction). The
    /// catalog version is not bumped: the catalog is the same, and processes still running
    /// with the old key must not reload under it (rotate with every process stopped).
    ///
    /// After it returns, this store's key is stale: drop it, and open the database with `new`.
    pub async fn rotate_master_key(&self, new: &MasterKey) -> Result<RotationReport, StoreError> {
        let mut tx = self.begin_write().await?;
        let canary: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(CANARY_KEY)
            .fetch_one(&mut *tx)
            .await?;
        if self.master.decrypt_for("meta", &canary)? != CANARY_TEXT {
            return Err(self.master.wrong_key());
        }
        sqlx::query("UPDATE meta SET value = $1 WHERE key = $2")
            .bind(new.encrypt(CANARY_TEXT))
            .bind(CANARY_KEY)
            .execute(&mut *tx)
            .await?;
        let rows: Vec<ProviderSecrets> = sqlx::query_as(
            "SELECT slug, api_key_enc, credentials_enc FROM providers \
             WHERE api_key_enc IS NOT NULL OR credentials_enc IS NOT NULL ORDER BY slug",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut values = 1;
        let reencrypt = |blob: Option<Vec<u8>>| -> Result<Option<Vec<u8>>, StoreError> {
            blob.map(|blob| {
                let plain = Plain(self.master.decrypt_for("providers", &blob)?);
                Ok(new.encrypt(&plain.0))
            })
            .transpose()
        };
        for (slug, api_key, credentials) in &rows {
            values += usize::from(api_key.is_some()) + usize::from(credentials.is_some());
            sqlx::query(
                "UPDATE providers SET api_key_enc = $1, credentials_enc = $2 WHERE slug = $3",
            )
            .bind(reencrypt(api_key.clone())?)
            .bind(reencrypt(credentials.clone())?)
            .bind(slug)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(RotationReport {
            providers: rows.len(),
            values,
        })
    }
}

/// A decrypted secret, overwritten when dropped, so the plaintexts of a rotation do not stay
/// in freed memory.
struct Plain(Vec<u8>);

impl Drop for Plain {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}
