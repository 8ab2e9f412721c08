//! The privilege rules, pure: who may grant which scope, whom a caller may change, what a
//! configured trust (a federation partner) may yield, and that a change never leaves no
//! platform administrator. The rule behind them all: a caller never grants more than it
//! holds, and never takes power from (or through) a stronger principal. Only management
//! scopes count — an organization's own scopes (`search:query`) carry no power here.
//!
//! The engine gathers the inputs (the caller's scopes, the target as stored, how many
//! other administrators are active) and maps a [`Refusal`] to its error.

use std::collections::BTreeSet;

/// The scope of the platform administrator.
pub const PLATFORM_ADMIN: &str = "platform:admin";

/// Which scopes have management meaning, and which only look like they do.
pub trait ScopeCatalog {
    fn is_management(&self, scope: &str) -> bool;
    /// A case variant, a wildcard or another name in a reserved namespace.
    fn is_lookalike(&self, scope: &str) -> bool;
}

/// Why a privilege rule refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The scope looks like a management scope without being one.
    Lookalike(String),
    /// A management scope the caller does not hold.
    NotHeld(String),
    /// The target holds a management scope the caller does not.
    Stronger(String),
    /// The change would leave no active platform administrator.
    LastPlatformAdmin,
}

/// The first management scope of `scopes` that `held` lacks.
fn beyond<'a>(scopes: &'a [String], held: &[&str], catalog: &impl ScopeCatalog) -> Option<&'a String> {
    scopes.iter().find(|s| catalog.is_management(s) && !held.contains(&s.as_str()))
}

/// May a caller holding `held` grant `requested` (normalized scope tokens)? No look-alike
/// of a management scope, and no management scope the caller does not hold.
pub fn check_grantable(requested: &[String], held: &[&str], catalog: &impl ScopeCatalog) -> Result<(), Refusal> {
    if let Some(s) = requested.iter().find(|s| catalog.is_lookalike(s)) {
        return Err(Refusal::Lookalike(s.clone()));
    }
    beyond(requested, held, catalog).map_or(Ok(()), |s| Err(Refusal::NotHeld(s.clone())))
}

/// May a caller holding `held` change (suspend, delete, re-credential) a principal
/// holding `target`? Only if it holds every management scope the target holds.
pub fn check_not_stronger(target: &[String], held: &[&str], catalog: &impl ScopeCatalog) -> Result<(), Refusal> {
    beyond(target, held, catalog).map_or(Ok(()), |s| Err(Refusal::Stronger(s.clone())))
}

/// What a trust configured by a caller holding `held` may yield at most: its management
/// scopes, sorted — never `platform:admin`, which no configuration path yields.
pub fn configurer_bound(held: &[&str], catalog: &impl ScopeCatalog) -> Vec<String> {
    let bound: BTreeSet<&str> =
        held.iter().copied().filter(|s| catalog.is_management(s) && *s != PLATFORM_ADMIN).collect();
    bound.into_iter().map(str::to_string).collect()
}

/// A principal as the last-administrator rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminState {
    pub active: bool,
    pub platform_admin: bool,
}

impl AdminState {
    pub fn is_admin(self) -> bool {
        self.active && self.platform_admin
    }
}

/// Does a change that takes a principal from `before` to `after` (`None`: deleted) keep
/// an active platform administrator, given how many *other* active ones there are?
pub fn check_keeps_a_platform_admin(
    before: AdminState,
    after: Option<AdminState>,
    other_active_admins: usize,
) -> Result<(), Refusal> {
    let loses_one = before.is_admin() && !after.is_some_and(AdminState::is_admin);
    if loses_one && other_active_admins == 0 {
        return Err(Refusal::LastPlatformAdmin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A catalog of a few management scopes in two namespaces.
    struct Catalog;
    const MANAGEMENT: &[&str] = &["platform:admin", "agents:read", "agents:write", "audit:read", "federation:write"];

    impl ScopeCatalog for Catalog {
        fn is_management(&self, scope: &str) -> bool {
            MANAGEMENT.contains(&scope)
        }
        fn is_lookalike(&self, scope: &str) -> bool {
            !self.is_management(scope)
                && ["platform", "agents", "audit", "federation"]
                    .contains(&scope.split(':').next().unwrap_or_default().to_ascii_lowercase().as_str())
        }
    }

    fn scope() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(MANAGEMENT).prop_map(str::to_string),
            proptest::sample::select(&["search:query", "mail:send", "files:read"][..]).prop_map(str::to_string),
        ]
    }

    fn scopes() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set(scope(), 0..6).prop_map(|s| s.into_iter().collect())
    }

    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    proptest! {
        /// Whatever is granted holds no management scope the granter lacks, and
        /// everything the granter holds it may grant.
        #[test]
        fn a_grant_never_exceeds_the_granter(held in scopes(), requested in scopes()) {
            let ok = check_grantable(&requested, &refs(&held), &Catalog).is_ok();
            let within = requested.iter().all(|s| !Catalog.is_management(s) || held.contains(s));
            prop_assert_eq!(ok, within);
        }

        /// Along any chain of grants (each holder grants part of what it was given), no
        /// holder ever has a management scope the first did not.
        #[test]
        fn no_chain_of_grants_escalates(root in scopes(), asks in proptest::collection::vec(scopes(), 1..6)) {
            let mut holder = root.clone();
            for ask in asks {
                if check_grantable(&ask, &refs(&holder), &Catalog).is_ok() {
                    holder = ask;
                }
                prop_assert!(holder.iter().all(|s| !Catalog.is_management(s) || root.contains(s)));
            }
        }

        /// A caller may change a target exactly when it holds every management scope
        /// the target holds: so it may change itself, and any target it could have made.
        #[test]
        fn a_caller_changes_only_principals_not_stronger(held in scopes(), target in scopes()) {
            let ok = check_not_stronger(&target, &refs(&held), &Catalog).is_ok();
            prop_assert_eq!(ok, check_grantable(&target, &refs(&held), &Catalog).is_ok());
            prop_assert!(check_not_stronger(&held, &refs(&held), &Catalog).is_ok());
        }

        /// A configured trust yields only management scopes its configurer holds, and
        /// never platform:admin.
        #[test]
        fn a_configurers_bound_is_within_what_it_holds(held in scopes()) {
            let bound = configurer_bound(&refs(&held), &Catalog);
            prop_assert!(bound.iter().all(|s| held.contains(s) && Catalog.is_management(s)));
            prop_assert!(!bound.iter().any(|s| s == PLATFORM_ADMIN));
        }

        /// Any sequence of suspensions, deletions and scope removals, each applied only
        /// when the rule allows it, leaves at least one active platform administrator.
        #[test]
        fn a_platform_admin_always_remains(
            admins in 1usize..4,
            changes in proptest::collection::vec((0usize..4, 0u8..3), 0..12),
        ) {
            let mut agents: Vec<Option<AdminState>> =
                (0..admins).map(|_| Some(AdminState { active: true, platform_admin: true })).collect();
            for (who, what) in changes {
                let who = who % agents.len();
                let Some(before) = agents[who] else { continue };
                let after = match what {
                    0 => Some(AdminState { active: false, ..before }),
                    1 => Some(AdminState { platform_admin: false, ..before }),
                    _ => None,
                };
                let others = agents
                    .iter()
                    .enumerate()
                    .filter(|(i, a)| *i != who && a.is_some_and(AdminState::is_admin))
                    .count();
                if check_keeps_a_platform_admin(before, after, others).is_ok() {
                    agents[who] = after;
                }
                prop_assert!(agents.iter().any(|a| a.is_some_and(AdminState::is_admin)));
            }
        }
    }

    #[test]
    fn look_alikes_are_refused_before_holding_is_asked() {
        let held = ["agents:read"];
        assert_eq!(
            check_grantable(&["AGENTS:READ".to_string()], &held, &Catalog),
            Err(Refusal::Lookalike("AGENTS:READ".into()))
        );
        assert_eq!(
            check_grantable(&["agents:write".to_string()], &held, &Catalog),
            Err(Refusal::NotHeld("agents:write".into()))
        );
    }
}
