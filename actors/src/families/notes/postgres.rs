//! PostgreSQL: how the notes family's change is applied.

use tokio_postgres::Transaction;

use super::rules::setting_key;
use super::NoteChange;
use crate::store::postgres::*;

/// Apply the family's change on the open transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &NoteChange) -> Result<()> {
    match change {
        NoteChange::Put { key, text } => {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&setting_key(key), &text.as_bytes()],
            )
            .await
            .map_err(db_err)?;
        }
    }
    Ok(())
}
