//! The value source: GetParameters and GetParametersByPath (decrypted) through the SDK,
//! with its default credential chain, retry and `AWS_ENDPOINT_URL` support. Every call goes
//! through the [`Caller`]; the AWS configuration every client of a process shares is
//! [`super::config`].

use super::batch::{self, Answer, Batch, Returned};
use super::caller::{CallCounts, CallObserver, Caller, Operation, ReadParameters, read_batch};
use super::coalesce::Coalescer;
use super::config::{AwsConfigError, sdk_config};
use super::delta::{self, Changed, Got, Held, Observed, PathKey, Version};
use super::error::{Cause, FetchError, FetchFailure};
use super::field;
use super::versions;
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
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// GetParametersByPath returns at most 10 per page.
const PAGE_SIZE: i32 = 10;

/// What GetParameters was asked: the region and the names, in order.
type BatchKey = (Option<String>, Vec<String>);

pub use super::delta::Fetched;

/// A secret read by [`Source::read_secret`].
#[derive(Debug, Clone)]
pub struct SecretRead {
    pub value: Secret,
    pub meta: delta::SecretMeta,
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
    /// Secrets Manager, for DescribeSecret (the version ids of references); made at first use.
    secrets: OnceLock<aws_sdk_secretsmanager::Client>,
    /// DescribeSecret was refused (AccessDenied): references are fetched on every poll.
    describe_refused: AtomicBool,
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
            secrets: OnceLock::new(),
            describe_refused: AtomicBool::new(false),
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

    /// [`Source::fetch`] for a process's first render (`render`, `exec`; the sidecar's
    /// first poll takes [`Source::exempt_from_budget`] itself): its calls do not wait for
    /// the call budget, which protects the account from repeated polls, not a pod's start.
    pub async fn fetch_first(&self, spec: &Spec) -> Result<Values, FetchFailure> {
        let _exempt = self.exempt_from_budget();
        self.fetch(spec).await
    }

    /// Calls wait for no budget until the guard is dropped: for a process's first fetch
    /// (the sidecar's first poll), which only delays the start ([`super::budget`]).
    pub fn exempt_from_budget(&self) -> Option<super::budget::Exempt<'_>> {
        self.caller.exempt_from_budget()
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
        let got = self.run_all(jobs).await;
        let paths = spec.paths.iter().map(|p| {
            got.paths
                .get(&delta::path_key(p))
                .cloned()
                .unwrap_or(Ok(Vec::new()))
        });
        assemble(spec, &got.requests, paths.collect())
    }

    /// A watch poll: reads versions without decryption, fetches with decryption only what
    /// changed or is new ([`delta`] decides), renders the rest from `held`, and keeps the
    /// values for the next poll in `held`. All or nothing, like [`Source::fetch`]. A poll
    /// where nothing changed decrypts nothing.
    pub async fn poll(&self, spec: &Spec, held: &mut Held) -> Result<Values, FetchFailure> {
        let requests = delta::requests(spec.params.iter().map(|p| &p.param));
        let describe = !self.describe_refused.load(Ordering::Relaxed);
        let checks = delta::checks(held, &requests, &spec.paths, describe);
        self.poll_with(spec, held, &requests, checks, Observed::default())
            .await
    }

    /// A poll after the version hub reported `changed`: only those keys are read (a
    /// changed name fetched with decryption; a changed path listed without decryption,
    /// then its changed names fetched); everything else is rendered from `held`.
    pub async fn poll_changed(
        &self,
        spec: &Spec,
        held: &mut Held,
        changed: &Changed,
    ) -> Result<Values, FetchFailure> {
        let requests = delta::requests(spec.params.iter().map(|p| &p.param));
        let (checks, assumed) = delta::changed_only(held, &requests, &spec.paths, changed);
        self.poll_with(spec, held, &requests, checks, assumed).await
    }

    /// Reads the versions `checks` asks for (adding them to `observed`), fetches with
    /// decryption what [`delta::plan`] says, and settles.
    async fn poll_with(
        &self,
        spec: &Spec,
        held: &mut Held,
        requests: &[ParamRef],
        checks: delta::Checks,
        mut observed: Observed,
    ) -> Result<Values, FetchFailure> {
        let jobs = batch::plan(&checks.params)
            .into_iter()
            .map(Check::Params)
            .chain(checks.secrets.iter().map(Check::Secret))
            .chain(checks.paths.iter().map(Check::Path));
        let read = self.observe(jobs).await;
        observed.requests.extend(read.requests);
        observed.paths.extend(read.paths);
        let plan = delta::plan(held, requests, &spec.paths, &observed);
        tracing::debug!(
            requests = plan.fetch.len(),
            paths = plan.paths.len(),
            held = held.len(),
            "fetching with decryption"
        );
        let jobs = plan
            .paths
            .iter()
            .map(Job::Path)
            .chain(batch::plan(&plan.fetch).into_iter().map(Job::Batch));
        let got = self.run_all(jobs).await;
        let settled = delta::settle(held, requests, &spec.paths, &observed, got);
        assemble(spec, &settled.requests, settled.paths)
    }

    /// Runs decrypting fetches, `concurrency` at a time.
    async fn run_all<'a>(&self, jobs: impl Iterator<Item = Job<'a>>) -> Got {
        let results: Vec<JobResult<'_>> = stream::iter(jobs)
            .map(|job| self.run(job))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut got = Got::default();
        for result in results {
            match result {
                JobResult::Path(p, found) => {
                    got.paths.insert(delta::path_key(p), found);
                }
                JobResult::Batch(answers) => got
                    .requests
                    .extend(answers.into_iter().map(|(r, a)| (r.request(), a))),
            }
        }
        got
    }

    /// Runs the version reads (no decryption), `concurrency` at a time.
    async fn observe<'a>(&self, jobs: impl Iterator<Item = Check<'a>>) -> Observed {
        let results: Vec<Observation> = stream::iter(jobs)
            .map(|job| self.check(job))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut observed = Observed::default();
        for result in results {
            match result {
                Observation::Requests(answers) => observed.requests.extend(answers),
                Observation::Path(key, found) => {
                    observed.paths.insert(key, found);
                }
            }
        }
        observed
    }

    async fn check(&self, job: Check<'_>) -> Observation {
        match job {
            Check::Params(b) => Observation::Requests(
                read_batch(&NoDecryption(self), b)
                    .await
                    .into_iter()
                    .map(|(r, a)| (r.request(), a.map(|v| v.map(Version::Param))))
                    .collect(),
            ),
            Check::Secret(r) => {
                let answer = self.secret_version(r).await;
                match answer {
                    // Refused: fetched (decrypting) on every poll, as before.
                    None => Observation::Requests(Vec::new()),
                    Some(a) => Observation::Requests(vec![(
                        r.request(),
                        a.map(|v| v.map(Version::Secret)),
                    )]),
                }
            }
            Check::Path(p) => Observation::Path(delta::path_key(p), self.path_versions(p).await),
        }
    }

    /// The Secrets Manager client (made at first use).
    fn secrets_client(&self, region: Option<&str>) -> &aws_sdk_secretsmanager::Client {
        self.secrets.get_or_init(|| {
            let mut conf = aws_sdk_secretsmanager::config::Builder::from(&self.config);
            if let Some(region) = region {
                conf = conf.region(Region::new(region.to_owned()));
            }
            aws_sdk_secretsmanager::Client::from_conf(conf.build())
        })
    }

    /// One parameter, read now (GetParameter; decrypted when `decrypt`), for the local
    /// endpoint's reads of names the watched set does not hold. Through the caller: the
    /// call budget applies.
    pub async fn read_parameter(
        &self,
        request: &ParamRef,
        decrypt: bool,
    ) -> Result<Option<Fetched>, Cause> {
        let client = self.client(request.region());
        let found = get_parameter(&self.caller, &client, decrypt, request).await?;
        Ok(found.and_then(|mut p| take(&mut p)))
    }

    /// One secret, read now (GetSecretValue: its current version, or the stage or version
    /// id given), for the local endpoint. `Ok(None)`: no such secret or version.
    pub async fn read_secret(
        &self,
        id: &str,
        stage: Option<&str>,
        version_id: Option<&str>,
    ) -> Result<Option<SecretRead>, Cause> {
        tracing::debug!(secret = id, "GetSecretValue");
        let call = self
            .secrets_client(None)
            .get_secret_value()
            .secret_id(id)
            .set_version_stage(stage.map(str::to_owned))
            .set_version_id(version_id.map(str::to_owned));
        let mut out = match self
            .caller
            .call(Operation::GetSecretValue, || call.send())
            .await
        {
            Ok(out) => out,
            Err(Cause::NotFound) => return Ok(None),
            Err(c) => return Err(c),
        };
        // A binary secret is held base64-encoded, as GetSecretValue's JSON carries it (and
        // the extension answers it); the decoded bytes are zeroed here.
        let (value, binary) = match (out.secret_string.take(), out.secret_binary.take()) {
            (Some(text), _) => (text, false),
            (None, Some(blob)) => {
                let bytes = zeroize::Zeroizing::new(blob.into_inner());
                (
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &*bytes),
                    true,
                )
            }
            (None, None) => (String::new(), false),
        };
        Ok(Some(SecretRead {
            value: Secret::new(value),
            meta: delta::SecretMeta {
                arn: out.arn.take(),
                name: out.name.take(),
                created: out.created_date.map(|d| d.as_secs_f64()),
                version_id: out.version_id.take(),
                stages: out.version_stages.take().unwrap_or_default(),
                binary,
            },
        }))
    }

    /// DescribeSecret for a reference; `None` once it is refused (warned about once).
    async fn secret_version(&self, r: &ParamRef) -> Option<Result<Option<String>, Cause>> {
        let sm = self.secrets_client(r.region());
        match versions::secret_version(&self.caller, sm, r).await {
            Err(Cause::AccessDenied { code, message }) => {
                if !self.describe_refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        code,
                        message,
                        "DescribeSecret refused: Secrets Manager references are fetched with \
                         decryption on every poll; allow secretsmanager:DescribeSecret on the \
                         referenced secrets (ssm-injector iam-policy prints it) so that polls \
                         where nothing changed decrypt nothing"
                    );
                }
                None
            }
            other => Some(other),
        }
    }

    /// Every name under a path with its version (GetParametersByPath, no decryption).
    async fn path_versions(&self, p: &PathRequest) -> Result<Vec<(String, i64)>, Cause> {
        self.read_path(p, false, |p| Some((p.name.take()?, p.version)))
            .await
    }

    /// Every page of GetParametersByPath for `p`, each returned parameter turned into a
    /// `T` by `pick` (the values taken out with decryption, or names and versions without).
    async fn read_path<T>(
        &self,
        p: &PathRequest,
        decrypt: bool,
        mut pick: impl FnMut(&mut Parameter) -> Option<T>,
    ) -> Result<Vec<T>, Cause> {
        let client = self.client(None);
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page =
                get_parameters_by_path(&self.caller, &client, decrypt, &p.path, p.recursive, token)
                    .await?;
            found.extend(
                page.parameters
                    .unwrap_or_default()
                    .iter_mut()
                    .filter_map(&mut pick),
            );
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(found);
            }
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
        self.read_path(p, true, take).await
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
    let meta = delta::Meta {
        kind: p.r#type.as_ref().map(|t| t.as_str().to_owned()),
        arn: p.arn.take(),
        modified: p.last_modified_date.map(|d| d.as_secs_f64()),
        data_type: p.data_type.take(),
        secret: p.source_result.take().and_then(|r| delta::secret_meta(&r)),
    };
    Some(Fetched {
        name: p.name.take()?,
        version: p.version,
        value: Secret::new(p.value.take()?),
        meta,
    })
}

/// The reads of [`read_batch`] without decryption, in the source's regions: versions
/// only (a watch poll's version check).
struct NoDecryption<'a>(&'a Source);

impl ReadParameters for NoDecryption<'_> {
    type Found = i64;

    async fn read_many(
        &self,
        region: Option<&str>,
        requests: &[ParamRef],
    ) -> Result<Vec<Option<i64>>, Cause> {
        let names: Vec<String> = requests.iter().map(ParamRef::request).collect();
        let client = self.0.client(region);
        let found = get_parameters(&self.0.caller, &client, false, requests, names).await?;
        Ok(found.into_iter().map(|p| p.map(|p| p.version)).collect())
    }

    async fn read_one(&self, region: Option<&str>, r: &ParamRef) -> Result<Option<i64>, Cause> {
        let found = get_parameter(&self.0.caller, &self.0.client(region), false, r).await?;
        Ok(found.map(|p| p.version))
    }
}

/// The values of `spec` from each request's answer and each path's (one per path of the
/// spec, in order): all or nothing, every error named.
fn assemble(
    spec: &Spec,
    by_request: &BTreeMap<String, Answer<Fetched>>,
    paths: Vec<Result<Vec<Fetched>, Cause>>,
) -> Result<Values, FetchFailure> {
    let mut values = Values::new();
    let mut errors = Vec::new();
    for (p, result) in spec.paths.iter().zip(paths) {
        match result {
            Ok(found) if found.is_empty() && !p.optional => {
                errors.push(FetchError {
                    what: format!("path {}", p.path),
                    cause: Cause::EmptyPath,
                });
            }
            Ok(found) => {
                values.extend(found.into_iter().map(|f| Entry {
                    key: SourceKey::Relative(
                        f.name.strip_prefix(&p.path).unwrap_or(&f.name).to_owned(),
                    ),
                    name: f.name,
                    version: Some(f.version),
                    value: f.value,
                }));
            }
            Err(cause) => errors.push(FetchError {
                what: format!("path {}", p.path),
                cause,
            }),
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

/// A version read of a poll.
enum Check<'a> {
    Params(Batch),
    Secret(&'a ParamRef),
    Path(&'a PathRequest),
}

/// What a version read found.
enum Observation {
    Requests(Vec<(String, Answer<Version>)>),
    Path(PathKey, Result<Vec<(String, i64)>, Cause>),
}

enum Job<'a> {
    Path(&'a PathRequest),
    Batch(Batch),
}

enum JobResult<'a> {
    Path(&'a PathRequest, Result<Vec<Fetched>, Cause>),
    Batch(Vec<(ParamRef, Answer<Fetched>)>),
}
