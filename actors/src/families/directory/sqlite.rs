//! SQLite: organizations, agents and credentials ([`crate::families::directory::DirectoryStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::DirectoryChange;
use super::{ClientRecord, DirectoryStore};
use crate::kernel::tiers::check_agent_room;
use crate::store::sqlite::*;

pub(crate) type OrgParts = (Uuid, String, String, i64, i64, String);

pub(crate) fn org_from_row(row: &Row<'_>) -> rusqlite::Result<OrgParts> {
    Ok((uuid_col(row, 0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
}

pub(crate) fn org_from_parts(p: OrgParts) -> Result<Organization> {
    Ok(Organization {
        id: p.0,
        name: p.1,
        tier: enum_column(&p.2, Tier::parse)?,
        delegation: json_column(&p.5)?,
        created_at: p.3,
        updated_at: p.4,
    })
}

pub(crate) type AgentParts = (Uuid, Uuid, String, Option<String>, String, String, String, i64, i64);

pub(crate) fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<AgentParts> {
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
    ))
}

pub(crate) fn agent_from_parts(p: AgentParts) -> Result<Agent> {
    Ok(Agent {
        id: p.0,
        org_id: p.1,
        name: p.2,
        description: p.3,
        status: enum_column(&p.4, AgentStatus::parse)?,
        scopes: json_column(&p.5)?,
        metadata: json_column(&p.6)?,
        created_at: p.7,
        updated_at: p.8,
    })
}

pub(crate) type CredParts =
    (Uuid, Uuid, Uuid, String, String, String, String, i64, Option<i64>, Option<i64>, Option<String>);

pub(crate) fn cred_from_row(row: &Row<'_>) -> rusqlite::Result<CredParts> {
    Ok((
        uuid_col(row, 0)?,
        uuid_col(row, 1)?,
        uuid_col(row, 2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

pub(crate) fn cred_from_parts(p: CredParts) -> Result<Credential> {
    Ok(Credential {
        id: p.0,
        agent_id: p.1,
        org_id: p.2,
        client_id: p.3,
        kind: p.4,
        status: enum_column(&p.5, CredentialStatus::parse)?,
        secret_prefix: p.6,
        created_at: p.7,
        rotated_at: p.8,
        revoked_at: p.9,
        jwk: p.10.as_deref().map(json_column).transpose()?,
    })
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {ORG_COLS} FROM organizations WHERE id = ?1"),
                params![id.to_string()],
                org_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(org_from_parts)
            .transpose()
        })
        .await
    }

    async fn list_orgs(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Organization>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {ORG_COLS} FROM organizations WHERE id > ?1 ORDER BY id LIMIT ?2"))
                .map_err(db_err)?;
            let after = after.unwrap_or(Uuid::nil()).to_string();
            collect(&mut stmt, params![after, limit], org_from_row, org_from_parts)
        })
        .await
    }

    async fn count_agents(&self, org_id: Uuid) -> Result<u64> {
        self.read(move |conn| {
            conn.query_row("SELECT COUNT(*) FROM agents WHERE org_id = ?1", params![org_id.to_string()], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }

    async fn count_orgs(&self) -> Result<u64> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM organizations", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db_err)
        })
        .await
    }

    async fn get_agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?1 AND org_id = ?2"),
                params![id.to_string(), org_id.to_string()],
                agent_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(agent_from_parts)
            .transpose()
        })
        .await
    }

    async fn list_agents(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Agent>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {AGENT_COLS} FROM agents WHERE org_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ))
                .map_err(db_err)?;
            let after = after.unwrap_or(Uuid::nil()).to_string();
            collect(&mut stmt, params![org_id.to_string(), after, limit], agent_from_row, agent_from_parts)
        })
        .await
    }

    async fn agents_with_scope(&self, scope: &str) -> Result<Vec<Agent>> {
        // Scopes are a JSON array in text: the LIKE narrows, the exact check decides.
        let pattern = format!("%{}%", json_text(&scope)?);
        let scope = scope.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {AGENT_COLS} FROM agents WHERE scopes LIKE ?1"))
                .map_err(db_err)?;
            let agents = collect(&mut stmt, params![pattern], agent_from_row, agent_from_parts)?;
            Ok(agents.into_iter().filter(|a| a.scopes.contains(&scope)).collect())
        })
        .await
    }

    async fn list_credentials(&self, agent_id: Uuid) -> Result<Vec<Credential>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {CRED_COLS} FROM credentials WHERE agent_id = ?1 ORDER BY id"))
                .map_err(db_err)?;
            collect(&mut stmt, params![agent_id.to_string()], cred_from_row, cred_from_parts)
        })
        .await
    }

    async fn get_credential(&self, agent_id: Uuid, id: Uuid) -> Result<Option<Credential>> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {CRED_COLS} FROM credentials WHERE id = ?1 AND agent_id = ?2"),
                params![id.to_string(), agent_id.to_string()],
                cred_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(cred_from_parts)
            .transpose()
        })
        .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let client_id = client_id.to_string();
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT c.client_id, c.status, c.secret_hash, a.id, a.org_id, a.status, a.scopes, c.kind, c.public_jwk
                     FROM credentials c JOIN agents a ON a.id = c.agent_id WHERE c.client_id = ?1",
                    params![client_id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            uuid_col(r, 3)?,
                            uuid_col(r, 4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, String>(6)?,
                            r.get::<_, String>(7)?,
                            r.get::<_, Option<String>>(8)?,
                        ))
                    },
                )
                .optional()
                .map_err(db_err)?;
            row.map(|p| {
                Ok(ClientRecord {
                    client_id: p.0,
                    credential_status: enum_column(&p.1, CredentialStatus::parse)?,
                    secret_hash: p.2,
                    agent_id: p.3,
                    org_id: p.4,
                    agent_status: enum_column(&p.5, AgentStatus::parse)?,
                    agent_scopes: json_column(&p.6)?,
                    kind: p.7,
                    public_jwk: p.8.as_deref().map(json_column).transpose()?,
                })
            })
            .transpose()
        })
        .await
    }
}

/// Apply one of the family's changes on the writer's open transaction.
pub(crate) fn apply(conn: &Connection, change: &DirectoryChange) -> Result<()> {
    match change {
        DirectoryChange::HasRoomForAgent { org_id, tiers } => {
            let (tier, agents) = tier_and_count(conn, *org_id, "agents")?;
            check_agent_room(&tier, agents, tiers)?;
        }
        DirectoryChange::InsertOrg(o) => {
            let delegation = json_text(&o.delegation)?;
            conn.prepare_cached(
                "INSERT INTO organizations (id, name, tier, created_at, updated_at, delegation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![o.id.to_string(), o.name, o.tier.as_str(), o.created_at, o.updated_at, delegation])
            })
            .map_err(db_err)?;
        }
        DirectoryChange::UpdateOrg(o) => {
            let n = conn
                .prepare_cached("UPDATE organizations SET name = ?2, tier = ?3, updated_at = ?4 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![o.id.to_string(), o.name, o.tier.as_str(), o.updated_at]))
                .map_err(db_err)?;
            one_row(n, "organization")?;
        }
        DirectoryChange::SetOrgDelegation { org_id, settings, at } => {
            let settings = json_text(settings)?;
            let n = conn
                .prepare_cached("UPDATE organizations SET delegation = ?2, updated_at = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![org_id.to_string(), settings, at]))
                .map_err(db_err)?;
            one_row(n, "organization")?;
        }
        DirectoryChange::DeleteOrg(id) => {
            conn.execute(
                "INSERT INTO deleted_agents (agent_id, org_id) SELECT id, org_id FROM agents WHERE org_id = ?1
                 ON CONFLICT (agent_id) DO NOTHING",
                params![id.to_string()],
            )
            .map_err(db_err)?;
            let n = conn.execute("DELETE FROM organizations WHERE id = ?1", params![id.to_string()]).map_err(db_err)?;
            one_row(n, "organization")?;
        }
        DirectoryChange::InsertAgent(a) => {
            let (scopes, metadata) = (json_text(&a.scopes)?, json_text(&a.metadata)?);
            conn.prepare_cached(&format!(
                "INSERT INTO agents ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                AGENT_COLS
            ))
            .and_then(|mut s| {
                s.execute(params![
                    a.id.to_string(),
                    a.org_id.to_string(),
                    a.name,
                    a.description,
                    a.status.as_str(),
                    scopes,
                    metadata,
                    a.created_at,
                    a.updated_at
                ])
            })
            .map_err(db_err)?;
        }
        DirectoryChange::UpdateAgent(a) => {
            let (scopes, metadata) = (json_text(&a.scopes)?, json_text(&a.metadata)?);
            let n = conn
                .prepare_cached(
                    "UPDATE agents SET name = ?3, description = ?4, status = ?5, scopes = ?6, metadata = ?7, updated_at = ?8
                     WHERE id = ?1 AND org_id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        a.id.to_string(),
                        a.org_id.to_string(),
                        a.name,
                        a.description,
                        a.status.as_str(),
                        scopes,
                        metadata,
                        a.updated_at
                    ])
                })
                .map_err(db_err)?;
            one_row(n, "agent")?;
        }
        DirectoryChange::DeleteAgent { org_id, id } => {
            conn.execute(
                "INSERT INTO deleted_agents (agent_id, org_id) SELECT id, org_id FROM agents WHERE id = ?1 AND org_id = ?2
                 ON CONFLICT (agent_id) DO NOTHING",
                params![id.to_string(), org_id.to_string()],
            )
            .map_err(db_err)?;
            let n = conn
                .execute(
                    "DELETE FROM agents WHERE id = ?1 AND org_id = ?2",
                    params![id.to_string(), org_id.to_string()],
                )
                .map_err(db_err)?;
            one_row(n, "agent")?;
        }
        DirectoryChange::InsertCredential { credential: c, secret_hash } => {
            let jwk = c.jwk.as_ref().map(json_text).transpose()?;
            conn.prepare_cached(
                "INSERT INTO credentials (id, agent_id, org_id, client_id, kind, status, secret_prefix, secret_hash, created_at, rotated_at, revoked_at, public_jwk)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    c.id.to_string(),
                    c.agent_id.to_string(),
                    c.org_id.to_string(),
                    c.client_id,
                    c.kind,
                    c.status.as_str(),
                    c.secret_prefix,
                    secret_hash,
                    c.created_at,
                    c.rotated_at,
                    c.revoked_at,
                    jwk
                ])
            })
            .map_err(db_err)?;
        }
        DirectoryChange::RotateCredential { agent_id, id, secret_prefix, secret_hash, now } => {
            let n = conn
                .execute(
                    "UPDATE credentials SET secret_prefix = ?3, secret_hash = ?4, rotated_at = ?5
                     WHERE id = ?1 AND agent_id = ?2 AND status = 'active'",
                    params![id.to_string(), agent_id.to_string(), secret_prefix, secret_hash, now],
                )
                .map_err(db_err)?;
            if n != 1 {
                return Err(EngineError::Conflict("the credential is not active".into()));
            }
        }
        DirectoryChange::RevokeCredential { agent_id, id, now } => {
            let n = conn
                .execute(
                    "UPDATE credentials SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?3)
                     WHERE id = ?1 AND agent_id = ?2",
                    params![id.to_string(), agent_id.to_string(), now],
                )
                .map_err(db_err)?;
            one_row(n, "credential")?;
        }
    }
    Ok(())
}
