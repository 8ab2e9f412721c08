//! Directory changes and the cluster change feed, written inside the audit writer's
//! group commit (see [`super::PostgresStore`]'s `append_audit`), so a change is durable
//! exactly when its audit event is.

use tokio_postgres::Transaction;

use super::{db_err, json_text, AGENT_COLS};
use crate::coord::ClusterEvent;
use crate::error::{EngineError, Result};
use crate::model::Millis;
use crate::store::{check_agent_room, check_webhook_room, same_issuer, Change};

/// Apply one change on the open transaction.
pub(super) async fn apply(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    match change {
        Change::InsertOrg(o) => {
            tx.execute(
                "INSERT INTO organizations (id, name, tier, created_at, updated_at, delegation)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&o.id, &o.name, &o.tier.as_str(), &o.created_at, &o.updated_at, &json_text(&o.delegation)?],
            )
            .await
            .map_err(db_err)?;
        }
        Change::UpdateOrg(o) => {
            let n = tx
                .execute(
                    "UPDATE organizations SET name = $2, tier = $3, updated_at = $4 WHERE id = $1",
                    &[&o.id, &o.name, &o.tier.as_str(), &o.updated_at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "organization")?;
        }
        Change::SetOrgDelegation { org_id, settings, at } => {
            let n = tx
                .execute(
                    "UPDATE organizations SET delegation = $2, updated_at = $3 WHERE id = $1",
                    &[org_id, &json_text(settings)?, at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "organization")?;
        }
        Change::DeleteOrg(id) => {
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
        // The organization's row lock orders concurrent creations in it, on every node.
        Change::HasRoomForAgent { org_id, tiers } => {
            let (tier, agents) = tier_and_count(tx, org_id, "agents").await?;
            check_agent_room(&tier, agents, tiers)?;
        }
        Change::HasRoomForWebhook { org_id, tiers } => {
            let (tier, webhooks) = tier_and_count(tx, org_id, "webhook_subscriptions").await?;
            check_webhook_room(&tier, webhooks, tiers)?;
        }
        Change::InsertAgent(a) => {
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
        Change::UpdateAgent(a) => {
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
        Change::DeleteAgent { org_id, id } => {
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
        Change::InsertCredential { credential: c, secret_hash } => {
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
        Change::RotateCredential { agent_id, id, secret_prefix, secret_hash, now } => {
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
        Change::RevokeCredential { agent_id, id, now } => {
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
        Change::InsertDelegation(d) => {
            if let Some(parent) = d.parent_id {
                // The parent's row lock orders this insert after (or before) a revocation
                // of the parent on any node.
                let row = tx
                    .query_opt(
                        "SELECT status FROM delegation_chains WHERE id = $1 AND org_id = $2 FOR UPDATE",
                        &[&parent, &d.org_id],
                    )
                    .await
                    .map_err(db_err)?;
                if row.map(|r| r.get::<_, String>(0)).as_deref() != Some("active") {
                    return Err(EngineError::Conflict("the delegation this one is made from is revoked".into()));
                }
            }
            let (depth, max_depth) = (d.depth as i32, d.max_depth as i32);
            tx.execute(
                &format!(
                    "INSERT INTO delegation_chains ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                    super::delegations::DELEGATION_COLS
                ),
                &[
                    &d.id,
                    &d.org_id,
                    &d.chain_id,
                    &d.parent_id,
                    &d.delegator_id,
                    &d.delegatee_id,
                    &d.scope,
                    &d.audience,
                    &depth,
                    &max_depth,
                    &d.token_format.as_str(),
                    &d.token_id,
                    &d.created_at,
                    &d.expires_at,
                    &d.status.as_str(),
                    &d.revoked_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        Change::RevokeDelegation { org_id, id, now } => {
            let exists = tx
                .query_opt("SELECT 1 FROM delegation_chains WHERE id = $1 AND org_id = $2 FOR UPDATE", &[id, org_id])
                .await
                .map_err(db_err)?;
            if exists.is_none() {
                return Err(EngineError::not_found("delegation"));
            }
            tx.execute(
                "WITH RECURSIVE below(id) AS (
                     SELECT $1::uuid
                     UNION SELECT c.id FROM delegation_chains c JOIN below b ON c.parent_id = b.id
                 )
                 UPDATE delegation_chains SET status = 'revoked', revoked_at = $3
                 WHERE org_id = $2 AND status = 'active' AND id IN (SELECT id FROM below)",
                &[id, org_id, now],
            )
            .await
            .map_err(db_err)?;
        }
        Change::InsertWebhook(r) => {
            let w = &r.webhook;
            tx.execute(
                "INSERT INTO webhook_subscriptions (id, org_id, url, event_types, description, enabled, disabled_reason,
                     secret_kid, secret, secret_ref, audit_cursor, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                     COALESCE((SELECT seq FROM audit_heads WHERE chain = $2), 0), $11, $12)",
                &[
                    &w.id,
                    &w.org_id,
                    &w.url,
                    &json_text(&w.event_types)?,
                    &w.description,
                    &w.enabled,
                    &w.disabled_reason,
                    &r.secret.kid,
                    &r.secret.sealed,
                    &r.secret.key_ref,
                    &w.created_at,
                    &w.updated_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        Change::UpdateWebhook(w) => {
            let n = tx
                .execute(
                    "UPDATE webhook_subscriptions SET url = $3, event_types = $4, description = $5, enabled = $6,
                         disabled_reason = $7, updated_at = $8,
                         failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END
                     WHERE id = $1 AND org_id = $2",
                    &[
                        &w.id,
                        &w.org_id,
                        &w.url,
                        &json_text(&w.event_types)?,
                        &w.description,
                        &w.enabled,
                        &w.disabled_reason,
                        &w.updated_at,
                    ],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        Change::RotateWebhookSecret { org_id, id, secret, previous_until, at } => {
            let n = tx
                .execute(
                    "UPDATE webhook_subscriptions SET previous_kid = secret_kid, previous = secret,
                         previous_ref = secret_ref, previous_until = $3,
                         secret_kid = $4, secret = $5, secret_ref = $6, updated_at = $7
                     WHERE id = $1 AND org_id = $2",
                    &[id, org_id, previous_until, &secret.kid, &secret.sealed, &secret.key_ref, at],
                )
                .await
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        Change::DeleteWebhook { org_id, id } => {
            let n = tx
                .execute("DELETE FROM webhook_subscriptions WHERE id = $1 AND org_id = $2", &[id, org_id])
                .await
                .map_err(db_err)?;
            one_row(n, "webhook")?;
        }
        Change::InsertPartner(p) => {
            tx.execute(
                "INSERT INTO federation_partners (id, org_id, issuer, rules, enabled, expires_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&p.id, &p.org_id, &p.issuer, &json_text(&p.rules)?, &p.enabled, &p.expires_at, &p.created_at, &p.updated_at],
            )
            .await
            .map_err(|e| same_issuer(db_err(e)))?;
        }
        Change::UpdatePartner(p) => {
            let n = tx
                .execute(
                    "UPDATE federation_partners SET issuer = $3, rules = $4, enabled = $5, expires_at = $6,
                         updated_at = $7
                     WHERE id = $1 AND org_id = $2",
                    &[&p.id, &p.org_id, &p.issuer, &json_text(&p.rules)?, &p.enabled, &p.expires_at, &p.updated_at],
                )
                .await
                .map_err(|e| same_issuer(db_err(e)))?;
            one_row(n, "federation partner")?;
        }
        Change::DeletePartner { org_id, id } => {
            let n = tx
                .execute("DELETE FROM federation_partners WHERE id = $1 AND org_id = $2", &[id, org_id])
                .await
                .map_err(db_err)?;
            one_row(n, "federation partner")?;
        }
        Change::InsertDidKey(k) => {
            let sealed = k.sealed.as_ref();
            tx.execute(
                "INSERT INTO agent_did_keys (agent_id, key_id, org_id, public_jwk, sealed_kid, sealed, sealed_ref, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &k.agent_id,
                    &k.key_id,
                    &k.org_id,
                    &json_text(&k.public_jwk)?,
                    &sealed.map(|s| &s.kid),
                    &sealed.map(|s| &s.sealed),
                    &sealed.and_then(|s| s.key_ref.as_ref()),
                    &k.created_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        Change::ClaimStripeEvent { id, kind, at } => {
            tx.execute("INSERT INTO stripe_events (id, type, received_at) VALUES ($1, $2, $3)", &[id, kind, at])
                .await
                .map_err(db_err)?;
        }
        Change::PutSubscription(t) => {
            tx.execute(
                "INSERT INTO tenant_subscriptions (org_id, customer_id, subscription_id, tier, status,
                     current_period_end, cancel_at_period_end, grace_until, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (org_id) DO UPDATE SET customer_id = excluded.customer_id,
                     subscription_id = excluded.subscription_id, tier = excluded.tier, status = excluded.status,
                     current_period_end = excluded.current_period_end,
                     cancel_at_period_end = excluded.cancel_at_period_end, grace_until = excluded.grace_until,
                     updated_at = excluded.updated_at",
                &[
                    &t.org_id,
                    &t.customer_id,
                    &t.subscription_id,
                    &t.tier.as_str(),
                    &t.status,
                    &t.current_period_end,
                    &t.cancel_at_period_end,
                    &t.grace_until,
                    &t.updated_at,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        Change::RemoveDidKey { agent_id, key_id } => {
            let n = tx
                .execute("DELETE FROM agent_did_keys WHERE agent_id = $1 AND key_id = $2", &[agent_id, key_id])
                .await
                .map_err(db_err)?;
            one_row(n, "DID key")?;
        }
        Change::RevokeToken { revocation: r, now } => {
            tx.execute(
                "INSERT INTO token_revocations (jti, org_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (jti) DO NOTHING",
                &[&r.jti, &r.org_id, &r.expires_at, now],
            )
            .await
            .map_err(db_err)?;
        }
    }
    Ok(())
}

/// The organization's committed tier, under its row lock, and how many rows of `table`
/// it has.
async fn tier_and_count(tx: &Transaction<'_>, org_id: &uuid::Uuid, table: &str) -> Result<(String, u64)> {
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

fn one_row(n: u64, kind: &'static str) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(EngineError::not_found(kind))
    }
}

/// Record `event` in the cluster change feed.
pub(super) async fn announce(tx: &Transaction<'_>, event: &ClusterEvent, now: Millis) -> Result<()> {
    tx.execute("INSERT INTO cluster_events (event, created_at) VALUES ($1, $2)", &[&json_text(event)?, &now])
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Apply an entry's changes and announcement inside a savepoint: kept if all succeed,
/// undone (leaving the enclosing transaction as it was) if one fails.
pub(super) async fn apply_entry(
    tx: &Transaction<'_>,
    changes: &[Change],
    announcement: Option<&ClusterEvent>,
    now: Millis,
) -> Result<()> {
    tx.batch_execute("SAVEPOINT entry").await.map_err(db_err)?;
    let applied = async {
        for change in changes {
            apply(tx, change).await?;
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
