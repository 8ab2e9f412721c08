//! Directory changes and the cluster change feed, written inside the audit writer's
//! group commit (see [`super::SqliteStore`]'s `append_audit`), so a change is durable
//! exactly when its audit event is.

use rusqlite::{params, Connection, OptionalExtension};

use super::{db_err, json_text};
use crate::coord::ClusterEvent;
use crate::error::{EngineError, Result};
use crate::model::Millis;
use crate::store::{check_agent_room, check_webhook_room, same_issuer, Change};

/// Apply one change on the writer's open transaction.
pub(super) fn apply(conn: &Connection, change: &Change) -> Result<()> {
    match change {
        Change::InsertOrg(o) => {
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
        Change::UpdateOrg(o) => {
            let n = conn
                .prepare_cached("UPDATE organizations SET name = ?2, tier = ?3, updated_at = ?4 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![o.id.to_string(), o.name, o.tier.as_str(), o.updated_at]))
                .map_err(db_err)?;
            one_row(n, "organization")?;
        }
        Change::SetOrgDelegation { org_id, settings, at } => {
            let settings = json_text(settings)?;
            let n = conn
                .prepare_cached("UPDATE organizations SET delegation = ?2, updated_at = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![org_id.to_string(), settings, at]))
                .map_err(db_err)?;
            one_row(n, "organization")?;
        }
        Change::DeleteOrg(id) => {
            conn.execute(
                "INSERT INTO deleted_agents (agent_id, org_id) SELECT id, org_id FROM agents WHERE org_id = ?1
                 ON CONFLICT (agent_id) DO NOTHING",
                params![id.to_string()],
            )
            .map_err(db_err)?;
            let n = conn.execute("DELETE FROM organizations WHERE id = ?1", params![id.to_string()]).map_err(db_err)?;
            one_row(n, "organization")?;
        }
        // The writer connection is SQLite's only writer: nothing commits between these
        // counts and the inserts that follow them.
        Change::HasRoomForAgent { org_id, tiers } => {
            let (tier, agents) = tier_and_count(conn, *org_id, "agents")?;
            check_agent_room(&tier, agents, tiers)?;
        }
        Change::HasRoomForWebhook { org_id, tiers } => {
            let (tier, webhooks) = tier_and_count(conn, *org_id, "webhook_subscriptions")?;
            check_webhook_room(&tier, webhooks, tiers)?;
        }
        Change::InsertWebhook(r) => {
            let w = &r.webhook;
            let types = json_text(&w.event_types)?;
            conn.prepare_cached(
                "INSERT INTO webhook_subscriptions (id, org_id, url, event_types, description, enabled, disabled_reason,
                     secret_kid, secret, secret_ref, audit_cursor, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                     COALESCE((SELECT seq FROM audit_heads WHERE chain = ?2), 0), ?11, ?12)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    w.id.to_string(),
                    w.org_id.to_string(),
                    w.url,
                    types,
                    w.description,
                    w.enabled,
                    w.disabled_reason,
                    r.secret.kid,
                    r.secret.sealed,
                    r.secret.key_ref,
                    w.created_at,
                    w.updated_at
                ])
            })
            .map_err(db_err)?;
        }
        Change::UpdateWebhook(w) => {
            let types = json_text(&w.event_types)?;
            let n = conn
                .prepare_cached(
                    "UPDATE webhook_subscriptions SET url = ?3, event_types = ?4, description = ?5, enabled = ?6,
                         disabled_reason = ?7, updated_at = ?8,
                         failing_since = CASE WHEN ?6 AND NOT enabled THEN NULL ELSE failing_since END
                     WHERE id = ?1 AND org_id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        w.id.to_string(),
                        w.org_id.to_string(),
                        w.url,
                        types,
                        w.description,
                        w.enabled,
                        w.disabled_reason,
                        w.updated_at
                    ])
                })
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        Change::RotateWebhookSecret { org_id, id, secret, previous_until, at } => {
            let n = conn
                .execute(
                    "UPDATE webhook_subscriptions SET previous_kid = secret_kid, previous = secret,
                         previous_ref = secret_ref, previous_until = ?3,
                         secret_kid = ?4, secret = ?5, secret_ref = ?6, updated_at = ?7
                     WHERE id = ?1 AND org_id = ?2",
                    params![
                        id.to_string(),
                        org_id.to_string(),
                        previous_until,
                        secret.kid,
                        secret.sealed,
                        secret.key_ref,
                        at
                    ],
                )
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        Change::DeleteWebhook { org_id, id } => {
            let n = conn
                .execute(
                    "DELETE FROM webhook_subscriptions WHERE id = ?1 AND org_id = ?2",
                    params![id.to_string(), org_id.to_string()],
                )
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        Change::InsertPartner(p) => {
            let rules = json_text(&p.rules)?;
            conn.prepare_cached(
                "INSERT INTO federation_partners (id, org_id, issuer, rules, enabled, expires_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    p.id.to_string(),
                    p.org_id.to_string(),
                    p.issuer,
                    rules,
                    p.enabled,
                    p.expires_at,
                    p.created_at,
                    p.updated_at
                ])
            })
            .map_err(|e| same_issuer(db_err(e)))?;
        }
        Change::UpdatePartner(p) => {
            let rules = json_text(&p.rules)?;
            let n = conn
                .prepare_cached(
                    "UPDATE federation_partners SET issuer = ?3, rules = ?4, enabled = ?5, expires_at = ?6,
                         updated_at = ?7
                     WHERE id = ?1 AND org_id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        p.id.to_string(),
                        p.org_id.to_string(),
                        p.issuer,
                        rules,
                        p.enabled,
                        p.expires_at,
                        p.updated_at
                    ])
                })
                .map_err(|e| same_issuer(db_err(e)))?;
            one_row(n, "federation partner")?;
        }
        Change::DeletePartner { org_id, id } => {
            let n = conn
                .execute(
                    "DELETE FROM federation_partners WHERE id = ?1 AND org_id = ?2",
                    params![id.to_string(), org_id.to_string()],
                )
                .map_err(db_err)?;
            one_row(n, "federation partner")?;
        }
        Change::InsertDidKey(k) => {
            let jwk = json_text(&k.public_jwk)?;
            let sealed = k.sealed.as_ref();
            conn.prepare_cached(
                "INSERT INTO agent_did_keys (agent_id, key_id, org_id, public_jwk, sealed_kid, sealed, sealed_ref, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    k.agent_id.to_string(),
                    k.key_id,
                    k.org_id.to_string(),
                    jwk,
                    sealed.map(|s| &s.kid),
                    sealed.map(|s| &s.sealed),
                    sealed.and_then(|s| s.key_ref.as_ref()),
                    k.created_at
                ])
            })
            .map_err(db_err)?;
        }
        Change::ClaimStripeEvent { id, kind, at } => {
            conn.prepare_cached("INSERT INTO stripe_events (id, type, received_at) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![id, kind, at]))
                .map_err(db_err)?;
        }
        Change::PutSubscription(t) => {
            conn.prepare_cached(&format!(
                "INSERT INTO tenant_subscriptions ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (org_id) DO UPDATE SET customer_id = excluded.customer_id,
                     subscription_id = excluded.subscription_id, tier = excluded.tier, status = excluded.status,
                     current_period_end = excluded.current_period_end,
                     cancel_at_period_end = excluded.cancel_at_period_end, grace_until = excluded.grace_until,
                     updated_at = excluded.updated_at",
                super::billing::SUBSCRIPTION_COLS
            ))
            .and_then(|mut s| {
                s.execute(params![
                    t.org_id.to_string(),
                    t.customer_id,
                    t.subscription_id,
                    t.tier.as_str(),
                    t.status,
                    t.current_period_end,
                    t.cancel_at_period_end,
                    t.grace_until,
                    t.updated_at
                ])
            })
            .map_err(db_err)?;
        }
        Change::RemoveDidKey { agent_id, key_id } => {
            let n = conn
                .execute(
                    "DELETE FROM agent_did_keys WHERE agent_id = ?1 AND key_id = ?2",
                    params![agent_id.to_string(), key_id],
                )
                .map_err(db_err)?;
            one_row(n, "DID key")?;
        }
        Change::InsertAgent(a) => {
            let (scopes, metadata) = (json_text(&a.scopes)?, json_text(&a.metadata)?);
            conn.prepare_cached(&format!(
                "INSERT INTO agents ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                super::AGENT_COLS
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
        Change::UpdateAgent(a) => {
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
        Change::DeleteAgent { org_id, id } => {
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
        Change::InsertCredential { credential: c, secret_hash } => {
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
        Change::RotateCredential { agent_id, id, secret_prefix, secret_hash, now } => {
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
        Change::RevokeCredential { agent_id, id, now } => {
            let n = conn
                .execute(
                    "UPDATE credentials SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?3)
                     WHERE id = ?1 AND agent_id = ?2",
                    params![id.to_string(), agent_id.to_string(), now],
                )
                .map_err(db_err)?;
            one_row(n, "credential")?;
        }
        Change::InsertDelegation(d) => {
            if let Some(parent) = d.parent_id {
                // The one writer: nothing commits between this read and the insert.
                let status: Option<String> = conn
                    .query_row(
                        "SELECT status FROM delegation_chains WHERE id = ?1 AND org_id = ?2",
                        params![parent.to_string(), d.org_id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db_err)?;
                if status.as_deref() != Some("active") {
                    return Err(EngineError::Conflict("the delegation this one is made from is revoked".into()));
                }
            }
            conn.prepare_cached(&format!(
                "INSERT INTO delegation_chains ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                super::delegations::DELEGATION_COLS
            ))
            .and_then(|mut s| {
                s.execute(params![
                    d.id.to_string(),
                    d.org_id.to_string(),
                    d.chain_id.to_string(),
                    d.parent_id.map(|p| p.to_string()),
                    d.delegator_id.to_string(),
                    d.delegatee_id.to_string(),
                    d.scope,
                    d.audience,
                    d.depth,
                    d.max_depth,
                    d.token_format.as_str(),
                    d.token_id,
                    d.created_at,
                    d.expires_at,
                    d.status.as_str(),
                    d.revoked_at
                ])
            })
            .map_err(db_err)?;
        }
        Change::RevokeDelegation { org_id, id, now } => {
            let exists: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM delegation_chains WHERE id = ?1 AND org_id = ?2)",
                    params![id.to_string(), org_id.to_string()],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if !exists {
                return Err(EngineError::not_found("delegation"));
            }
            conn.execute(
                "WITH RECURSIVE below(id) AS (
                     SELECT ?1
                     UNION SELECT c.id FROM delegation_chains c JOIN below b ON c.parent_id = b.id
                 )
                 UPDATE delegation_chains SET status = 'revoked', revoked_at = ?3
                 WHERE org_id = ?2 AND status = 'active' AND id IN (SELECT id FROM below)",
                params![id.to_string(), org_id.to_string(), now],
            )
            .map_err(db_err)?;
        }
        Change::RevokeToken { revocation: r, now } => {
            conn.prepare_cached(
                "INSERT INTO token_revocations (jti, org_id, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (jti) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![r.jti, r.org_id.to_string(), r.expires_at, now]))
            .map_err(db_err)?;
        }
    }
    Ok(())
}

/// The organization's committed tier and how many rows of `table` it has.
fn tier_and_count(conn: &Connection, org_id: uuid::Uuid, table: &str) -> Result<(String, u64)> {
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

fn one_row(n: usize, kind: &'static str) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(EngineError::not_found(kind))
    }
}

/// Record `event` in the cluster change feed.
pub(super) fn announce(conn: &Connection, event: &ClusterEvent, now: Millis) -> Result<()> {
    let text = json_text(event)?;
    conn.prepare_cached("INSERT INTO cluster_events (event, created_at) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![text, now]))
        .map_err(db_err)?;
    Ok(())
}

/// Run `f` inside a savepoint: its writes stay if it succeeds and are undone if it fails,
/// leaving the enclosing transaction as it was.
pub(super) fn in_savepoint<T>(conn: &Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
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
