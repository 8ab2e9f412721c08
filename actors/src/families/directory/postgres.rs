//! PostgreSQL: organizations, agents and credentials ([`crate::families::directory::DirectoryStore`]).

// The adapter's connection helpers, error mapping, shared columns and imports.
use super::DirectoryChange;
use super::{ClientRecord, DirectoryStore};
use crate::kernel::tiers::check_agent_room;
use crate::store::postgres::*;
use tokio_postgres::Transaction;

pub(crate) fn org(row: &Row) -> Result<Organization> {
    Ok(Organization {
        id: row.get(0),
        name: row.get(1),
        tier: enum_column(row.get(2), Tier::parse)?,
        delegation: json_column(row.get(5))?,
        created_at: row.get(3),
        updated_at: row.get(4),
    })
}

pub(crate) fn agent(row: &Row) -> Result<Agent> {
    Ok(Agent {
        id: row.get(0),
        org_id: row.get(1),
        name: row.get(2),
        description: row.get(3),
        status: enum_column(row.get(4), AgentStatus::parse)?,
        scopes: json_column(row.get(5))?,
        metadata: json_column(row.get(6))?,
        created_at: row.get(7),
        updated_at: row.get(8),
    })
}

pub(crate) fn credential(row: &Row) -> Result<Credential> {
    Ok(Credential {
        id: row.get(0),
        agent_id: row.get(1),
        org_id: row.get(2),
        client_id: row.get(3),
        kind: row.get(4),
        status: enum_column(row.get(5), CredentialStatus::parse)?,
        secret_prefix: row.get(6),
        created_at: row.get(7),
        rotated_at: row.get(8),
        revoked_at: row.get(9),
        jwk: row.get::<_, Option<&str>>(10).map(json_column).transpose()?,
    })
}

#[async_trait]
impl DirectoryStore for PostgresStore {
    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>> {
        self.query_opt(&format!("SELECT {ORG_COLS} FROM organizations WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(org)
            .transpose()
    }

    async fn list_orgs(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Organization>> {
        let after = after.unwrap_or(Uuid::nil());
        self.query(
            &format!("SELECT {ORG_COLS} FROM organizations WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(org)
        .collect()
    }

    async fn count_agents(&self, org_id: Uuid) -> Result<u64> {
        let rows = self.query("SELECT COUNT(*) FROM agents WHERE org_id = $1", &[&org_id]).await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0).max(0) as u64)
    }

    async fn count_orgs(&self) -> Result<u64> {
        let rows = self.query("SELECT COUNT(*) FROM organizations", &[]).await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) as u64)
    }

    async fn get_agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        self.query_opt(&format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1 AND org_id = $2"), &[&id, &org_id])
            .await?
            .as_ref()
            .map(agent)
            .transpose()
    }

    async fn list_agents(&self, org_id: Uuid, after: Option<Uuid>, limit: u32) -> Result<Vec<Agent>> {
        let after = after.unwrap_or(Uuid::nil());
        self.query(
            &format!("SELECT {AGENT_COLS} FROM agents WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
            &[&org_id, &after, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(agent)
        .collect()
    }

    async fn agents_with_scope(&self, scope: &str) -> Result<Vec<Agent>> {
        // Scopes are a JSON array in text: the LIKE narrows, the exact check decides.
        let pattern = format!("%{}%", json_text(&scope)?);
        let rows = self.query(&format!("SELECT {AGENT_COLS} FROM agents WHERE scopes LIKE $1"), &[&pattern]).await?;
        let agents: Vec<Agent> = rows.iter().map(agent).collect::<Result<_>>()?;
        Ok(agents.into_iter().filter(|a| a.scopes.iter().any(|s| s == scope)).collect())
    }

    async fn list_credentials(&self, agent_id: Uuid) -> Result<Vec<Credential>> {
        self.query(&format!("SELECT {CRED_COLS} FROM credentials WHERE agent_id = $1 ORDER BY id"), &[&agent_id])
            .await?
            .iter()
            .map(credential)
            .collect()
    }

    async fn get_credential(&self, agent_id: Uuid, id: Uuid) -> Result<Option<Credential>> {
        self.query_opt(
            &format!("SELECT {CRED_COLS} FROM credentials WHERE id = $1 AND agent_id = $2"),
            &[&id, &agent_id],
        )
        .await?
        .as_ref()
        .map(credential)
        .transpose()
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let row = self
            .query_opt(
                "SELECT c.client_id, c.status, c.secret_hash, a.id, a.org_id, a.status, a.scopes, c.kind, c.public_jwk
                 FROM credentials c JOIN agents a ON a.id = c.agent_id WHERE c.client_id = $1",
                &[&client_id],
            )
            .await?;
        row.map(|r| {
            Ok(ClientRecord {
                client_id: r.get(0),
                credential_status: enum_column(r.get(1), CredentialStatus::parse)?,
                secret_hash: r.get(2),
                agent_id: r.get(3),
                org_id: r.get(4),
                agent_status: enum_column(r.get(5), AgentStatus::parse)?,
                agent_scopes: json_column(r.get(6))?,
                kind: r.get(7),
                public_jwk: r.get::<_, Option<&str>>(8).map(json_column).transpose()?,
            })
        })
        .transpose()
    }
}

/// Apply one of the family's changes on the open transaction.
pub(crate) async fn apply(tx: &Transaction<'_>, change: &DirectoryChange) -> Result<()> {
    match change {
        DirectoryChange::HasRoomForAgent { org_id, tiers } => {
            let (tier, agents) = tier_and_count(tx, org_id, "agents").await?;
            check_agent_room(&tier, agents, tiers)?;
        }
        DirectoryChange::InsertOrg(o) => {
            tx.execute(
                "INSERT INTO organizations (id, name, tier, created_at, updated_at, delegation)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&o.id, &o.name, &o.tier.as_str(), &o.created_at, &o.updated_at, &json_text(&o.delegation)?],
            )
            .await
            .map_err(db_err)?;
        }
        DirectoryChange::UpdateOrg(o) => {
            let n = tx
                .execute(
                    "UPDATE organizations SET name = $2, tier = $3, updated_at = $4 WHERE id = $1",
                    &[&o.id, &o.name, &o.tier.as_str(), &o.updated_at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "organization")?;
        }
        DirectoryChange::SetOrgDelegation { org_id, settings, at } => {
            let n = tx
                .execute(
                    "UPDATE organizations SET delegation = $2, updated_at = $3 WHERE id = $1",
                    &[org_id, &json_text(settings)?, at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "organization")?;
        }
        DirectoryChange::DeleteOrg(id) => {
            tx.execute(
                "INSERT INTO deleted_agents (agent_id, org_id) SELECT id, org_id FROM agents WHERE org_id = $1
                 ON CONFLICT (agent_id) DO NOTHING",
                &[id],
            )
            .await
            .map_err(db_err)?;
            let n = tx.execute("DELETE FROM organizations WHERE id = $1", &[id]).await.map_err(db_err)?;
            one_row(n, "organization")?;
        }
        DirectoryChange::InsertAgent(a) => {
            tx.execute(
                &format!("INSERT INTO agents ({AGENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                &[
                    &a.id,
                    &a.org_id,
                    &a.name,
                    &a.description,
                    &a.status.as_str(),
                    &json_text(&a.scopes)?,
                    &json_text(&a.metadata)?,
                    &a.created_at,
                    &a.updated_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        DirectoryChange::UpdateAgent(a) => {
            let n = tx
                .execute(
                    "UPDATE agents SET name = $3, description = $4, status = $5, scopes = $6, metadata = $7, updated_at = $8
                     WHERE id = $1 AND org_id = $2",
                    &[
                        &a.id,
                        &a.org_id,
                        &a.name,
                        &a.description,
                        &a.status.as_str(),
                        &json_text(&a.scopes)?,
                        &json_text(&a.metadata)?,
                        &a.updated_at,
                    ],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "agent")?;
        }
        DirectoryChange::DeleteAgent { org_id, id } => {
            tx.execute(
                "INSERT INTO deleted_agents (agent_id, org_id) SELECT id, org_id FROM agents WHERE id = $1 AND org_id = $2
                 ON CONFLICT (agent_id) DO NOTHING",
                &[id, org_id],
            )
            .await
            .map_err(db_err)?;
            let n =
                tx.execute("DELETE FROM agents WHERE id = $1 AND org_id = $2", &[id, org_id]).await.map_err(db_err)?;
            one_row(n, "agent")?;
        }
        DirectoryChange::InsertCredential { credential: c, secret_hash } => {
            tx.execute(
                "INSERT INTO credentials (id, agent_id, org_id, client_id, kind, status, secret_prefix, secret_hash, created_at, rotated_at, revoked_at, public_jwk)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &c.id,
                    &c.agent_id,
                    &c.org_id,
                    &c.client_id,
                    &c.kind,
                    &c.status.as_str(),
                    &c.secret_prefix,
                    secret_hash,
                    &c.created_at,
                    &c.rotated_at,
                    &c.revoked_at,
                    &c.jwk.as_ref().map(json_text).transpose()?,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        DirectoryChange::RotateCredential { agent_id, id, secret_prefix, secret_hash, now } => {
            let n = tx
                .execute(
                    "UPDATE credentials SET secret_prefix = $3, secret_hash = $4, rotated_at = $5
                     WHERE id = $1 AND agent_id = $2 AND status = 'active'",
                    &[id, agent_id, secret_prefix, secret_hash, now],
                )
                .await
                .map_err(db_err)?;
            if n != 1 {
                return Err(EngineError::Conflict("the credential is not active".into()));
            }
        }
        DirectoryChange::RevokeCredential { agent_id, id, now } => {
            let n = tx
                .execute(
                    "UPDATE credentials SET status = 'revoked', revoked_at = COALESCE(revoked_at, $3)
                     WHERE id = $1 AND agent_id = $2",
                    &[id, agent_id, now],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "credential")?;
        }
    }
    Ok(())
}
