//! The tiers file's `[tiers.*]` tables: each tier's limits, as given, applied over the
//! defaults.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTiers {
    pub(super) free: Option<FileTierLimits>,
    pub(super) pro: Option<FileTierLimits>,
    pub(super) enterprise: Option<FileTierLimits>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTierLimits {
    max_agents: Option<Limit>,
    calls_per_day: Option<Limit>,
    max_webhooks: Option<Limit>,
    token_rate: Option<u32>,
    token_burst: Option<u32>,
    /// Days an organization's audit events stay in the store, or `unlimited`.
    audit_retention_days: Option<Limit>,
}

/// A limit in the file: a count, or the word `unlimited`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Limit {
    Count(u64),
    Word(String),
}

impl Limit {
    fn resolve(&self, name: &str) -> anyhow::Result<Option<u64>> {
        match self {
            Limit::Count(n) => Ok(Some(*n)),
            Limit::Word(w) if w == "unlimited" => Ok(None),
            Limit::Word(w) => anyhow::bail!("{name} must be a number or \"unlimited\", not {w:?}"),
        }
    }
}

impl FileTierLimits {
    pub(super) fn apply(
        &self,
        tier: &str,
        limits: &mut agentidp_engine::kernel::tiers::TierLimits,
    ) -> anyhow::Result<()> {
        for (name, given, into) in [
            ("max_agents", &self.max_agents, &mut limits.max_agents),
            ("calls_per_day", &self.calls_per_day, &mut limits.calls_per_day),
            ("max_webhooks", &self.max_webhooks, &mut limits.max_webhooks),
        ] {
            if let Some(limit) = given {
                *into = limit.resolve(&format!("tiers.{tier}.{name}"))?;
            }
        }
        for (name, given, into) in [
            ("token_rate", self.token_rate, &mut limits.token_rate),
            ("token_burst", self.token_burst, &mut limits.token_burst),
        ] {
            if let Some(n) = given {
                anyhow::ensure!((1..=1_000_000).contains(&n), "tiers.{tier}.{name} must be 1 to 1000000");
                *into = n;
            }
        }
        if let Some(limit) = &self.audit_retention_days {
            let days = limit.resolve(&format!("tiers.{tier}.audit_retention_days"))?;
            anyhow::ensure!(
                days.is_none_or(|d| (1..=36_500).contains(&d)),
                "tiers.{tier}.audit_retention_days must be 1 to 36500 or \"unlimited\""
            );
            limits.audit_retention_secs = days.map(|d| d * 86_400);
        }
        Ok(())
    }
}
