//! The group commit's helpers: each entry's changes (declared by their families, see
//! [`crate::store::Change`]) applied in a savepoint, the cluster change feed, and the
//! checks the families' changes share. All run inside the audit writer's group commit (see [`super::PostgresStore`]'s `append_audit`), so a change is durable
//! exactly when its audit event is.

use tokio_postgres::Transaction;

use super::{db_err, json_text};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Millis;
use crate::runtime::events::ClusterEvent;
use crate::store::Change;

/// The organization's committed tier, under its row lock, and how many rows of `table`
/// it has.
pub(crate) async fn tier_and_count(tx: &Transaction<'_>, org_id: &uuid::Uuid, table: &str) -> Result<(String, u64)> {
    let row = tx
        .query_opt("SELECT tier FROM organizations WHERE id = $1 FOR UPDATE", &[org_id])
        .await
        .map_err(db_err)?
        .ok_or_else(|| EngineError::not_found("organization"))?;
    let count: i64 = tx
        .query_one(&format!("SELECT COUNT(*) FROM {table} WHERE org_id = $1"), &[org_id])
        .await
        .map_err(db_err)?
        .get(0);
    Ok((row.get(0), count.max(0) as u64))
}

pub(crate) fn one_row(n: u64, kind: &'static str) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(EngineError::not_found(kind))
    }
}

/// Record `event` in the cluster change feed.
pub(crate) async fn announce(tx: &Transaction<'_>, event: &ClusterEvent, now: Millis) -> Result<()> {
    tx.execute("INSERT INTO cluster_events (event, created_at) VALUES ($1, $2)", &[&json_text(event)?, &now])
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Apply an entry's changes and announcement inside a savepoint: kept if all succeed,
/// undone (leaving the enclosing transaction as it was) if one fails.
pub(crate) async fn apply_entry(
    tx: &Transaction<'_>,
    changes: &[Box<dyn Change>],
    announcement: Option<&ClusterEvent>,
    now: Millis,
) -> Result<()> {
    tx.batch_execute("SAVEPOINT entry").await.map_err(db_err)?;
    let applied = async {
        for change in changes {
            change.apply_postgres(tx).await?;
        }
        match announcement {
            Some(event) => announce(tx, event, now).await,
            None => Ok(()),
        }
    }
    .await;
    match applied {
        Ok(()) => tx.batch_execute("RELEASE entry").await.map_err(db_err),
        Err(e) => {
            tx.batch_execute("ROLLBACK TO entry; RELEASE entry").await.map_err(db_err)?;
            Err(e)
        }
    }
}
