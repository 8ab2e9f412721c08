//! PostgreSQL: settings ([`crate::store::SettingsStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::*;
use crate::store::SettingsStore;

#[async_trait]
impl SettingsStore for PostgresStore {
    async fn setting_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.execute("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", &[&key, &value])
            .await?;
        let row = self
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .ok_or_else(|| EngineError::internal("setting vanished"))?;
        Ok(row.get(0))
    }

    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.query_opt("SELECT value FROM settings WHERE key = $1", &[&key]).await?.map(|r| r.get(0)))
    }
}
