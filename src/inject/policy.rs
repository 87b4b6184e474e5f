//! A pod's annotations against the namespace policy ([`crate::policy`]). Pure.

use super::Denial;
use super::annotations as a;
use super::validate::Request;
use crate::policy::{Prefixes, allowance};

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
