//! What an organization's tier allows, and what it has used of it today.

use uuid::Uuid;

use crate::engine::{Call, Engine};
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{Allowance, Usage};
use crate::kernel::tiers::TierInfo;

impl Engine {
    /// What `org_id` has used of its tier today: calls, agents, webhook subscriptions.
    pub async fn usage(&self, call: &Call, org_id: Uuid) -> Result<Usage> {
        self.authorize(call, "organizations.usage", org_id)?;
        self.usage_of(org_id).await
    }

    /// What `org_id` has used of its tier today.
    pub(crate) async fn usage_of(&self, org_id: Uuid) -> Result<Usage> {
        let org = self.shared.store.get_org(org_id).await?.ok_or(EngineError::not_found("organization"))?;
        let limits = self.shared.config.tiers.limits(org.tier);
        let now = self.shared.now_ms();
        let day = now.div_euclid(86_400_000);
        let store = self.shared.store.as_ref();
        Ok(Usage {
            org_id,
            tier: org.tier,
            day: crate::kernel::model::rfc3339::format(day * 86_400_000)[..10].to_string(),
            calls: Allowance { used: self.shared.quota.used_today(org_id).await?, limit: limits.calls_per_day },
            agents: Allowance { used: store.count_agents(org_id).await?, limit: limits.max_agents },
            webhooks: Allowance { used: store.count_webhooks(org_id).await?, limit: limits.max_webhooks },
            resets_at: (day + 1) * 86_400_000,
        })
    }

    /// The tiers and their limits (any caller that may read its organization).
    pub fn tiers(&self, call: &Call) -> Result<Vec<TierInfo>> {
        self.authorize(call, "tiers.list", call.caller.org_id)?;
        Ok(self.shared.config.tiers.all().into_iter().map(|(tier, limits)| TierInfo { name: tier, limits }).collect())
    }
}
