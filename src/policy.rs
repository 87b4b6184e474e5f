//! The namespace policy: namespace → allowed parameter path prefixes, so a team can only ask
//! for its own parameters. A leaf (pure): the webhook checks a pod's annotations against it
//! (`crate::inject::policy::check`), the hub each watched key (`crate::hub::auth`).

use crate::spec::names::{SECRETS_MANAGER_PREFIX, is_under};
use std::collections::BTreeMap;

/// The policy: namespace → allowed parameter path prefixes. Empty: no policy.
pub type Prefixes = BTreeMap<String, Vec<String>>;

/// A non-empty policy that does not list the namespace: it may read nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "namespace {namespace} has no allowed parameter prefixes in the injector's policy; ask the cluster admins to add it"
)]
pub struct Unlisted {
    pub namespace: String,
}

/// What the policy lets one namespace read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance<'a> {
    /// No policy: everything.
    Everything,
    /// Names and paths under one of these prefixes.
    Under(&'a [String]),
}

/// What `namespace` may read under `policy`. An empty policy allows everything; a
/// non-empty one allows nothing to namespaces it does not list.
pub fn allowance<'a>(policy: &'a Prefixes, namespace: &str) -> Result<Allowance<'a>, Unlisted> {
    if policy.is_empty() {
        return Ok(Allowance::Everything);
    }
    policy
        .get(namespace)
        .map(|p| Allowance::Under(p))
        .ok_or_else(|| Unlisted {
            namespace: namespace.to_owned(),
        })
}

impl Allowance<'_> {
    /// Whether the name or path is under an allowed prefix, compared component by
    /// component; Secrets Manager references count as `/NAME` ([`policy_name`]).
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Allowance::Everything => true,
            Allowance::Under(prefixes) => {
                let name = policy_name(name);
                prefixes.iter().any(|p| is_under(&name, p))
            }
        }
    }

    /// The rule in words, for denials: `namespace team-a may only read /team-a/*`.
    pub fn rule(&self, namespace: &str) -> String {
        match self {
            Allowance::Everything => format!("namespace {namespace} may read everything"),
            Allowance::Under([]) => format!("namespace {namespace} may read no parameters"),
            Allowance::Under(prefixes) => {
                let list: Vec<String> = prefixes
                    .iter()
                    .map(|p| format!("{}/*", p.trim_end_matches('/')))
                    .collect();
                format!("namespace {namespace} may only read {}", list.join(", "))
            }
        }
    }
}

/// The parameter path the policy compares: Secrets Manager references
/// (`/aws/reference/secretsmanager/NAME`) are checked as `/NAME`.
pub fn policy_name(name: &str) -> String {
    match name.strip_prefix(SECRETS_MANAGER_PREFIX) {
        Some(secret) => format!("/{}", secret.trim_start_matches('/')),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_manager_reference_counts_as_its_secret_name() {
        let policy: Prefixes = [("team-a".to_owned(), vec!["/team-a/".to_owned()])].into();
        let allowed = allowance(&policy, "team-a").expect("listed");
        assert!(allowed.allows("/aws/reference/secretsmanager/team-a/db"));
        assert!(!allowed.allows("/aws/reference/secretsmanager/team-b/db"));
        assert_eq!(
            allowed.rule("team-a"),
            "namespace team-a may only read /team-a/*"
        );
        assert!(allowance(&policy, "team-b").is_err());
        assert_eq!(allowance(&Prefixes::new(), "x"), Ok(Allowance::Everything));
    }
}
