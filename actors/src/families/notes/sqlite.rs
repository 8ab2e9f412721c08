//! SQLite: how the notes family's change is applied.

use super::rules::setting_key;
use super::NoteChange;
use crate::store::sqlite::*;

/// Apply the family's change on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &NoteChange) -> Result<()> {
    match change {
        NoteChange::Put { key, text } => {
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![setting_key(key), text.as_bytes()],
            )
            .map_err(db_err)?;
        }
    }
    Ok(())
}
