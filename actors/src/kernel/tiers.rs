//! Tiers and their limits: what an organization on each tier may have and do. Plain
//! data, configured once (the TOML file's `[tiers.*]`) and the same on every node, so a
//! rule that reads an organization's tier inside a transaction decides the same way
//! everywhere, at once after a tier change.

use serde::Serialize;

use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Tier;

/// One tier's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TierLimits {
    /// Agents an organization may have.
    pub max_agents: Option<u64>,
    /// Counted calls (token requests and management calls) per UTC day.
    pub calls_per_day: Option<u64>,
    /// Webhook subscriptions an organization may have.
    pub max_webhooks: Option<u64>,
    /// Token requests a second one client may make (per node), in bursts of `token_burst`.
    pub token_rate: u32,
    pub token_burst: u32,
    /// How long an organization's audit events stay in the store before they are
    /// archived and removed (seconds; `None`: kept).
    pub audit_retention_secs: Option<u64>,
}

/// A tier and its limits, as `GET /api/v1/tiers` lists them (`null`: unlimited).
#[derive(Debug, Clone, Serialize)]
pub struct TierInfo {
    pub name: Tier,
    #[serde(flatten)]
    pub limits: TierLimits,
}

/// The limits of every tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTable {
    pub free: TierLimits,
    pub pro: TierLimits,
    pub enterprise: TierLimits,
}

const DAY: u64 = 86_400;

impl Default for TierTable {
    fn default() -> Self {
        TierTable {
            free: TierLimits {
                max_agents: Some(10),
                calls_per_day: Some(1_000),
                max_webhooks: Some(1),
                token_rate: 50,
                token_burst: 100,
                audit_retention_secs: Some(90 * DAY),
            },
            pro: TierLimits {
                max_agents: Some(1_000),
                calls_per_day: Some(50_000),
                max_webhooks: Some(20),
                token_rate: 50,
                token_burst: 100,
                audit_retention_secs: Some(365 * DAY),
            },
            enterprise: TierLimits {
                max_agents: None,
                calls_per_day: None,
                max_webhooks: None,
                token_rate: 500,
                token_burst: 1_000,
                audit_retention_secs: Some(7 * 365 * DAY),
            },
        }
    }
}

impl TierTable {
    pub fn limits(&self, tier: Tier) -> TierLimits {
        match tier {
            Tier::Free => self.free,
            Tier::Pro => self.pro,
            Tier::Enterprise => self.enterprise,
        }
    }

    /// Every tier with its limits, cheapest first.
    pub fn all(&self) -> [(Tier, TierLimits); 3] {
        [(Tier::Free, self.free), (Tier::Pro, self.pro), (Tier::Enterprise, self.enterprise)]
    }
}

/// `TierLimit` if an organization on `tier` with `agents` agents may not have another.
pub(crate) fn check_agent_room(tier: &str, agents: u64, tiers: &TierTable) -> Result<()> {
    check_room(tier, agents, "agents", |t| tiers.limits(t).max_agents)
}

/// `TierLimit` if an organization on `tier` with `webhooks` subscriptions may not have
/// another.
pub(crate) fn check_webhook_room(tier: &str, webhooks: u64, tiers: &TierTable) -> Result<()> {
    check_room(tier, webhooks, "webhook subscriptions", |t| tiers.limits(t).max_webhooks)
}

fn check_room(tier: &str, have: u64, what: &'static str, limit: impl Fn(Tier) -> Option<u64>) -> Result<()> {
    let tier = Tier::parse(tier).ok_or_else(|| EngineError::internal(format!("bad tier column {tier:?}")))?;
    match limit(tier) {
        Some(limit) if have >= limit => Err(EngineError::TierLimit { tier, what, limit }),
        _ => Ok(()),
    }
}
