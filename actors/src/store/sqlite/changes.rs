//! The group commit's helpers: each entry's changes (declared by their families, see
//! [`crate::store::Change`]) applied in a savepoint, the cluster change feed, and the
//! checks the families' changes share. All run inside the audit writer's group commit (see [`super::SqliteStore`]'s `append_audit`), so a change is durable
//! exactly when its audit event is.

use rusqlite::{params, Connection};

use super::{db_err, json_text};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Millis;
use crate::runtime::events::ClusterEvent;

/// The organization's committed tier and how many rows of `table` it has.
pub(crate) fn tier_and_count(conn: &Connection, org_id: uuid::Uuid, table: &str) -> Result<(String, u64)> {
    conn.query_row(
        &format!("SELECT tier, (SELECT COUNT(*) FROM {table} WHERE org_id = ?1) FROM organizations WHERE id = ?1"),
        params![org_id.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => EngineError::not_found("organization"),
        e => db_err(e),
    })
}

pub(crate) fn one_row(n: usize, kind: &'static str) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(EngineError::not_found(kind))
    }
}

/// Record `event` in the cluster change feed.
pub(crate) fn announce(conn: &Connection, event: &ClusterEvent, now: Millis) -> Result<()> {
    let text = json_text(event)?;
    conn.prepare_cached("INSERT INTO cluster_events (event, created_at) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![text, now]))
        .map_err(db_err)?;
    Ok(())
}

/// Run `f` inside a savepoint: its writes stay if it succeeds and are undone if it fails,
/// leaving the enclosing transaction as it was.
pub(crate) fn in_savepoint<T>(conn: &Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT entry").map_err(db_err)?;
    match f() {
        Ok(v) => {
            conn.execute_batch("RELEASE entry").map_err(db_err)?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO entry; RELEASE entry").map_err(db_err)?;
            Err(e)
        }
    }
}
