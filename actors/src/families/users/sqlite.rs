//! SQLite: users ([`super::UserStore`]).

use super::store::{User, UserChange, UserRecord, UserStatus, UserStore};
use crate::store::sqlite::*;

const USER_COLS: &str = "id, org_id, email, name, status, scopes, password_hash, last_login_at, created_at, updated_at";

type UserParts = (Uuid, Uuid, String, String, String, String, Option<String>, Option<i64>, i64, i64);

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserParts> {
    Ok((
        uuid_col(row, 0)?,
        uuid_col(row, 1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    ))
}

fn record_from_parts(p: UserParts) -> Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: p.0,
            org_id: p.1,
            email: p.2,
            name: p.3,
            status: enum_column(&p.4, UserStatus::parse)?,
            scopes: json_column(&p.5)?,
            has_password: p.6.is_some(),
            last_login_at: p.7,
            created_at: p.8,
            updated_at: p.9,
        },
        password_hash: p.6,
    })
}

fn user_from_parts(p: UserParts) -> Result<User> {
    record_from_parts(p).map(|r| r.user)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn get_user(&self, org_id: Uuid, id: Uuid) -> Result<Option<UserRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE org_id = ?1 AND id = ?2"))
                .map_err(db_err)?;
            Ok(collect(&mut stmt, params![org_id.to_string(), id.to_string()], user_from_row, record_from_parts)?.pop())
        })
        .await
    }

    async fn user_by_email(&self, org_id: Uuid, email: &str) -> Result<Option<UserRecord>> {
        let email = email.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE org_id = ?1 AND email = ?2"))
                .map_err(db_err)?;
            Ok(collect(&mut stmt, params![org_id.to_string(), email], user_from_row, record_from_parts)?.pop())
        })
        .await
    }

    async fn list_users(
        &self,
        org_id: Uuid,
        email: Option<&str>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<User>> {
        let email = email.map(super::rules::contains_pattern);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLS} FROM users WHERE org_id = ?1 AND id > ?2 \
                     AND (?3 IS NULL OR email LIKE ?3 ESCAPE '\\') ORDER BY id LIMIT ?4"
                ))
                .map_err(db_err)?;
            let after = after.map(|a| a.to_string()).unwrap_or_default();
            collect(&mut stmt, params![org_id.to_string(), after, email, limit], user_from_row, user_from_parts)
        })
        .await
    }

    async fn count_users(&self, org_id: Uuid) -> Result<(u64, u64)> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(status = 'suspended'), 0) FROM users WHERE org_id = ?1",
                params![org_id.to_string()],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(db_err)
        })
        .await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &UserChange) -> Result<()> {
    match change {
        UserChange::InsertUser { user: u, password_hash } => {
            conn.prepare_cached(&format!(
                "INSERT INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    u.id.to_string(),
                    u.org_id.to_string(),
                    u.email,
                    u.name,
                    u.status.as_str(),
                    json_text(&u.scopes).unwrap_or_default(),
                    password_hash,
                    u.last_login_at,
                    u.created_at,
                    u.updated_at
                ])
            })
            .map_err(db_err)?;
        }
        UserChange::UpdateUser(u) => {
            let n = conn
                .prepare_cached(
                    "UPDATE users SET email = ?3, name = ?4, status = ?5, scopes = ?6, updated_at = ?7 \
                     WHERE org_id = ?1 AND id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        u.org_id.to_string(),
                        u.id.to_string(),
                        u.email,
                        u.name,
                        u.status.as_str(),
                        json_text(&u.scopes).unwrap_or_default(),
                        u.updated_at
                    ])
                })
                .map_err(db_err)?;
            one_row(n, "user")?;
        }
        UserChange::SetPassword { org_id, id, password_hash, at } => {
            let n = conn
                .execute(
                    "UPDATE users SET password_hash = ?3, updated_at = ?4 WHERE org_id = ?1 AND id = ?2",
                    params![org_id.to_string(), id.to_string(), password_hash, at],
                )
                .map_err(db_err)?;
            one_row(n, "user")?;
        }
        UserChange::LoggedIn { org_id, id, at, rehash } => {
            conn.execute(
                "UPDATE users SET last_login_at = ?3, password_hash = COALESCE(?4, password_hash) \
                 WHERE org_id = ?1 AND id = ?2",
                params![org_id.to_string(), id.to_string(), at, rehash],
            )
            .map_err(db_err)?;
        }
        UserChange::DeleteUser { org_id, id } => {
            let n = conn
                .execute("DELETE FROM users WHERE org_id = ?1 AND id = ?2", params![org_id.to_string(), id.to_string()])
                .map_err(db_err)?;
            one_row(n, "user")?;
        }
    }
    Ok(())
}
