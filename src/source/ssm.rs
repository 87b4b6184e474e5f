//! The only AWS code: GetParameters and GetParametersByPath through the SDK, with its
//! default credential chain, retry and `AWS_ENDPOINT_URL` support.

use super::batch::{self, Batch, Returned};
use super::budget::{Budget, BudgetConfig};
use super::coalesce::{Coalescer, Served};
use super::error::{Cause, FetchError, FetchFailure};
use super::field;
use crate::secret::Secret;
use crate::spec::names::ParamRef;
use crate::spec::{PathRequest, Spec};
use crate::values::{Entry, SourceKey, Values};
use aws_config::{BehaviorVersion, Region, SdkConfig, timeout::TimeoutConfig};
use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::Parameter;
use aws_smithy_http_client::tls;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// GetParametersByPath returns at most 10 per page.
const PAGE_SIZE: i32 = 10;

/// Why the AWS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS profile) or --region"
    )]
    NoRegion,
}

/// API calls made, by operation (one per SDK operation, retries not counted).
#[derive(Debug, Default)]
pub struct CallCounts {
    pub get_parameter: AtomicU64,
    pub get_parameters: AtomicU64,
    pub get_parameters_by_path: AtomicU64,
    /// Calls not made because an identical call in flight answered them.
    pub coalesced: AtomicU64,
}

impl CallCounts {
    pub fn total(&self) -> u64 {
        self.get_parameter.load(Ordering::Relaxed)
            + self.get_parameters.load(Ordering::Relaxed)
            + self.get_parameters_by_path.load(Ordering::Relaxed)
    }
}

/// An SSM operation, as counted and labelled in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    GetParameter,
    GetParameters,
    GetParametersByPath,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetParameter => "GetParameter",
            Operation::GetParameters => "GetParameters",
            Operation::GetParametersByPath => "GetParametersByPath",
        }
    }
}

/// Told about every finished API call (after the SDK's retries): `None` for success,
/// else the cause. Metrics implement it; the source does not know about them.
pub trait CallObserver: Send + Sync {
    fn observe(&self, op: Operation, failure: Option<&Cause>);
    /// A call waited this long for the call budget (`--max-tps`) before it went out.
    fn budget_waited(&self, _waited: Duration) {}
    /// A call was not made because an identical one in flight answered it.
    fn coalesced(&self, _op: Operation) {}
}

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
    attempts: u32,
    observer: Option<Arc<dyn CallObserver>>,
    budget: Budget,
    batches: Coalescer<BatchKey, Result<Vec<Option<Fetched>>, Cause>>,
    paths: Coalescer<PathKey, Result<Vec<Fetched>, Cause>>,
    /// Calls made so far.
    pub calls: CallCounts,
}

impl Source {
    /// Loads the SDK's default configuration (environment, profile, web identity / IRSA,
    /// EKS Pod Identity, ECS task role, IMDS; `AWS_ENDPOINT_URL`, `AWS_MAX_ATTEMPTS`).
    /// Every call then waits for `budget` first.
    pub async fn from_env(
        region: Option<String>,
        concurrency: usize,
        budget: BudgetConfig,
    ) -> Result<Self, SetupError> {
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
    ) -> Result<Self, SetupError> {
        let config = sdk_config(loader).await?;
        let attempts = config.retry_config().map_or(1, |r| r.max_attempts());
        Ok(Source {
            default: Client::new(&config),
            config,
            regional: Mutex::new(HashMap::new()),
            concurrency: concurrency.max(1),
            attempts,
            observer: None,
            budget: Budget::new(budget),
            batches: Coalescer::default(),
            paths: Coalescer::default(),
            calls: CallCounts::default(),
        })
    }

    /// Reports every finished call to `observer` (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
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
            Job::Batch(b) => JobResult::Batch(self.get_batch(b).await),
        }
    }

    /// One batch. When AWS refuses the whole call for a reason that is not transient
    /// (access denied, KMS, a missing Secrets Manager secret), each name is asked alone so
    /// the error names the right one. ARNs reported invalid are confirmed with
    /// GetParameter (some implementations only accept ARNs there).
    async fn get_batch(&self, b: Batch) -> Vec<(ParamRef, Result<Option<Fetched>, Cause>)> {
        let region = b.region.as_deref();
        let answers = match self.get_parameters(region, &b.requests).await {
            Ok(found) => found.into_iter().map(Ok).collect(),
            Err(Cause::NotFound) if b.requests.len() == 1 => vec![Ok(None)],
            Err(cause) if !cause.is_transient() && b.requests.len() > 1 => {
                let mut out = Vec::with_capacity(b.requests.len());
                for req in &b.requests {
                    let one = match self.get_parameters(region, std::slice::from_ref(req)).await {
                        Ok(mut v) => Ok(v.pop().flatten()),
                        Err(Cause::NotFound) => Ok(None),
                        Err(c) => Err(c),
                    };
                    out.push(one);
                }
                out
            }
            Err(cause) => vec![Err(cause); b.requests.len()],
        };
        let mut out = Vec::with_capacity(answers.len());
        for (req, answer) in b.requests.into_iter().zip(answers) {
            let answer = match answer {
                Ok(None) if req.arn.is_some() => self.get_parameter(region, &req).await,
                other => other,
            };
            out.push((req, answer));
        }
        out
    }

    /// GetParameter for one request; a missing parameter or version is `Ok(None)`.
    async fn get_parameter(
        &self,
        region: Option<&str>,
        req: &ParamRef,
    ) -> Result<Option<Fetched>, Cause> {
        tracing::debug!(name = %req.request(), "GetParameter");
        self.wait_for_budget().await;
        let result = self
            .client(region)
            .get_parameter()
            .name(req.request())
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| self.cause(e));
        self.record(Operation::GetParameter, &result);
        match result {
            Ok(out) => Ok(out.parameter.and_then(|mut p| take(&mut p))),
            Err(Cause::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// GetParameters for up to 10 requests; the answer for each request, in order.
    async fn get_parameters(
        &self,
        region: Option<&str>,
        requests: &[ParamRef],
    ) -> Result<Vec<Option<Fetched>>, Cause> {
        let names: Vec<String> = requests.iter().map(ParamRef::request).collect();
        let key = (region.map(str::to_owned), names.clone());
        let (answer, served) = self
            .batches
            .run(key, || self.call_get_parameters(region, requests, names))
            .await;
        if served == Served::Shared {
            self.note_coalesced(Operation::GetParameters);
        }
        answer
    }

    /// The GetParameters call itself (see [`Source::get_parameters`]).
    async fn call_get_parameters(
        &self,
        region: Option<&str>,
        requests: &[ParamRef],
        names: Vec<String>,
    ) -> Result<Vec<Option<Fetched>>, Cause> {
        tracing::debug!(names = ?names, "GetParameters");
        self.wait_for_budget().await;
        let result = self
            .client(region)
            .get_parameters()
            .set_names(Some(names))
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| self.cause(e));
        self.record(Operation::GetParameters, &result);
        let out = result?;
        let mut params = out.parameters.unwrap_or_default();
        let invalid = out.invalid_parameters.unwrap_or_default();
        let returned: Vec<Returned<'_>> = params
            .iter()
            .map(|p| Returned {
                name: p.name.as_deref().unwrap_or_default(),
                arn: p.arn.as_deref(),
            })
            .collect();
        let matched = batch::match_results(requests, &returned, &invalid);
        Ok(matched
            .into_iter()
            .map(|i| i.and_then(|i| params.get_mut(i)).and_then(take))
            .collect())
    }

    /// Every page of GetParametersByPath; a fetch of the same path already in flight is
    /// shared.
    async fn get_path(&self, p: &PathRequest) -> Result<Vec<Fetched>, Cause> {
        let key = (p.path.clone(), p.recursive);
        let (answer, served) = self.paths.run(key, || self.call_get_path(p)).await;
        if served == Served::Shared {
            self.note_coalesced(Operation::GetParametersByPath);
        }
        answer
    }

    async fn call_get_path(&self, p: &PathRequest) -> Result<Vec<Fetched>, Cause> {
        let client = self.client(None);
        let mut found = Vec::new();
        let mut token = None;
        loop {
            tracing::debug!(path = %p.path, "GetParametersByPath");
            self.wait_for_budget().await;
            let result = client
                .get_parameters_by_path()
                .path(&p.path)
                .recursive(p.recursive)
                .with_decryption(true)
                .max_results(PAGE_SIZE)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| self.cause(e));
            self.record(Operation::GetParametersByPath, &result);
            let page = result?;
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

    /// Waits for the call budget; a wait is logged and reported.
    async fn wait_for_budget(&self) {
        let waited = self.budget.acquire().await;
        if !waited.is_zero() {
            tracing::debug!(waited_ms = waited.as_millis() as u64, "call budget: waited");
            if let Some(o) = &self.observer {
                o.budget_waited(waited);
            }
        }
    }

    fn note_coalesced(&self, op: Operation) {
        tracing::debug!(
            operation = op.as_str(),
            "answered by an identical call in flight"
        );
        self.calls.coalesced.fetch_add(1, Ordering::Relaxed);
        if let Some(o) = &self.observer {
            o.coalesced(op);
        }
    }

    /// Counts one finished call (after the SDK's retries) and tells the observer.
    fn record<T>(&self, op: Operation, result: &Result<T, Cause>) {
        let counter = match op {
            Operation::GetParameter => &self.calls.get_parameter,
            Operation::GetParameters => &self.calls.get_parameters,
            Operation::GetParametersByPath => &self.calls.get_parameters_by_path,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(o) = &self.observer {
            o.observe(op, result.as_ref().err());
        }
    }

    fn cause<E, R>(&self, err: SdkError<E, R>) -> Cause
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HasStatus,
    {
        classify(&err, self.attempts)
    }
}

/// The SDK's default chain (see [`Source::from_env`]) with `region` if given, through
/// [`sdk_config`]: one configuration for every AWS client of a process.
pub async fn load_config(region: Option<String>) -> Result<SdkConfig, SetupError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(Region::new(r));
    }
    sdk_config(loader).await
}

/// The SDK configuration every AWS client of this program uses: `loader` plus the HTTPS
/// client (rustls on ring) and the timeouts; a region is required.
pub async fn sdk_config(loader: aws_config::ConfigLoader) -> Result<SdkConfig, SetupError> {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = loader
        .http_client(https)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await;
    if config.region().is_none() {
        return Err(SetupError::NoRegion);
    }
    Ok(config)
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

/// Access to an HTTP response's status, for classifying errors.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Turns an SDK error into a cause. Service errors keep AWS's code and message;
/// transport errors keep the error chain (no request or response body is in it).
pub fn classify<E, R>(err: &SdkError<E, R>, attempts: u32) -> Cause
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    match err {
        SdkError::ServiceError(se) => Cause::from_service(
            se.err().code().unwrap_or_default(),
            se.err().message().unwrap_or_default(),
            se.raw().status_code(),
            attempts,
        ),
        SdkError::TimeoutError(_) => Cause::Unreachable {
            detail: format!("timed out after {attempts} attempts"),
        },
        SdkError::DispatchFailure(df) if df.is_timeout() => Cause::Unreachable {
            detail: format!("timed out ({})", chain(err)),
        },
        SdkError::DispatchFailure(df) if df.is_io() => Cause::Unreachable { detail: chain(err) },
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            let detail = chain(err);
            if detail.to_ascii_lowercase().contains("credentials") {
                Cause::NoCredentials { detail }
            } else {
                Cause::Unreachable { detail }
            }
        }
        SdkError::ResponseError(_) => Cause::Rejected {
            code: "unreadable response".into(),
            message: chain(err),
        },
        _ => Cause::Rejected {
            code: "unexpected error".into(),
            message: chain(err),
        },
    }
}

/// The error and its sources, each shown once, without Debug dumps:
/// `dispatch failure: io error: …: Connection refused (os error 111)`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

enum Job<'a> {
    Path(&'a PathRequest),
    Batch(Batch),
}

enum JobResult<'a> {
    Path(&'a PathRequest, Result<Vec<Fetched>, Cause>),
    Batch(Vec<(ParamRef, Result<Option<Fetched>, Cause>)>),
}
