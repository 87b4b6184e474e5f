//! Namespace → parameter path prefixes: a team can only ask for its own parameters.

use super::Denial;
use super::annotations as a;
use super::validate::{Request, is_under, policy_name};
use std::collections::BTreeMap;

/// Checks every path and parameter of `req` against the namespace's allowed prefixes.
/// An empty policy allows everything; a non-empty one denies namespaces it does not list.
pub fn check(
    req: &Request,
    namespace: &str,
    policy: &BTreeMap<String, Vec<String>>,
) -> Result<(), Denial> {
    if policy.is_empty() {
        return Ok(());
    }
    let Some(prefixes) = policy.get(namespace) else {
        return Err(Denial {
            annotation: None,
            message: format!(
                "namespace {namespace} has no allowed parameter prefixes in the injector's policy; ask the cluster admins to add it"
            ),
        });
    };
    let rule = || {
        let list: Vec<String> = prefixes
            .iter()
            .map(|p| format!("{}/*", p.trim_end_matches('/')))
            .collect();
        if list.is_empty() {
            format!("namespace {namespace} may read no parameters")
        } else {
            format!("namespace {namespace} may only read {}", list.join(", "))
        }
    };
    let allowed = |name: &str| {
        let name = policy_name(name);
        prefixes.iter().any(|p| is_under(&name, p))
    };
    for p in &req.paths {
        if !allowed(p) {
            return Err(Denial {
                annotation: Some(a::PATH.to_owned()),
                message: format!(
                    "{}: path {p} is outside the policy: {}; use a path under an allowed prefix",
                    a::PATH,
                    rule()
                ),
            });
        }
    }
    for param in &req.params {
        if !allowed(&param.name) {
            return Err(Denial {
                annotation: Some(param.annotation.clone()),
                message: format!(
                    "{}: parameter {} is outside the policy: {}; use a parameter under an allowed prefix",
                    param.annotation,
                    param.name,
                    rule()
                ),
            });
        }
    }
    Ok(())
}
