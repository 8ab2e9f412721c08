//! Access-token claims (RFC 9068 JWT profile) and the rules for building them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims of every access token AgentIdP issues.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-delimited, as RFC 9068 §2.2.3 prescribes.
    pub scope: String,
    pub org_id: Uuid,
    /// Confirmation of a sender-constrained (DPoP) token: the key's thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 actor: who is acting on behalf of `sub` (nested for chains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// RFC 8693 §4.4: the one agent that may act for `sub` through token exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<serde_json::Value>,
    /// A delegation token's chain (the root link's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<Uuid>,
    /// A delegation token's own link in its chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation_id: Option<Uuid>,
}

/// RFC 9449 §6.1 `cnf` with the JWK SHA-256 thumbprint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Confirmation {
    pub jkt: String,
}

impl crate::kernel::validity::TimeClaims for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
    fn nbf(&self) -> Option<i64> {
        Some(self.nbf)
    }
}

/// Inputs of a token that are not decided by the issuer's configuration.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub agent_id: Uuid,
    pub org_id: Uuid,
    pub client_id: &'a str,
    pub scopes: &'a [String],
}

/// Build the claims of a token issued at `now` (unix seconds).
pub fn build(grant: &Grant<'_>, issuer: &str, audience: &str, now: i64, ttl_secs: i64, jti: Uuid) -> AccessClaims {
    AccessClaims {
        iss: issuer.to_string(),
        sub: grant.agent_id.to_string(),
        aud: audience.to_string(),
        exp: now + ttl_secs,
        iat: now,
        nbf: now,
        jti: jti.to_string(),
        client_id: grant.client_id.to_string(),
        scope: grant.scopes.join(" "),
        org_id: grant.org_id,
        cnf: None,
        act: None,
        may_act: None,
        chain_id: None,
        delegation_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_carry_the_grant_and_expire_after_ttl() {
        let (agent, org, jti) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let scopes = vec!["a".to_string(), "b".to_string()];
        let c = build(
            &Grant { agent_id: agent, org_id: org, client_id: "cid", scopes: &scopes },
            "iss",
            "aud",
            1000,
            60,
            jti,
        );
        assert_eq!((c.iat, c.nbf, c.exp), (1000, 1000, 1060));
        assert_eq!(c.scope, "a b");
        assert_eq!(c.sub, agent.to_string());
        assert_eq!(c.org_id, org);
    }
}
