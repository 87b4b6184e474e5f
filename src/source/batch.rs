//! Pure batching: which names go into which GetParameters call, and which returned
//! parameter answers which request.

use crate::spec::names::{ParamRef, SECRETS_MANAGER_PREFIX, parse_param_ref};
use std::collections::BTreeMap;

/// AWS's limit of names per GetParameters call.
pub const MAX_NAMES_PER_CALL: usize = 10;

/// One GetParameters call: the requests (name or ARN, with selector, without `#field`),
/// all for one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `None`: the default region. `Some`: the region an ARN names.
    pub region: Option<String>,
    pub requests: Vec<ParamRef>,
}

/// The name a request is matched by. Services answer with the plain name (no selector,
/// sometimes no ARN, and moto drops the Secrets Manager prefix), so two requests with
/// the same match key must never share a call.
pub fn match_key(name: &str) -> &str {
    name.strip_prefix(SECRETS_MANAGER_PREFIX).unwrap_or(name)
}

/// Removes duplicates (the same request with different `#field`s is one request) and
/// packs the rest into calls of at most 10, grouped by region, such that no call holds
/// two requests with the same match key. Order is stable: first come, first packed.
pub fn plan<'a>(refs: impl IntoIterator<Item = &'a ParamRef>) -> Vec<Batch> {
    let mut unique: Vec<ParamRef> = Vec::new();
    for r in refs {
        let req = ParamRef {
            field: None,
            ..r.clone()
        };
        if !unique.contains(&req) {
            unique.push(req);
        }
    }
    let mut by_region: BTreeMap<Option<String>, Vec<Batch>> = BTreeMap::new();
    for req in unique {
        let region = req.region().map(str::to_owned);
        let batches = by_region.entry(region.clone()).or_default();
        let key = match_key(&req.name).to_owned();
        let slot = batches.iter_mut().find(|b| {
            b.requests.len() < MAX_NAMES_PER_CALL
                && !b.requests.iter().any(|o| match_key(&o.name) == key)
        });
        match slot {
            Some(b) => b.requests.push(req),
            None => batches.push(Batch {
                region,
                requests: vec![req],
            }),
        }
    }
    by_region.into_values().flatten().collect()
}

/// What a service said about one returned parameter, enough to match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned<'a> {
    pub name: &'a str,
    pub arn: Option<&'a str>,
}

/// For each request of a batch, the index of the returned parameter that answers it.
/// `invalid` lists what the service reported as InvalidParameters (as sent); those and
/// requests nothing answers get `None`.
pub fn match_results(
    requests: &[ParamRef],
    returned: &[Returned<'_>],
    invalid: &[String],
) -> Vec<Option<usize>> {
    let returned_keys: Vec<Option<String>> = returned
        .iter()
        .map(|r| {
            let name = if r.name.starts_with("arn:") {
                parse_param_ref(r.name).ok().map(|p| p.name)
            } else {
                Some(r.name.to_owned())
            };
            name.or_else(|| r.arn.and_then(|a| parse_param_ref(a).ok()).map(|p| p.name))
                .map(|n| match_key(&n).to_owned())
        })
        .collect();
    requests
        .iter()
        .map(|req| {
            if invalid.iter().any(|i| *i == req.request()) {
                return None;
            }
            let key = match_key(&req.name);
            returned_keys.iter().position(|k| k.as_deref() == Some(key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(s: &str) -> ParamRef {
        parse_param_ref(s).unwrap()
    }

    #[test]
    fn names_are_deduplicated_and_packed_ten_per_call() {
        let mut refs: Vec<ParamRef> = (0..25).map(|i| r(&format!("/app/p{i}"))).collect();
        refs.push(r("/app/p3"));
        refs.push(r("/app/p4#field"));
        let batches = plan(&refs);
        assert_eq!(
            batches.iter().map(|b| b.requests.len()).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
    }

    #[test]
    fn selectors_of_one_name_go_to_different_calls() {
        let refs = [r("/a"), r("/a:1"), r("/a:stable"), r("/b")];
        let batches = plan(&refs);
        assert_eq!(batches.len(), 3);
        for b in &batches {
            let mut keys: Vec<_> = b.requests.iter().map(|q| q.name.clone()).collect();
            keys.dedup();
            assert_eq!(keys.len(), b.requests.len());
        }
    }

    #[test]
    fn arns_in_other_regions_get_their_own_calls() {
        let refs = [
            r("/a"),
            r("arn:aws:ssm:eu-west-1:123456789012:parameter/shared/x"),
        ];
        let batches = plan(&refs);
        assert_eq!(batches.len(), 2);
        assert!(
            batches
                .iter()
                .any(|b| b.region.as_deref() == Some("eu-west-1"))
        );
    }

    #[test]
    fn results_map_back_even_without_selector_or_prefix() {
        let reqs = vec![
            r("/a:2"),
            r("/aws/reference/secretsmanager/s1"),
            r("arn:aws:ssm:us-east-1:123456789012:parameter/shared/x"),
            r("/missing"),
        ];
        let returned = [
            Returned {
                name: "s1",
                arn: None,
            },
            Returned {
                name: "/a",
                arn: None,
            },
            Returned {
                name: "arn:aws:ssm:us-east-1:123456789012:parameter/shared/x",
                arn: None,
            },
        ];
        let m = match_results(&reqs, &returned, &["/missing".to_string()]);
        assert_eq!(m, vec![Some(1), Some(0), Some(2), None]);
    }

    proptest! {
        #[test]
        fn every_request_lands_in_exactly_one_call_of_at_most_ten(
            names in prop::collection::vec(("[a-e]{1,2}", proptest::option::of(1u64..4)), 0..60)
        ) {
            let refs: Vec<ParamRef> = names
                .iter()
                .map(|(n, v)| r(&match v { Some(v) => format!("/{n}:{v}"), None => format!("/{n}") }))
                .collect();
            let batches = plan(&refs);
            let mut seen = Vec::new();
            for b in &batches {
                prop_assert!(b.requests.len() <= MAX_NAMES_PER_CALL && !b.requests.is_empty());
                for (i, q) in b.requests.iter().enumerate() {
                    prop_assert!(!b.requests[..i].iter().any(|o| o.name == q.name));
                    prop_assert!(!seen.contains(q));
                    seen.push(q.clone());
                }
            }
            for q in &refs {
                prop_assert!(seen.contains(q));
            }
        }
    }
}
