//! The sidecar's delta poll, pure: which versions to read without decryption, which
//! parameters to fetch with decryption once the versions are known, and the answers a poll
//! ends with (held values for what did not change, fetched ones for the rest). The calls
//! are made by [`super::Source::poll`]; this module only decides.
//!
//! A poll runs in three steps:
//!
//! 1. [`checks`]: what to read without decryption. A parameter held from an earlier poll
//!    gets its version read (GetParameters, `WithDecryption=false`); a Secrets Manager
//!    reference always gets its version id read (DescribeSecret), unless DescribeSecret
//!    was refused; a path listed by an earlier poll is listed again (GetParametersByPath,
//!    `WithDecryption=false`). A request found missing last time is checked too, so an
//!    absent optional parameter costs no decrypting call. Nothing held: nothing to check,
//!    the value is fetched.
//! 2. [`plan`]: from the versions read, what to fetch with decryption: every request not
//!    held at the version read, every name under a listed path not held at its version,
//!    every path not listed before (whole, with decryption, as a one-shot render does).
//! 3. [`settle`]: each request's and each path's answer, from the fetched values and the
//!    held ones, and the new [`Held`] (only what the spec still asks for: pruned).
//!
//! The version stored with a fetched parameter is the one the decrypting fetch returned,
//! so a value rotated between the version read and the fetch is held at its real version;
//! a Secrets Manager value is stored with the version id read before the fetch: if the
//! secret rotated in between, the next poll reads a newer id and fetches again. Either
//! way the newest value is in the files after the next poll at the latest.

use super::batch::Answer;
use super::error::Cause;
use crate::locked::Arena;
use crate::secret::Secret;
use crate::spec::PathRequest;
use crate::spec::names::{ParamRef, parse_param_ref};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// One parameter as fetched (decrypted).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub name: String,
    pub version: i64,
    pub value: Secret,
    /// What AWS said about it besides the value (the local endpoint answers with it).
    pub meta: Meta,
}

/// A fetched parameter's facts other than its name, version and value; never secret.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    /// `String`, `StringList` or `SecureString`.
    pub kind: Option<String>,
    pub arn: Option<String>,
    /// Seconds since the epoch.
    pub modified: Option<f64>,
    pub data_type: Option<String>,
    /// For a Secrets Manager reference: the secret's own facts (from `SourceResult`).
    pub secret: Option<SecretMeta>,
}

/// A secret's facts as Parameter Store's reference reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretMeta {
    pub arn: Option<String>,
    pub name: Option<String>,
    /// Seconds since the epoch.
    pub created: Option<f64>,
    pub version_id: Option<String>,
    pub stages: Vec<String>,
    /// The value is the secret's `SecretBinary`, held base64-encoded (as AWS's JSON
    /// carries it), not a `SecretString`.
    pub binary: bool,
}

/// What a held value is at: a Parameter Store version, or the version id of a Secrets
/// Manager secret (Parameter Store reports version 0 for those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    Param(i64),
    Secret(String),
}

/// A secret's facts from the `SourceResult` Parameter Store returns for a Secrets Manager
/// reference (DescribeSecret's JSON: `ARN`, `Name`, `CreatedDate`, `VersionIdsToStages`);
/// the current version is the one staged `AWSCURRENT`. `None` when it is not such JSON.
pub fn secret_meta(source_result: &str) -> Option<SecretMeta> {
    let v: serde_json::Value = serde_json::from_str(source_result).ok()?;
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let current = v
        .get("VersionIdsToStages")
        .and_then(|m| m.as_object())
        .and_then(|m| {
            m.iter().find(|(_, stages)| {
                stages
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == "AWSCURRENT"))
            })
        });
    Some(SecretMeta {
        arn: text("ARN"),
        name: text("Name"),
        created: v.get("CreatedDate").and_then(|c| c.as_f64()),
        version_id: current.map(|(id, _)| id.clone()),
        stages: current
            .and_then(|(_, s)| s.as_array())
            .map(|s| {
                s.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        binary: false,
    })
}

/// A path as asked: the path and whether recursive.
pub type PathKey = (String, bool);

/// The key of a path request.
pub fn path_key(p: &PathRequest) -> PathKey {
    (p.path.clone(), p.recursive)
}

/// The values held between polls, by request (`ParamRef::request`; a name found under a
/// path by its name), each with the version it was fetched at (`None`: unknown, so never
/// taken as unchanged), the requests last found missing (checked, not fetched, until they
/// appear), and each path's names and versions as last listed.
/// The values themselves are in one [`Arena`], locked in RAM where the platform allows.
///
/// A poll builds a new one; a clone shares it (the local endpoint reads the held values
/// of the last poll while the next one runs), and the arena is zeroed when the last
/// clone is dropped.
#[derive(Debug, Default, Clone)]
pub struct Held(std::sync::Arc<HeldValues>);

#[derive(Debug, Default)]
struct HeldValues {
    values: BTreeMap<String, Slot>,
    arena: Arena,
    missing: BTreeSet<String>,
    listed: BTreeMap<PathKey, Vec<(String, i64)>>,
}

/// One held value, as the local endpoint reads it.
#[derive(Debug)]
pub struct HeldValue<'a> {
    pub name: &'a str,
    /// The Parameter Store version it was fetched at.
    pub version: i64,
    /// The Secrets Manager version id, for a reference.
    pub secret_version: Option<&'a str>,
    pub value: &'a str,
    pub meta: &'a Meta,
}

/// One held value: its version, as fetched, and where its bytes are in the arena.
#[derive(Debug)]
struct Slot {
    version: Option<Version>,
    name: String,
    fetched: i64,
    at: Range<usize>,
    meta: Meta,
}

/// What [`settle`] keeps, before it goes into a new [`Held`].
#[derive(Default)]
struct Next {
    values: BTreeMap<String, (Option<Version>, Fetched)>,
    missing: BTreeSet<String>,
    listed: BTreeMap<PathKey, Vec<(String, i64)>>,
}

impl Held {
    /// Values held.
    pub fn len(&self) -> usize {
        self.0.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.values.is_empty()
    }

    /// Whether the held values are in locked memory (false while nothing is held).
    pub fn locked(&self) -> bool {
        self.0.arena.locked()
    }

    /// The value held under `key` (a request, or a name found under a path), without a
    /// copy.
    pub fn value(&self, key: &str) -> Option<HeldValue<'_>> {
        let slot = self.0.values.get(key)?;
        Some(HeldValue {
            name: &slot.name,
            version: slot.fetched,
            secret_version: match &slot.version {
                Some(Version::Secret(id)) => Some(id),
                _ => None,
            },
            value: self.0.arena.get(&slot.at),
            meta: &slot.meta,
        })
    }

    fn fetched(&self, slot: &Slot) -> Fetched {
        Fetched {
            name: slot.name.clone(),
            version: slot.fetched,
            value: Secret::new(self.0.arena.get(&slot.at).to_owned()),
            meta: slot.meta.clone(),
        }
    }

    /// The value held for `request`, if it is at `version`.
    fn at(&self, request: &str, version: &Version) -> Option<Fetched> {
        match self.0.values.get(request) {
            Some(slot) if slot.version.as_ref() == Some(version) => Some(self.fetched(slot)),
            _ => None,
        }
    }

    fn is_at(&self, request: &str, version: &Version) -> bool {
        self.0
            .values
            .get(request)
            .is_some_and(|slot| slot.version.as_ref() == Some(version))
    }

    /// The value held for `request`, whatever its version.
    fn get(&self, request: &str) -> Option<(Option<Version>, Fetched)> {
        let slot = self.0.values.get(request)?;
        Some((slot.version.clone(), self.fetched(slot)))
    }

    /// Moves what a poll keeps into one new arena (the old one is zeroed and unlocked).
    fn build(next: Next) -> Held {
        let (arena, ranges) = Arena::new(next.values.values().map(|(_, f)| f.value.expose()));
        let values = next
            .values
            .into_iter()
            .zip(ranges)
            .map(|((key, (version, f)), at)| {
                let slot = Slot {
                    version,
                    name: f.name,
                    fetched: f.version,
                    at,
                    meta: f.meta,
                };
                (key, slot)
            })
            .collect();
        Held(std::sync::Arc::new(HeldValues {
            values,
            arena,
            missing: next.missing,
            listed: next.listed,
        }))
    }
}

/// The distinct requests of a spec's named parameters (`#field`s of one request are one
/// request), in spec order.
pub fn requests<'a>(params: impl IntoIterator<Item = &'a ParamRef>) -> Vec<ParamRef> {
    super::batch::distinct_requests(params)
}

/// The reads without decryption a poll starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checks {
    /// Parameter Store requests held: GetParameters without decryption.
    pub params: Vec<ParamRef>,
    /// Secrets Manager references: DescribeSecret.
    pub secrets: Vec<ParamRef>,
    /// Paths listed before: GetParametersByPath without decryption.
    pub paths: Vec<PathRequest>,
}

/// What to read without decryption. `describe`: whether DescribeSecret may be used (it
/// was not refused).
pub fn checks(held: &Held, requests: &[ParamRef], paths: &[PathRequest], describe: bool) -> Checks {
    let mut c = Checks::default();
    for r in requests {
        if r.is_secrets_manager() {
            if describe {
                c.secrets.push(r.clone());
            }
        } else {
            let request = r.request();
            if held.0.values.contains_key(&request) || held.0.missing.contains(&request) {
                c.params.push(r.clone());
            }
        }
    }
    c.paths = paths
        .iter()
        .filter(|p| held.0.listed.contains_key(&path_key(p)))
        .cloned()
        .collect();
    c
}

/// What the reads without decryption found.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// By request: its version (`Ok(None)`: no such parameter, version, label or secret).
    pub requests: BTreeMap<String, Answer<Version>>,
    /// By path: every name under it with its version.
    pub paths: BTreeMap<PathKey, Result<Vec<(String, i64)>, Cause>>,
}

/// What the version hub reported changed: requests (`ParamRef::request`) and paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changed {
    pub requests: BTreeSet<String>,
    pub paths: BTreeSet<PathKey>,
}

/// A poll of only what the hub reported changed: the changed paths are listed without
/// decryption (the returned checks); everything else is taken at its held version (the
/// returned observations), so [`plan`] fetches the changed requests, the changed names
/// under the changed paths, and whatever is not held. Nothing else is read.
pub fn changed_only(
    held: &Held,
    requests: &[ParamRef],
    paths: &[PathRequest],
    changed: &Changed,
) -> (Checks, Observed) {
    let mut checks = Checks::default();
    let mut observed = Observed::default();
    for r in requests {
        let request = r.request();
        if changed.requests.contains(&request) {
            continue;
        }
        if let Some(v) = held.0.values.get(&request).and_then(|s| s.version.clone()) {
            observed.requests.insert(request, Ok(Some(v)));
        }
    }
    for p in paths {
        let key = path_key(p);
        if changed.paths.contains(&key) {
            checks.paths.push(p.clone());
        } else if let Some(names) = held.0.listed.get(&key) {
            observed.paths.insert(key, Ok(names.clone()));
        }
    }
    (checks, observed)
}

/// What to fetch with decryption.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Requests (and names under listed paths), each once: GetParameters with decryption.
    pub fetch: Vec<ParamRef>,
    /// Paths not listed before (or with a name that is not a valid request): fetched whole.
    pub paths: Vec<PathRequest>,
}

impl Plan {
    fn add(&mut self, r: ParamRef) {
        if !self.fetch.contains(&r) {
            self.fetch.push(r);
        }
    }
}

/// What to fetch with decryption, given what is held and what the version reads found.
pub fn plan(
    held: &Held,
    requests: &[ParamRef],
    paths: &[PathRequest],
    observed: &Observed,
) -> Plan {
    let mut plan = Plan::default();
    for r in requests {
        let request = r.request();
        match observed.requests.get(&request) {
            // Not checked: nothing held (or DescribeSecret refused).
            None => plan.add(r.clone()),
            Some(Ok(Some(v))) if !held.is_at(&request, v) => plan.add(r.clone()),
            // Unchanged, gone, or the read failed (the poll fails for it).
            Some(_) => {}
        }
    }
    for p in paths {
        match observed.paths.get(&path_key(p)) {
            None => plan.paths.push(p.clone()),
            Some(Ok(names)) => {
                let mut changed = Vec::new();
                let mut whole = false;
                for (name, v) in names {
                    if held.is_at(name, &Version::Param(*v)) {
                        continue;
                    }
                    match parse_param_ref(name) {
                        Ok(r) => changed.push(r),
                        Err(_) => whole = true,
                    }
                }
                if whole {
                    plan.paths.push(p.clone());
                } else {
                    changed.into_iter().for_each(|r| plan.add(r));
                }
            }
            Some(Err(_)) => {}
        }
    }
    plan
}

/// What the decrypting fetch returned.
#[derive(Debug, Clone, Default)]
pub struct Got {
    /// By request (names under paths by their name).
    pub requests: BTreeMap<String, Answer<Fetched>>,
    /// Paths fetched whole.
    pub paths: BTreeMap<PathKey, Result<Vec<Fetched>, Cause>>,
}

/// A poll's answers, in the shape a one-shot fetch has them.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// By request.
    pub requests: BTreeMap<String, Answer<Fetched>>,
    /// One per path of the spec, in its order.
    pub paths: Vec<Result<Vec<Fetched>, Cause>>,
}

/// Holds `f` at `version` under `key` from now on.
fn keep(next: &mut Next, key: &str, version: Option<Version>, f: &Fetched) {
    next.values.insert(key.to_owned(), (version, f.clone()));
}

/// A request neither checked nor fetched: cannot happen when the plan was followed.
fn not_fetched(what: &str) -> Cause {
    Cause::Rejected {
        code: "NotFetched".into(),
        message: format!("{what} was neither checked nor fetched"),
    }
}

/// Each request's and path's answer, and the values to hold from now on (what this poll
/// used; after a failed read the old entries stay, so a passing outage costs no decrypt).
pub fn settle(
    held: &mut Held,
    requests: &[ParamRef],
    paths: &[PathRequest],
    observed: &Observed,
    mut got: Got,
) -> Settled {
    let mut next = Next::default();
    let mut out = Settled::default();
    for r in requests {
        let request = r.request();
        let seen = observed.requests.get(&request);
        let answer = match (got.requests.get(&request), seen) {
            (Some(fetched), _) => {
                if let Ok(Some(f)) = fetched {
                    let version = match seen {
                        Some(Ok(Some(v @ Version::Secret(_)))) => Some(v.clone()),
                        _ if r.is_secrets_manager() => None,
                        _ => Some(Version::Param(f.version)),
                    };
                    keep(&mut next, &request, version, f);
                }
                fetched.clone()
            }
            (None, Some(Ok(Some(v)))) => match held.at(&request, v) {
                Some(f) => {
                    keep(&mut next, &request, Some(v.clone()), &f);
                    Ok(Some(f))
                }
                None => Err(not_fetched(&request)),
            },
            (None, Some(Ok(None))) => Ok(None),
            (None, Some(Err(cause))) => {
                if let Some((v, f)) = held.get(&request) {
                    keep(&mut next, &request, v, &f);
                }
                if held.0.missing.contains(&request) {
                    next.missing.insert(request.clone());
                }
                Err(cause.clone())
            }
            (None, None) => Err(not_fetched(&request)),
        };
        if matches!(answer, Ok(None)) {
            next.missing.insert(request.clone());
        }
        out.requests.insert(request, answer);
    }
    for p in paths {
        let key = path_key(p);
        let answer = if let Some(whole) = got.paths.remove(&key) {
            if let Ok(found) = &whole {
                for f in found {
                    keep(&mut next, &f.name, Some(Version::Param(f.version)), f);
                }
            }
            whole
        } else {
            match observed.paths.get(&key) {
                Some(Ok(names)) => {
                    let mut found = Vec::with_capacity(names.len());
                    let mut failed = None;
                    for (name, v) in names {
                        let version = Version::Param(*v);
                        match (got.requests.get(name), held.at(name, &version)) {
                            (Some(Ok(Some(f))), _) => {
                                keep(&mut next, name, Some(Version::Param(f.version)), f);
                                found.push(f.clone());
                            }
                            // Deleted between the listing and the fetch: gone.
                            (Some(Ok(None)), _) => {}
                            (Some(Err(cause)), _) => {
                                failed.get_or_insert_with(|| cause.clone());
                            }
                            (None, Some(f)) => {
                                keep(&mut next, name, Some(version), &f);
                                found.push(f);
                            }
                            (None, None) => {
                                failed.get_or_insert_with(|| not_fetched(name));
                            }
                        }
                    }
                    match failed {
                        Some(cause) => Err(cause),
                        None => Ok(found),
                    }
                }
                Some(Err(cause)) => {
                    // Keep what was held under the path for the next try.
                    for name in held.0.values.keys().filter(|n| n.starts_with(&p.path)) {
                        if let Some((v, f)) = held.get(name) {
                            keep(&mut next, name, v, &f);
                        }
                    }
                    Err(cause.clone())
                }
                None => Err(not_fetched(&p.path)),
            }
        };
        match &answer {
            Ok(found) => {
                let names = found.iter().map(|f| (f.name.clone(), f.version)).collect();
                next.listed.insert(path_key(p), names);
            }
            // Listed again next time, if it was listed before.
            Err(_) => {
                if let Some(names) = held.0.listed.get(&path_key(p)) {
                    next.listed.insert(path_key(p), names.clone());
                }
            }
        }
        out.paths.push(answer);
    }
    *held = Held::build(next);
    out
}

#[cfg(test)]
mod tests;
