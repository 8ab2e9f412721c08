//! SQLite: settings ([`crate::store::SettingsStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::store::SettingsStore;

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, value],
            )
            .map_err(db_err)?;
            conn.query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| r.get(0)).map_err(db_err)
        })
        .await
    }

    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.read(move |conn| {
            conn.query_row("SELECT value FROM settings WHERE key = ?1", params![key], |r| r.get(0))
                .optional()
                .map_err(db_err)
        })
        .await
    }
}
