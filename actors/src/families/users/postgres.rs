//! PostgreSQL: users ([`super::UserStore`]).

use super::store::{User, UserChange, UserRecord, UserStatus, UserStore};
use crate::store::postgres::*;
use tokio_postgres::Transaction;

const USER_COLS: &str = "id, org_id, email, name, status, scopes, password_hash, last_login_at, created_at, updated_at";

fn record(row: &Row) -> Result<UserRecord> {
    let password_hash: Option<String> = row.get(6);
    Ok(UserRecord {
        user: User {
            id: row.get(0),
            org_id: row.get(1),
            email: row.get(2),
            name: row.get(3),
            status: enum_column(row.get(4), UserStatus::parse)?,
            scopes: json_column(row.get(5))?,
            has_password: password_hash.is_some(),
            last_login_at: row.get(7),
            created_at: row.get(8),
            updated_at: row.get(9),
        },
        password_hash,
    })
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn get_user(&self, org_id: Uuid, id: Uuid) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE org_id = $1 AND id = $2");
        self.query_opt(&sql, &[&org_id, &id]).await?.as_ref().map(record).transpose()
    }

    async fn user_by_email(&self, org_id: Uuid, email: &str) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE org_id = $1 AND email = $2");
        self.query_opt(&sql, &[&org_id, &email]).await?.as_ref().map(record).transpose()
    }

    async fn list_users(
        &self,
        org_id: Uuid,
        email: Option<&str>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<User>> {
        let email = email.map(super::rules::contains_pattern);
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) \
             AND ($3::text IS NULL OR email LIKE $3) ORDER BY id LIMIT $4"
        );
        let rows = self.query(&sql, &[&org_id, &after, &email, &i64::from(limit)]).await?;
        rows.iter().map(|r| record(r).map(|r| r.user)).collect()
    }

    async fn count_users(&self, org_id: Uuid) -> Result<(u64, u64)> {
        let row = self
            .query_opt(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'suspended') FROM users WHERE org_id = $1",
                &[&org_id],
            )
            .await?
            .ok_or_else(|| EngineError::internal("count returned no row"))?;
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }
}

/// Apply one of the family's changes in the commit's transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &UserChange) -> Result<()> {
    match change {
        UserChange::InsertUser { user: u, password_hash } => {
            tx.execute(
                &format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
                &[
                    &u.id,
                    &u.org_id,
                    &u.email,
                    &u.name,
                    &u.status.as_str(),
                    &json_text(&u.scopes)?,
                    password_hash,
                    &u.last_login_at,
                    &u.created_at,
                    &u.updated_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        UserChange::UpdateUser(u) => {
            let n = tx
                .execute(
                    "UPDATE users SET email = $3, name = $4, status = $5, scopes = $6, updated_at = $7 \
                     WHERE org_id = $1 AND id = $2",
                    &[&u.org_id, &u.id, &u.email, &u.name, &u.status.as_str(), &json_text(&u.scopes)?, &u.updated_at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "user")?;
        }
        UserChange::SetPassword { org_id, id, password_hash, at } => {
            let n = tx
                .execute(
                    "UPDATE users SET password_hash = $3, updated_at = $4 WHERE org_id = $1 AND id = $2",
                    &[org_id, id, password_hash, at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "user")?;
        }
        UserChange::LoggedIn { org_id, id, at, rehash } => {
            tx.execute(
                "UPDATE users SET last_login_at = $3, password_hash = COALESCE($4, password_hash) \
                 WHERE org_id = $1 AND id = $2",
                &[org_id, id, at, rehash],
            )
            .await
            .map_err(db_err)?;
        }
        UserChange::DeleteUser { org_id, id } => {
            let n =
                tx.execute("DELETE FROM users WHERE org_id = $1 AND id = $2", &[org_id, id]).await.map_err(db_err)?;
            one_row(n, "user")?;
        }
    }
    Ok(())
}
