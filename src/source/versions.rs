//! Version reads for the hub: which version each parameter is at, with calls that never
//! decrypt and never return a value the hub would have to hold.
//!
//! | what | call | per call |
//! | --- | --- | --- |
//! | plain names (`/app/db`) | DescribeParameters, filter `Name Equals` | 50 names (`MaxResults` 50) |
//! | paths | DescribeParameters, filter `Path Recursive`/`OneLevel` | a page of 50 |
//! | selectors (`/app/db:live`, `:3`), ARNs, `/aws/…` and `/ssm/…` names | GetParameters, `WithDecryption=false` | 10 names |
//! | `/aws/…` and `/ssm/…` paths (DescribeParameters refuses them) | GetParametersByPath, `WithDecryption=false` | a page of 10 |
//! | `/aws/reference/secretsmanager/NAME` | Secrets Manager DescribeSecret | 1 secret |
//!
//! DescribeParameters is not one of the three operations that share Parameter Store's
//! 40 calls/s (GetParameter, GetParameters, GetParametersByPath) and it reads five times
//! the names per call; it cannot resolve labels, so selectors use GetParameters. Every
//! call goes through the [`Caller`] (the process's budget, classification, metrics) and
//! identical calls in flight are coalesced, like the sidecar's [`super::Source`].

use super::batch::{self, Answer};
use super::caller::{CallObserver, Caller, Operation, ReadParameters, read_batch};
use super::coalesce::Coalescer;
use super::config::{AwsConfigError, load_config};
use super::error::Cause;
use super::ssm::{get_parameter, get_parameters, get_parameters_by_path};
use crate::spec::budget::BudgetConfig;
use crate::spec::names::{ParamRef, SECRETS_MANAGER_PREFIX, Selector};
use aws_config::SdkConfig;
use aws_sdk_ssm::types::ParameterStringFilter;
use std::collections::HashMap;
use std::sync::Arc;

/// Names per DescribeParameters `Name Equals` filter (AWS's limit on filter values).
pub const DESCRIBE_NAMES_PER_CALL: usize = 50;
/// DescribeParameters page size (AWS's maximum).
const DESCRIBE_PAGE: i32 = 50;
/// Pages followed for one DescribeParameters query before giving up (AWS may answer a
/// filtered query with short or empty pages and a NextToken).
const MAX_PAGES: usize = 10_000;

/// Name → version, as read.
pub type Versions = HashMap<String, i64>;

/// One page of a paged read: `(name, version)`s and the next token.
type Page = (Vec<(Option<String>, i64)>, Option<String>);

/// Reads versions from Parameter Store and Secrets Manager in one region.
pub struct VersionSource {
    ssm: aws_sdk_ssm::Client,
    sm: aws_sdk_secretsmanager::Client,
    region: String,
    caller: Caller,
    described: Coalescer<Vec<String>, Result<Versions, Cause>>,
    paths: Coalescer<(String, bool), Result<Versions, Cause>>,
}

impl VersionSource {
    /// The SDK's default chain (like [`super::Source::from_env`]), `region` if given.
    pub async fn from_env(
        region: Option<String>,
        budget: BudgetConfig,
    ) -> Result<VersionSource, AwsConfigError> {
        Ok(VersionSource::from_config(
            &load_config(region).await?,
            budget,
        ))
    }

    /// From a configuration already loaded ([`load_config`]), to share it with other
    /// clients of the process.
    pub fn from_config(config: &SdkConfig, budget: BudgetConfig) -> VersionSource {
        VersionSource {
            ssm: aws_sdk_ssm::Client::new(config),
            sm: aws_sdk_secretsmanager::Client::new(config),
            region: config
                .region()
                .map(|r| r.as_ref().to_owned())
                .unwrap_or_default(),
            caller: Caller::new(config, budget),
            described: Coalescer::default(),
            paths: Coalescer::default(),
        }
    }

    /// Reports every finished call to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.caller = self.caller.with_observer(observer);
        self
    }

    /// The region every read goes to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Versions of up to [`DESCRIBE_NAMES_PER_CALL`] plain names (DescribeParameters,
    /// `Name Equals`, every page). A name that is not there is absent from the answer.
    pub async fn describe_names(&self, names: &[String]) -> Result<Versions, Cause> {
        let key = names.to_vec();
        self.caller
            .coalesce(Operation::DescribeParameters, &self.described, key, || {
                self.call_describe(filter("Name", "Equals", names))
            })
            .await
    }

    /// Versions of every parameter under `path` (DescribeParameters with a `Path` filter;
    /// GetParametersByPath without decryption for `/aws/…` and `/ssm/…` paths, which the
    /// filter refuses).
    pub async fn path_versions(&self, path: &str, recursive: bool) -> Result<Versions, Cause> {
        let key = (path.to_owned(), recursive);
        let op = if reserved_prefix(path) {
            Operation::GetParametersByPath
        } else {
            Operation::DescribeParameters
        };
        self.caller
            .coalesce(op, &self.paths, key, || async {
                if reserved_prefix(path) {
                    self.call_by_path(path, recursive).await
                } else {
                    // DescribeParameters takes the path without its trailing slash.
                    let trimmed = match path.trim_end_matches('/') {
                        "" => "/",
                        t => t,
                    };
                    let option = if recursive { "Recursive" } else { "OneLevel" };
                    let versions = self
                        .call_describe(filter("Path", option, &[trimmed.to_owned()]))
                        .await?;
                    // Only names under the path (with its slash) belong to it.
                    let prefix = format!("{}/", trimmed.trim_end_matches('/'));
                    Ok(versions
                        .into_iter()
                        .filter(|(n, _)| n.starts_with(&prefix))
                        .collect())
                }
            })
            .await
    }

    /// The version each request resolves to (GetParameters without decryption, 10 per call,
    /// selectors of one name in separate calls; an ARN GetParameters reports invalid is
    /// asked again alone with GetParameter). `Ok(None)`: no such parameter, version or label.
    pub async fn selected_versions(&self, refs: &[ParamRef]) -> Vec<(ParamRef, Answer<i64>)> {
        let mut out = Vec::with_capacity(refs.len());
        for b in batch::plan(refs) {
            out.extend(read_batch(self, b).await);
        }
        out
    }

    /// The version id a Secrets Manager reference resolves to ([`secret_version`]).
    pub async fn secret_version(&self, r: &ParamRef) -> Result<Option<String>, Cause> {
        secret_version(&self.caller, &self.sm, r).await
    }

    async fn call_describe(
        &self,
        filter: Result<ParameterStringFilter, Cause>,
    ) -> Result<Versions, Cause> {
        let filter = filter?;
        let filter_key = filter.key().to_owned();
        self.paged(Operation::DescribeParameters, |token| {
            tracing::debug!(filter = %filter_key, "DescribeParameters");
            let call = self
                .ssm
                .describe_parameters()
                .parameter_filters(filter.clone())
                .max_results(DESCRIBE_PAGE)
                .set_next_token(token);
            async move {
                let page = self
                    .caller
                    .call(Operation::DescribeParameters, || call.send())
                    .await?;
                let found = page.parameters.unwrap_or_default().into_iter();
                Ok((
                    found.map(|p| (p.name, p.version)).collect(),
                    page.next_token,
                ))
            }
        })
        .await
    }

    async fn call_by_path(&self, path: &str, recursive: bool) -> Result<Versions, Cause> {
        self.paged(Operation::GetParametersByPath, |token| async move {
            let page =
                get_parameters_by_path(&self.caller, &self.ssm, false, path, recursive, token)
                    .await?;
            let found = page.parameters.unwrap_or_default().into_iter();
            Ok((
                found.map(|p| (p.name, p.version)).collect(),
                page.next_token,
            ))
        })
        .await
    }

    /// Follows the pages of `op` (at most [`MAX_PAGES`]): `page(token)` makes one call
    /// through the [`Caller`] and gives its `(name, version)`s and the next token.
    async fn paged<F, Fut>(&self, op: Operation, mut page: F) -> Result<Versions, Cause>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Page, Cause>>,
    {
        let mut found = Versions::new();
        let mut token = None;
        for _ in 0..MAX_PAGES {
            let (items, next) = page(token).await?;
            found.extend(items.into_iter().filter_map(|(n, v)| Some((n?, v))));
            token = next.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(found);
            }
        }
        Err(Cause::Rejected {
            code: "too many pages".into(),
            message: format!("{} still had more after {MAX_PAGES} pages", op.as_str()),
        })
    }
}

/// The reads of [`read_batch`], without decryption: versions only.
impl ReadParameters for VersionSource {
    type Found = i64;

    /// GetParameters without decryption for up to 10 requests (all in this source's
    /// region): each one's version.
    async fn read_many(
        &self,
        _region: Option<&str>,
        requests: &[ParamRef],
    ) -> Result<Vec<Option<i64>>, Cause> {
        let names: Vec<String> = requests.iter().map(ParamRef::request).collect();
        let found = get_parameters(&self.caller, &self.ssm, false, requests, names).await?;
        Ok(found.into_iter().map(|p| p.map(|p| p.version)).collect())
    }

    /// GetParameter without decryption (ARNs some implementations only take here).
    async fn read_one(&self, _region: Option<&str>, r: &ParamRef) -> Result<Option<i64>, Cause> {
        let found = get_parameter(&self.caller, &self.ssm, false, r).await?;
        Ok(found.map(|p| p.version))
    }
}

/// The version id a Secrets Manager reference resolves to (DescribeSecret, never the
/// value): the one staged `AWSCURRENT`, or the one a selector names (a staging label or a
/// version id). `Ok(None)`: no such secret or stage, or not a Secrets Manager reference.
pub(crate) async fn secret_version(
    caller: &Caller,
    sm: &aws_sdk_secretsmanager::Client,
    r: &ParamRef,
) -> Result<Option<String>, Cause> {
    let Some(secret) = r.name.strip_prefix(SECRETS_MANAGER_PREFIX) else {
        return Ok(None);
    };
    tracing::debug!(secret, "DescribeSecret");
    let call = sm.describe_secret().secret_id(secret);
    let out = match caller.call(Operation::DescribeSecret, || call.send()).await {
        Ok(out) => out,
        Err(Cause::NotFound) => return Ok(None),
        Err(c) => return Err(c),
    };
    let stages = out.version_ids_to_stages.unwrap_or_default();
    Ok(match &r.selector {
        None => staged(&stages, "AWSCURRENT"),
        Some(Selector::Label(l)) if stages.contains_key(l) => Some(l.clone()),
        Some(Selector::Label(l)) => staged(&stages, l),
        Some(Selector::Version(v)) => {
            let v = v.to_string();
            stages.contains_key(&v).then_some(v)
        }
    })
}

/// A `ParameterStringFilter`; a build error (cannot happen with a key) becomes a cause.
fn filter(key: &str, option: &str, values: &[String]) -> Result<ParameterStringFilter, Cause> {
    ParameterStringFilter::builder()
        .key(key)
        .option(option)
        .set_values(Some(values.to_vec()))
        .build()
        .map_err(|e| Cause::Rejected {
            code: "filter".into(),
            message: e.to_string(),
        })
}

/// The version id carrying `stage`.
fn staged(stages: &HashMap<String, Vec<String>>, stage: &str) -> Option<String> {
    stages
        .iter()
        .find(|(_, s)| s.iter().any(|s| s == stage))
        .map(|(id, _)| id.clone())
}

/// True for names and paths under `/aws/` or `/ssm/` (any case): AWS's public and
/// reserved parameters, which DescribeParameters filters refuse or do not list.
pub fn reserved_prefix(name: &str) -> bool {
    let first = name
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    name.starts_with('/') && (first.starts_with("aws") || first.starts_with("ssm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefixes_are_the_aws_and_ssm_trees() {
        assert!(reserved_prefix("/aws/service/ami"));
        assert!(reserved_prefix("/AWS/x"));
        assert!(reserved_prefix("/ssm/"));
        assert!(!reserved_prefix("/app/aws"));
        assert!(!reserved_prefix("awsname"));
        assert!(!reserved_prefix("/"));
    }

    #[test]
    fn the_staged_version_is_found_by_its_stage() {
        let stages = HashMap::from([
            ("a".to_owned(), vec!["AWSPREVIOUS".to_owned()]),
            (
                "b".to_owned(),
                vec!["AWSCURRENT".to_owned(), "x".to_owned()],
            ),
        ]);
        assert_eq!(staged(&stages, "AWSCURRENT").as_deref(), Some("b"));
        assert_eq!(staged(&stages, "AWSPREVIOUS").as_deref(), Some("a"));
        assert_eq!(staged(&stages, "nope"), None);
    }
}
