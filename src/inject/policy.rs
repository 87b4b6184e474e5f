//! Namespace → parameter path prefixes: a team can only ask for its own parameters. The
//! webhook checks a pod's annotations with [`check`]; the hub checks each watched key with
//! [`allowance`] (`crate::hub::auth::NamespacePolicy`). Pure.

use super::Denial;
use super::annotations as a;
use super::validate::{Request, is_under, policy_name};
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

/// Checks every path and parameter of `req` against the namespace's allowed prefixes.
/// An empty policy allows everything; a non-empty one denies namespaces it does not list.
pub fn check(req: &Request, namespace: &str, policy: &Prefixes) -> Result<(), Denial> {
    let allowed = allowance(policy, namespace).map_err(|e| Denial {
        annotation: None,
        message: e.to_string(),
    })?;
    for p in &req.paths {
        if !allowed.allows(p) {
            return Err(Denial {
                annotation: Some(a::PATH.to_owned()),
                message: format!(
                    "{}: path {p} is outside the policy: {}; use a path under an allowed prefix",
                    a::PATH,
                    allowed.rule(namespace)
                ),
            });
        }
    }
    for param in &req.params {
        if !allowed.allows(&param.name) {
            return Err(Denial {
                annotation: Some(param.annotation.clone()),
                message: format!(
                    "{}: parameter {} is outside the policy: {}; use a parameter under an allowed prefix",
                    param.annotation,
                    param.name,
                    allowed.rule(namespace)
                ),
            });
        }
    }
    Ok(())
}
