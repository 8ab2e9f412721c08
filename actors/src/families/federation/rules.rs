//! Federation partners: the other identity providers whose JWTs this one accepts, and
//! the rules a partner's JWT must pass — as an RFC 7523 §2.1 authorization grant at the
//! token endpoint, or at `POST /federation/verify`. Pure functions of their inputs and
//! `now`: fetching a partner's JWKS is the JwksCache actors' work (`actor/federation.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::kernel::model::{rfc3339, Millis};
use crate::kernel::privilege::{self, Refusal, ScopeCatalog};
use crate::kernel::scopes;

pub use super::assertion::{alg_allowed, candidates, peek, verify, Peeked, VerifiedJwt};
pub use super::jwks::{max_age, parse_jwks, PartnerKey, DEFAULT_MAX_AGE, MAX_KEYS, MAX_MAX_AGE, MIN_MAX_AGE};

/// The longest `max_assertion_lifetime` a partner may be given (a day).
pub const MAX_LIFETIME_SECS: u64 = 86_400;
/// The default `max_assertion_lifetime`.
pub const DEFAULT_LIFETIME_SECS: u64 = 300;
/// Algorithms a partner may be allowed: asymmetric ones only (an HMAC "verified" with a
/// public key as its secret is the classic confusion attack).
pub const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// Which subjects of the partner's JWTs are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubjectRule {
    Any,
    /// `sub` is one of `values`.
    Exact {
        values: Vec<String>,
    },
    /// `sub` starts with one of `values`.
    Prefix {
        values: Vec<String>,
    },
}

impl SubjectRule {
    pub fn allows(&self, sub: &str) -> bool {
        match self {
            SubjectRule::Any => true,
            SubjectRule::Exact { values } => values.iter().any(|v| v == sub),
            SubjectRule::Prefix { values } => values.iter().any(|v| sub.starts_with(v.as_str())),
        }
    }
}

/// How an accepted subject becomes one of the organization's agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubjectMapping {
    /// The JWT's claim `claim` (a string) is the local agent's id.
    Claim { claim: String },
    /// `sub` is looked up in `table` (partner subject → local agent id).
    Table { table: BTreeMap<String, Uuid> },
}

impl SubjectMapping {
    /// The local agent a verified JWT's claims name, if any.
    pub fn agent(&self, claims: &Value) -> Option<Uuid> {
        match self {
            SubjectMapping::Claim { claim } => {
                claims.get(claim).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
            }
            SubjectMapping::Table { table } => {
                claims.get("sub").and_then(Value::as_str).and_then(|sub| table.get(sub).copied())
            }
        }
    }
}

/// What a partner's JWTs are checked against (stored as one JSON document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartnerRules {
    /// Where the partner publishes its keys (https), or `None` with `jwks` set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// A JWKS given at registration, used instead of fetching one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    pub allowed_algs: Vec<String>,
    pub allowed_subjects: SubjectRule,
    pub subject_mapping: SubjectMapping,
    /// Scopes a grant of this partner may carry (also bounded by the agent's own).
    pub allowed_scopes: Vec<String>,
    /// Audiences accepted at `/federation/verify` (empty: the organization's audience,
    /// [`org_audience`]). The grant always requires the organization's audience.
    pub allowed_audiences: Vec<String>,
    /// Seconds: the furthest ahead of now a JWT's `exp` may be.
    pub max_assertion_lifetime: u64,
    /// Each `jti` is accepted once, cluster-wide (a JWT without one is refused).
    pub replay_protection: bool,
    /// The management scopes held by whoever last created or changed the partner (never
    /// `platform:admin`): all that the partner's grants may carry, and the strongest
    /// agent it may map to. `None` on a partner configured before this bound was
    /// recorded: its grants carry no management scope and map to no agent holding one
    /// until an administrator saves it again (it is reported at startup and in the
    /// compliance report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_with: Option<Vec<String>>,
}

/// A federation partner as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partner {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Matched exactly against `iss`.
    pub issuer: String,
    #[serde(flatten)]
    pub rules: PartnerRules,
    pub enabled: bool,
    #[serde(with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Millis>,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

impl Partner {
    /// Enabled and not expired.
    pub fn in_force(&self, now: Millis) -> bool {
        self.enabled && self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    /// The platform administrator names the organization; anyone else gets their own.
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub org_id: Option<Uuid>,
    pub issuer: String,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub jwks_uri: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub jwks: Option<Value>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub allowed_algs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub allowed_subjects: Option<SubjectRule>,
    pub subject_mapping: SubjectMapping,
    pub allowed_scopes: Vec<String>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub allowed_audiences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::kernel::model::integral")]
    pub max_assertion_lifetime: Option<u64>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub replay_protection: Option<bool>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub enabled: Option<bool>,
    /// RFC 3339; `null` or absent: never.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A change to a partner: what is given replaces what was. Giving `jwks_uri` drops a
/// static `jwks` and the other way round; `expires_at: null` clears the expiry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerPatch {
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub issuer: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub jwks_uri: Option<String>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub jwks: Option<Value>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub allowed_algs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub allowed_subjects: Option<SubjectRule>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub subject_mapping: Option<SubjectMapping>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub allowed_scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub allowed_audiences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::kernel::model::integral")]
    pub max_assertion_lifetime: Option<u64>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub replay_protection: Option<bool>,
    #[serde(default, deserialize_with = "crate::kernel::model::present")]
    pub enabled: Option<bool>,
    /// Absent: unchanged; `null`: never expires; RFC 3339: expires then.
    #[serde(default, deserialize_with = "double_option")]
    pub expires_at: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A rule broken by a partner definition: the field, and why.
pub type FieldError = (&'static str, String);

fn field(name: &'static str, message: impl Into<String>) -> FieldError {
    (name, message.into())
}

pub fn check_issuer(issuer: &str) -> Result<(), FieldError> {
    if issuer.is_empty() || issuer.len() > 512 || issuer.chars().any(char::is_control) {
        return Err(field("issuer", "1 to 512 characters, no control characters"));
    }
    Ok(())
}

pub fn check_algs(algs: &[String]) -> Result<Vec<String>, FieldError> {
    if algs.is_empty() {
        return Err(field("allowed_algs", "name at least one algorithm"));
    }
    if let Some(bad) = algs.iter().find(|a| !ALGORITHMS.contains(&a.as_str())) {
        return Err(field("allowed_algs", format!("{bad:?} is not one of {}", ALGORITHMS.join(", "))));
    }
    let mut algs = algs.to_vec();
    algs.sort();
    algs.dedup();
    Ok(algs)
}

fn check_strings(name: &'static str, values: &[String], max: usize) -> Result<(), FieldError> {
    if values.len() > max {
        return Err(field(name, format!("at most {max} entries")));
    }
    if values.iter().any(|v| v.is_empty() || v.len() > 512) {
        return Err(field(name, "each entry is 1 to 512 characters"));
    }
    Ok(())
}

pub fn check_subjects(rule: &SubjectRule) -> Result<(), FieldError> {
    match rule {
        SubjectRule::Any => Ok(()),
        SubjectRule::Exact { values } | SubjectRule::Prefix { values } => {
            if values.is_empty() {
                return Err(field("allowed_subjects", "name at least one value (or use kind \"any\")"));
            }
            check_strings("allowed_subjects", values, 100)
        }
    }
}

pub fn check_mapping(mapping: &SubjectMapping) -> Result<(), FieldError> {
    match mapping {
        SubjectMapping::Claim { claim } => {
            if claim.is_empty() || claim.len() > 128 {
                return Err(field("subject_mapping", "the claim name is 1 to 128 characters"));
            }
        }
        SubjectMapping::Table { table } => {
            if table.is_empty() || table.len() > 500 {
                return Err(field("subject_mapping", "the table has 1 to 500 entries"));
            }
            if table.keys().any(|k| k.is_empty() || k.len() > 512) {
                return Err(field("subject_mapping", "each subject is 1 to 512 characters"));
            }
        }
    }
    Ok(())
}

pub fn check_scopes(values: &[String]) -> Result<Vec<String>, FieldError> {
    scopes::normalize(values).map_err(|e| field("allowed_scopes", e.to_string()))
}

pub fn check_audiences(values: &[String]) -> Result<(), FieldError> {
    check_strings("allowed_audiences", values, 32)
}

pub fn check_lifetime(secs: u64) -> Result<u64, FieldError> {
    if !(1..=MAX_LIFETIME_SECS).contains(&secs) {
        return Err(field("max_assertion_lifetime", format!("1 to {MAX_LIFETIME_SECS} seconds")));
    }
    Ok(secs)
}

pub fn parse_expiry(text: &str) -> Result<Millis, FieldError> {
    rfc3339::parse(text).ok_or_else(|| field("expires_at", "an RFC 3339 date-time"))
}

/// The scope no federation ever yields: whoever configures a partner.
pub const NEVER_FEDERATED: &str = crate::kernel::privilege::PLATFORM_ADMIN;

/// The management scopes a partner's grants may carry: what its configurer held.
fn bound_of(rules: &PartnerRules) -> Vec<&str> {
    rules.configured_with.iter().flatten().map(String::as_str).collect()
}

/// Why a grant of `rules` may not map to an agent holding `agent_scopes`, if it may not:
/// the agent holds `platform:admin`, or is stronger than the partner's configurer
/// ([`privilege::check_not_stronger`] against the bound).
pub fn too_strong(rules: &PartnerRules, agent_scopes: &[String], catalog: &impl ScopeCatalog) -> Option<String> {
    if agent_scopes.iter().any(|s| s == NEVER_FEDERATED) {
        return Some("the JWT's subject maps to a platform administrator: never reached through federation".into());
    }
    match privilege::check_not_stronger(agent_scopes, &bound_of(rules), catalog) {
        Err(Refusal::Stronger(s)) if rules.configured_with.is_none() => Some(format!(
            "the JWT's subject maps to an agent holding {s:?}, and the partner was configured before \
             federation was bounded by its configurer's scopes: an administrator must save it again"
        )),
        Err(Refusal::Stronger(s)) => Some(format!(
            "the JWT's subject maps to an agent holding {s:?}, which whoever configured the partner did not hold"
        )),
        _ => None,
    }
}

/// What is wrong with a stored partner under the configurer rule, if anything: for the
/// startup log and the compliance report.
pub fn unbounded(rules: &PartnerRules, catalog: &impl ScopeCatalog) -> Option<String> {
    if rules.allowed_scopes.iter().any(|s| s == NEVER_FEDERATED) {
        return Some(format!("allowed_scopes names {NEVER_FEDERATED:?}, which federation never yields"));
    }
    let bound = bound_of(rules);
    let beyond: Vec<&str> = rules
        .allowed_scopes
        .iter()
        .filter(|s| catalog.is_management(s) && !bound.contains(&s.as_str()))
        .map(String::as_str)
        .collect();
    match (&rules.configured_with, beyond.is_empty()) {
        (_, false) => {
            Some(format!("allowed_scopes names management scopes its configurer did not hold: {}", beyond.join(" ")))
        }
        (None, true) => Some("configured before federation was bounded by its configurer's scopes".into()),
        (Some(_), true) => None,
    }
}

/// The audience a partner's JWT-bearer assertion must name for organization `org_id`:
/// an identifier of that organization under our issuer, so that an assertion meant for
/// one organization is never accepted into another that trusts the same issuer.
pub fn org_audience(issuer: &str, org_id: Uuid) -> String {
    format!("{}/api/v1/organizations/{org_id}", issuer.trim_end_matches('/'))
}

/// The scope a grant carries: what was asked for (everything, when nothing was), within
/// what the partner allows and what the agent holds. Sorted, without duplicates.
pub fn grant_scope(
    requested: Option<&[String]>,
    partner: &PartnerRules,
    agent: &[String],
    catalog: &impl ScopeCatalog,
) -> Vec<String> {
    let bound = bound_of(partner);
    let mut out: Vec<String> = partner
        .allowed_scopes
        .iter()
        .filter(|s| agent.contains(s))
        .filter(|s| !catalog.is_management(s) || bound.contains(&s.as_str()))
        .filter(|s| requested.is_none_or(|r| r.contains(s)))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::jose;

    /// A catalog whose management scopes are those with a namespace (`a:b`).
    struct Namespaced;
    impl ScopeCatalog for Namespaced {
        fn is_management(&self, scope: &str) -> bool {
            scope.contains(':')
        }
        fn is_lookalike(&self, _: &str) -> bool {
            false
        }
    }
    use crate::families::signing::keys::{SigningAlg, SigningKey};
    use serde_json::json;
    use std::time::Duration;

    const NOW: Millis = 1_800_000_000_000;

    fn partner(rules: impl FnOnce(&mut PartnerRules)) -> Partner {
        let mut r = PartnerRules {
            jwks_uri: None,
            jwks: None,
            allowed_algs: vec!["ES256".into()],
            allowed_subjects: SubjectRule::Prefix { values: vec!["agent-".into()] },
            subject_mapping: SubjectMapping::Claim { claim: "local".into() },
            allowed_scopes: vec!["a".into()],
            allowed_audiences: vec![],
            max_assertion_lifetime: 300,
            replay_protection: true,
            configured_with: Some(vec![]),
        };
        rules(&mut r);
        Partner {
            id: Uuid::nil(),
            org_id: Uuid::nil(),
            issuer: "https://partner.example".into(),
            rules: r,
            enabled: true,
            expires_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn key() -> (SigningKey, PartnerKey) {
        let (k, _) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
        let parsed = parse_jwks(&json!({"keys": [k.jwk()]})).unwrap().remove(0);
        (k, parsed)
    }

    fn claims(extra: Value) -> Value {
        let mut c = json!({
            "iss": "https://partner.example", "sub": "agent-1", "aud": "https://us.example",
            "exp": NOW / 1000 + 120, "iat": NOW / 1000, "jti": "j1",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn check(p: &Partner, signer: &SigningKey, key: &PartnerKey, c: Value) -> Result<VerifiedJwt, String> {
        let jwt = signer.sign(&c).unwrap();
        let peeked = peek(&jwt)?;
        verify(&jwt, &peeked.header, p, key, &["https://us.example".into()], NOW, 60)
    }

    #[test]
    fn a_good_jwt_passes_and_each_broken_rule_is_named() {
        let p = partner(|_| {});
        let (signer, key) = key();
        let ok = check(&p, &signer, &key, claims(json!({}))).unwrap();
        assert_eq!((ok.sub.as_str(), ok.jti.as_deref()), ("agent-1", Some("j1")));
        for (extra, why) in [
            (json!({"exp": NOW / 1000 - 61}), "expired"), // past the 60 s of skew
            (json!({"exp": null}), "no exp"),
            (json!({"exp": NOW / 1000 + 3600}), "too far ahead"),
            (json!({"nbf": NOW / 1000 + 120}), "nbf"),
            (json!({"iat": NOW / 1000 + 120}), "iat"),
            (json!({"aud": "https://elsewhere"}), "aud"),
            (json!({"iss": "https://partner.example/"}), "does not verify"),
            (json!({"sub": "user-1"}), "subject"),
            (json!({"jti": null}), "jti"),
        ] {
            let err = check(&p, &signer, &key, claims(extra.clone())).unwrap_err();
            assert!(err.contains(why), "{extra}: {err}");
        }
        let (other, _) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
        assert!(check(&p, &other, &key, claims(json!({}))).unwrap_err().contains("signature"));
        let lax = partner(|r| r.replay_protection = false);
        assert_eq!(check(&lax, &signer, &key, claims(json!({"jti": null}))).unwrap().jti, None);
    }

    #[test]
    fn unsigned_and_malformed_jwts_fail_before_any_key() {
        let none = format!("{}.{}.", jose::b64(br#"{"alg":"none"}"#), jose::b64(br#"{"iss":"x"}"#));
        assert!(peek(&none).is_err());
        assert!(peek("a.b").is_err());
        assert!(peek(&"a".repeat(9000)).is_err());
        let no_iss = format!("{}.{}.sig", jose::b64(br#"{"alg":"ES256"}"#), jose::b64(br#"{"sub":"x"}"#));
        assert!(peek(&no_iss).unwrap_err().contains("iss"));
        let hs = format!("{}.{}.sig", jose::b64(br#"{"alg":"HS256"}"#), jose::b64(br#"{"iss":"x"}"#));
        let peeked = peek(&hs).unwrap();
        assert!(!alg_allowed(&partner(|_| {}).rules, peeked.header.alg));
        assert!(check_algs(&["HS256".into()]).is_err());
        assert!(check_algs(&["none".into()]).is_err());
    }

    #[test]
    fn jwks_documents_are_bounded_and_checked() {
        let (k, _) = key();
        assert_eq!(parse_jwks(&json!({"keys": [k.jwk()]})).unwrap().len(), 1);
        let many: Vec<Value> = (0..MAX_KEYS + 1).map(|_| k.jwk().clone()).collect();
        assert!(parse_jwks(&json!({"keys": many})).is_err());
        let mut private = k.jwk().clone();
        private["d"] = "AAAA".into();
        assert!(parse_jwks(&json!({"keys": [private]})).unwrap_err().contains("private"));
        let mut enc = k.jwk().clone();
        enc["use"] = "enc".into();
        assert!(parse_jwks(&json!({"keys": [enc]})).is_err());
        assert!(parse_jwks(&json!({"keys": [{"kty": "oct", "k": "AAAA"}]})).is_err());
        assert!(parse_jwks(&json!([1, 2])).is_err());
        assert!(parse_jwks(&json!({"keys": [k.jwk(), {"kty": "EC", "crv": "P-999"}]})).unwrap().len() == 1);
    }

    #[test]
    fn max_age_is_clamped() {
        assert_eq!(max_age(None), DEFAULT_MAX_AGE);
        assert_eq!(max_age(Some("public, max-age=60")), MIN_MAX_AGE);
        assert_eq!(max_age(Some("max-age=7200")), Duration::from_secs(7200));
        assert_eq!(max_age(Some("max-age=999999999")), MAX_MAX_AGE);
        assert_eq!(max_age(Some("no-store")), MIN_MAX_AGE);
        assert_eq!(max_age(Some("max-age=junk")), DEFAULT_MAX_AGE);
    }

    #[test]
    fn subjects_map_and_scopes_intersect() {
        let rule = SubjectRule::Exact { values: vec!["a".into()] };
        assert!(rule.allows("a") && !rule.allows("ab"));
        let id = Uuid::now_v7();
        let table = SubjectMapping::Table { table: BTreeMap::from([("x".to_string(), id)]) };
        assert_eq!(table.agent(&json!({"sub": "x"})), Some(id));
        assert_eq!(table.agent(&json!({"sub": "y"})), None);
        let claim = SubjectMapping::Claim { claim: "agent".into() };
        assert_eq!(claim.agent(&json!({"agent": id.to_string()})), Some(id));
        assert_eq!(claim.agent(&json!({"agent": 5})), None);
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let plain = &Namespaced;
        let rules = partner(|r| r.allowed_scopes = s(&["a", "b", "c"])).rules;
        assert_eq!(grant_scope(None, &rules, &s(&["b", "c", "d"]), plain), s(&["b", "c"]));
        assert_eq!(grant_scope(Some(&s(&["c", "d"])), &rules, &s(&["b", "c", "d"]), plain), s(&["c"]));
    }

    /// A partner yields no management scope its configurer did not hold, never maps to a
    /// platform administrator or an agent stronger than its configurer, and one saved
    /// before the bound was recorded is reported and yields no management scope.
    #[test]
    fn what_a_partner_yields_is_bounded_by_its_configurer() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let management = &Namespaced;
        let rules = partner(|r| {
            r.allowed_scopes = s(&["agents:read", "agents:write", "search"]);
            r.configured_with = Some(s(&["agents:read"]));
        })
        .rules;
        let agent = s(&["agents:read", "agents:write", "search"]);
        assert_eq!(grant_scope(None, &rules, &agent, management), s(&["agents:read", "search"]));
        assert!(unbounded(&rules, management).is_some_and(|why| why.contains("agents:write")));
        assert!(too_strong(&rules, &agent, management).is_some_and(|why| why.contains("agents:write")));
        assert_eq!(too_strong(&rules, &s(&["agents:read", "search"]), management), None);
        assert!(too_strong(&rules, &s(&["platform:admin"]), management).is_some());

        let legacy = partner(|r| {
            r.allowed_scopes = s(&["agents:read", "search"]);
            r.configured_with = None;
        })
        .rules;
        assert!(unbounded(&legacy, management).is_some());
        assert_eq!(grant_scope(None, &legacy, &agent, management), s(&["search"]));
        assert!(too_strong(&legacy, &s(&["agents:read"]), management).is_some());
        assert_eq!(too_strong(&legacy, &s(&["search"]), management), None);
        assert_eq!(
            org_audience("https://idp.example/", Uuid::nil()),
            format!("https://idp.example/api/v1/organizations/{}", Uuid::nil())
        );
    }
}
