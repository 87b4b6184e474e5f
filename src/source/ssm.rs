//! The value source: GetParameters and GetParametersByPath (decrypted) through the SDK,
//! with its default credential chain, retry and `AWS_ENDPOINT_URL` support. Every call goes
//! through the [`Caller`]; the AWS configuration every client of a process shares is
//! [`super::config`].

use super::batch::{self, Answer, Batch, Returned};
use super::caller::{CallCounts, CallObserver, Caller, Operation, ReadParameters, read_batch};
use super::coalesce::Coalescer;
use super::config::{AwsConfigError, sdk_config};
use super::error::{Cause, FetchError, FetchFailure};
use super::field;
use crate::secret::Secret;
use crate::spec::budget::BudgetConfig;
use crate::spec::names::ParamRef;
use crate::spec::{PathRequest, Spec};
use crate::values::{Entry, SourceKey, Values};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ssm::Client;
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::types::Parameter;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// GetParametersByPath returns at most 10 per page.
const PAGE_SIZE: i32 = 10;

/// What GetParameters was asked: the region and the names, in order.
type BatchKey = (Option<String>, Vec<String>);
/// What GetParametersByPath was asked: the path and whether recursive.
type PathKey = (String, bool);

/// One parameter as fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub name: String,
    pub version: i64,
    pub value: Secret,
}

/// Fetches parameters from SSM Parameter Store.
pub struct Source {
    config: SdkConfig,
    default: Client,
    regional: Mutex<HashMap<String, Client>>,
    concurrency: usize,
    caller: Caller,
    batches: Coalescer<BatchKey, Result<Vec<Option<Fetched>>, Cause>>,
    paths: Coalescer<PathKey, Result<Vec<Fetched>, Cause>>,
}

impl Source {
    /// Loads the SDK's default configuration (environment, profile, web identity / IRSA,
    /// EKS Pod Identity, ECS task role, IMDS; `AWS_ENDPOINT_URL`, `AWS_MAX_ATTEMPTS`).
    /// Every call then waits for `budget` first.
    pub async fn from_env(
        region: Option<String>,
        concurrency: usize,
        budget: BudgetConfig,
    ) -> Result<Self, AwsConfigError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(Region::new(r));
        }
        Source::from_loader(loader, concurrency, budget).await
    }

    /// Like [`Source::from_env`] from a loader the caller has set up (an endpoint, a
    /// region, credentials); adds this program's HTTPS client and timeouts.
    pub async fn from_loader(
        loader: aws_config::ConfigLoader,
        concurrency: usize,
        budget: BudgetConfig,
    ) -> Result<Self, AwsConfigError> {
        let config = sdk_config(loader).await?;
        Ok(Source {
            default: Client::new(&config),
            caller: Caller::new(&config, budget),
            config,
            regional: Mutex::new(HashMap::new()),
            concurrency: concurrency.max(1),
            batches: Coalescer::default(),
            paths: Coalescer::default(),
        })
    }

    /// Reports every finished call to `observer` (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.caller = self.caller.with_observer(observer);
        self
    }

    /// The calls made so far.
    pub fn calls(&self) -> &CallCounts {
        self.caller.calls()
    }

    fn client(&self, region: Option<&str>) -> Client {
        let Some(region) = region else {
            return self.default.clone();
        };
        if self.config.region().map(|r| r.as_ref()) == Some(region) {
            return self.default.clone();
        }
        let mut clients = self
            .regional
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let conf = aws_sdk_ssm::config::Builder::from(&self.config)
                    .region(Region::new(region.to_owned()))
                    .build();
                Client::from_conf(conf)
            })
            .clone()
    }

    /// [`Source::fetch`] for a process's first render (`render`, `exec`, the first fetch
    /// of `render --watch`): its calls do not wait for the call budget, which protects the
    /// account from repeated polls, not a pod's start.
    pub async fn fetch_first(&self, spec: &Spec) -> Result<Values, FetchFailure> {
        let _exempt = self.caller.exempt_from_budget();
        self.fetch(spec).await
    }

    /// Fetches everything the spec asks for. All or nothing: on any failure the errors of
    /// every parameter that failed come back, and no value.
    pub async fn fetch(&self, spec: &Spec) -> Result<Values, FetchFailure> {
        let batches = batch::plan(spec.params.iter().map(|p| &p.param));
        let jobs = spec
            .paths
            .iter()
            .map(Job::Path)
            .chain(batches.into_iter().map(Job::Batch));
        let results: Vec<JobResult<'_>> = stream::iter(jobs)
            .map(|job| self.run(job))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let mut values = Values::new();
        let mut errors = Vec::new();
        let mut by_request: HashMap<String, Result<Option<Fetched>, Cause>> = HashMap::new();
        for result in results {
            match result {
                JobResult::Path(p, Ok(found)) if found.is_empty() && !p.optional => {
                    errors.push(FetchError {
                        what: format!("path {}", p.path),
                        cause: Cause::EmptyPath,
                    });
                }
                JobResult::Path(p, Ok(found)) => {
                    values.extend(found.into_iter().map(|f| Entry {
                        key: SourceKey::Relative(
                            f.name.strip_prefix(&p.path).unwrap_or(&f.name).to_owned(),
                        ),
                        name: f.name,
                        version: Some(f.version),
                        value: f.value,
                    }));
                }
                JobResult::Path(p, Err(cause)) => errors.push(FetchError {
                    what: format!("path {}", p.path),
                    cause,
                }),
                JobResult::Batch(answers) => {
                    by_request.extend(answers.into_iter().map(|(r, a)| (r.request(), a)));
                }
            }
        }
        for p in &spec.params {
            let what = || p.param.to_string();
            let answer = by_request
                .get(&p.param.request())
                .cloned()
                .unwrap_or(Ok(None));
            let fetched = match answer {
                Ok(Some(f)) => f,
                Ok(None) if p.optional => continue,
                Ok(None) => {
                    errors.push(FetchError {
                        what: what(),
                        cause: Cause::NotFound,
                    });
                    continue;
                }
                Err(cause) => {
                    errors.push(FetchError {
                        what: what(),
                        cause,
                    });
                    continue;
                }
            };
            let value = match &p.param.field {
                None => fetched.value,
                Some(f) => match field::extract(&fetched.value, f) {
                    Ok(v) => v,
                    Err(cause) => {
                        errors.push(FetchError {
                            what: what(),
                            cause,
                        });
                        continue;
                    }
                },
            };
            values.push(Entry {
                key: SourceKey::Explicit(p.key.clone()),
                name: what(),
                version: Some(fetched.version),
                value,
            });
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            errors.sort_by(|a, b| a.what.cmp(&b.what));
            Err(FetchFailure { errors })
        }
    }

    async fn run<'a>(&self, job: Job<'a>) -> JobResult<'a> {
        match job {
            Job::Path(p) => JobResult::Path(p, self.get_path(p).await),
            Job::Batch(b) => JobResult::Batch(read_batch(self, b).await),
        }
    }

    /// Every page of GetParametersByPath; a fetch of the same path already in flight is
    /// shared.
    async fn get_path(&self, p: &PathRequest) -> Result<Vec<Fetched>, Cause> {
        let key = (p.path.clone(), p.recursive);
        self.caller
            .coalesce(Operation::GetParametersByPath, &self.paths, key, || {
                self.call_get_path(p)
            })
            .await
    }

    async fn call_get_path(&self, p: &PathRequest) -> Result<Vec<Fetched>, Cause> {
        let client = self.client(None);
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page =
                get_parameters_by_path(&self.caller, &client, true, &p.path, p.recursive, token)
                    .await?;
            found.extend(
                page.parameters
                    .unwrap_or_default()
                    .iter_mut()
                    .filter_map(take),
            );
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(found);
            }
        }
    }
}

/// The reads of [`read_batch`], decrypted.
impl ReadParameters for Source {
    type Found = Fetched;

    /// GetParameters for up to 10 requests; an identical call in flight is shared.
    async fn read_many(
        &self,
        region: Option<&str>,
        requests: &[ParamRef],
    ) -> Result<Vec<Option<Fetched>>, Cause> {
        let names: Vec<String> = requests.iter().map(ParamRef::request).collect();
        let key = (region.map(str::to_owned), names.clone());
        self.caller
            .coalesce(Operation::GetParameters, &self.batches, key, || async {
                let client = self.client(region);
                let found = get_parameters(&self.caller, &client, true, requests, names).await?;
                Ok(found
                    .into_iter()
                    .map(|p| p.and_then(|mut p| take(&mut p)))
                    .collect())
            })
            .await
    }

    async fn read_one(
        &self,
        region: Option<&str>,
        request: &ParamRef,
    ) -> Result<Option<Fetched>, Cause> {
        let found = get_parameter(&self.caller, &self.client(region), true, request).await?;
        Ok(found.and_then(|mut p| take(&mut p)))
    }
}

// Parameter Store's reads, decrypted (the value source) or not (the version source), each
// through the caller.

/// GetParameters for up to 10 `requests` (`names`: each one's [`ParamRef::request`]): the
/// parameter answering each request ([`batch::match_results`]), in order.
pub(crate) async fn get_parameters(
    caller: &Caller,
    client: &Client,
    decrypt: bool,
    requests: &[ParamRef],
    names: Vec<String>,
) -> Result<Vec<Option<Parameter>>, Cause> {
    if decrypt {
        tracing::debug!(names = ?names, "GetParameters");
    } else {
        tracing::debug!(names = ?names, "GetParameters (no decryption)");
    }
    let call = client
        .get_parameters()
        .set_names(Some(names))
        .with_decryption(decrypt);
    let out = caller
        .call(Operation::GetParameters, || call.send())
        .await?;
    let invalid = out.invalid_parameters.unwrap_or_default();
    let params = out.parameters.unwrap_or_default();
    let returned: Vec<Returned<'_>> = params
        .iter()
        .map(|p| Returned {
            name: p.name.as_deref().unwrap_or_default(),
            arn: p.arn.as_deref(),
        })
        .collect();
    let matched = batch::match_results(requests, &returned, &invalid);
    let mut params: Vec<Option<Parameter>> = params.into_iter().map(Some).collect();
    Ok(matched
        .into_iter()
        .map(|i| i.and_then(|i| params.get_mut(i)).and_then(Option::take))
        .collect())
}

/// GetParameter for one request (`None`: answered without a parameter).
pub(crate) async fn get_parameter(
    caller: &Caller,
    client: &Client,
    decrypt: bool,
    request: &ParamRef,
) -> Result<Option<Parameter>, Cause> {
    if decrypt {
        tracing::debug!(name = %request.request(), "GetParameter");
    }
    let call = client
        .get_parameter()
        .name(request.request())
        .with_decryption(decrypt);
    let out = caller.call(Operation::GetParameter, || call.send()).await?;
    Ok(out.parameter)
}

/// One page (of at most 10) of GetParametersByPath.
pub(crate) async fn get_parameters_by_path(
    caller: &Caller,
    client: &Client,
    decrypt: bool,
    path: &str,
    recursive: bool,
    token: Option<String>,
) -> Result<GetParametersByPathOutput, Cause> {
    if decrypt {
        tracing::debug!(path = %path, "GetParametersByPath");
    } else {
        tracing::debug!(path, "GetParametersByPath (no decryption)");
    }
    let call = client
        .get_parameters_by_path()
        .path(path)
        .recursive(recursive)
        .with_decryption(decrypt)
        .max_results(PAGE_SIZE)
        .set_next_token(token);
    caller
        .call(Operation::GetParametersByPath, || call.send())
        .await
}

/// Takes the value out of a returned parameter (so no second copy stays in the SDK's
/// struct).
fn take(p: &mut Parameter) -> Option<Fetched> {
    Some(Fetched {
        name: p.name.take()?,
        version: p.version,
        value: Secret::new(p.value.take()?),
    })
}

enum Job<'a> {
    Path(&'a PathRequest),
    Batch(Batch),
}

enum JobResult<'a> {
    Path(&'a PathRequest, Result<Vec<Fetched>, Cause>),
    Batch(Vec<(ParamRef, Answer<Fetched>)>),
}
