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
    // (annotation, what it names, the name)
    let asked = req
        .paths
        .iter()
        .map(|p| (a::PATH, "path", p))
        .chain(
            req.serve_allow
                .iter()
                .map(|p| (a::SERVE_ALLOW, "prefix", p)),
        )
        .chain(
            req.params
                .iter()
                .map(|p| (p.annotation.as_str(), "parameter", &p.name)),
        );
    for (annotation, what, name) in asked {
        if !allowed.allows(name) {
            return Err(Denial {
                annotation: Some(annotation.to_owned()),
                message: format!(
                    "{annotation}: {what} {name} is outside the policy: {}; use a {what} under an allowed prefix",
                    allowed.rule(namespace)
                ),
            });
        }
    }
    Ok(())
}
