//! The one way this program calls AWS. Every call of the value source ([`super::Source`]),
//! the version source ([`super::versions::VersionSource`]) and the push queue
//! ([`super::queue::EventQueue`]) goes through a [`Caller`], which
//!
//! 1. waits for the process's call budget ([`Budget`], `--max-tps`/`--burst`) and reports
//!    the wait (the queue's caller has no budget: SQS has its own quotas);
//! 2. makes the call: the SDK makes its own attempts (`AWS_MAX_ATTEMPTS`, the profile's
//!    `max_attempts`), and a failure is a failure after all of them;
//! 3. turns an error into a [`Cause`] ([`classify`]);
//! 4. counts the call ([`CallCounts`]) and tells the [`CallObserver`] (metrics).
//!
//! [`Caller::coalesce`] shares identical calls in flight (through the source's
//! [`Coalescer`]) and counts and reports the calls it saved. [`read_batch`] carries out
//! the decisions of [`BatchRead`] (the first GetParameters of a batch, the names asked
//! alone when AWS refuses it, the ARNs confirmed with GetParameter) for either source.

use super::batch::{Answer, Ask, Batch, BatchRead};
use super::budget::{Budget, Exempt};
use super::coalesce::{Coalescer, Served};
use super::error::Cause;
use crate::spec::budget::BudgetConfig;
use crate::spec::names::ParamRef;
use aws_config::SdkConfig;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An AWS operation, as counted and labelled in metrics (`operation="…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    GetParameter,
    GetParameters,
    GetParametersByPath,
    DescribeParameters,
    DescribeSecret,
    GetSecretValue,
    ReceiveMessage,
    DeleteMessageBatch,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 8] = [
        Operation::GetParameter,
        Operation::GetParameters,
        Operation::GetParametersByPath,
        Operation::DescribeParameters,
        Operation::DescribeSecret,
        Operation::GetSecretValue,
        Operation::ReceiveMessage,
        Operation::DeleteMessageBatch,
    ];

    /// AWS's name of the operation: the metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetParameter => "GetParameter",
            Operation::GetParameters => "GetParameters",
            Operation::GetParametersByPath => "GetParametersByPath",
            Operation::DescribeParameters => "DescribeParameters",
            Operation::DescribeSecret => "DescribeSecret",
            Operation::GetSecretValue => "GetSecretValue",
            Operation::ReceiveMessage => "ReceiveMessage",
            Operation::DeleteMessageBatch => "DeleteMessageBatch",
        }
    }

    /// An SQS call (the hub's push queue), counted apart from the reads of values and
    /// versions.
    pub fn is_queue(self) -> bool {
        matches!(
            self,
            Operation::ReceiveMessage | Operation::DeleteMessageBatch
        )
    }
}

/// Told about every finished AWS call (after the SDK's attempts): `None` for success, else
/// the cause. Metrics implement it; the sources do not know about them.
pub trait CallObserver: Send + Sync {
    fn observe(&self, op: Operation, failure: Option<&Cause>);
    /// A call waited this long for the call budget (`--max-tps`) before it went out.
    fn budget_waited(&self, _waited: Duration) {}
    /// A call was not made because an identical one in flight answered it.
    fn coalesced(&self, _op: Operation) {}
}

/// Calls made through one [`Caller`], by operation (one per SDK operation, its attempts
/// not counted), and calls saved by coalescing.
#[derive(Debug, Default)]
pub struct CallCounts {
    made: [AtomicU64; Operation::ALL.len()],
    coalesced: AtomicU64,
}

impl CallCounts {
    /// Calls of `op` made.
    pub fn made(&self, op: Operation) -> u64 {
        self.made[op as usize].load(Ordering::Relaxed)
    }

    /// Calls made, every operation.
    pub fn total(&self) -> u64 {
        self.made.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Calls not made because an identical call in flight answered them.
    pub fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }
}

/// Makes AWS calls within a budget, classifies their errors, counts them and reports them.
pub struct Caller {
    /// The SDK's attempts per call, as reported in causes ("after 3 attempts").
    attempts: u32,
    budget: Option<Budget>,
    observer: Option<Arc<dyn CallObserver>>,
    calls: CallCounts,
}

impl Caller {
    /// Every call waits for `budget` first. `config` gives the SDK's attempts per call.
    pub fn new(config: &SdkConfig, budget: BudgetConfig) -> Caller {
        Caller {
            budget: Some(Budget::new(budget)),
            ..Caller::without_budget(config)
        }
    }

    /// Calls go out at once (SQS: not part of Parameter Store's shared quota).
    pub fn without_budget(config: &SdkConfig) -> Caller {
        Caller {
            attempts: config.retry_config().map_or(1, |r| r.max_attempts()),
            budget: None,
            observer: None,
            calls: CallCounts::default(),
        }
    }

    /// Reports every finished call, budget wait and coalesced call to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Caller {
        self.observer = Some(observer);
        self
    }

    /// The calls made so far.
    pub fn calls(&self) -> &CallCounts {
        &self.calls
    }

    /// Calls wait for no budget until the guard is dropped ([`Budget::exempt`]).
    pub fn exempt_from_budget(&self) -> Option<Exempt<'_>> {
        self.budget.as_ref().map(Budget::exempt)
    }

    /// One call of `op`: waits for the budget, runs `send` (the SDK request; nothing is
    /// sent before it runs), classifies an error, counts the call and tells the observer.
    pub async fn call<T, E, R, F, Fut>(&self, op: Operation, send: F) -> Result<T, Cause>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HasStatus,
    {
        self.wait_for_budget().await;
        let result = send().await.map_err(|e| classify(&e, self.attempts));
        self.calls.made[op as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(o) = &self.observer {
            o.observe(op, result.as_ref().err());
        }
        result
    }

    /// Runs `call` (which makes calls of `op` through [`Caller::call`]) unless the same
    /// `key` is in flight in `calls`, in which case its answer is shared; a shared answer
    /// is logged, counted and reported.
    pub async fn coalesce<K, V, F, Fut>(
        &self,
        op: Operation,
        calls: &Coalescer<K, V>,
        key: K,
        call: F,
    ) -> V
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let (answer, served) = calls.run(key, call).await;
        if served == Served::Shared {
            tracing::debug!(
                operation = op.as_str(),
                "answered by an identical call in flight"
            );
            self.calls.coalesced.fetch_add(1, Ordering::Relaxed);
            if let Some(o) = &self.observer {
                o.coalesced(op);
            }
        }
        answer
    }

    /// Waits for the call budget, if any; a wait is logged and reported.
    async fn wait_for_budget(&self) {
        let Some(budget) = &self.budget else {
            return;
        };
        let waited = budget.acquire().await;
        if !waited.is_zero() {
            tracing::debug!(waited_ms = waited.as_millis() as u64, "call budget: waited");
            if let Some(o) = &self.observer {
                o.budget_waited(waited);
            }
        }
    }
}

/// The two Parameter Store reads a batch is answered with: decrypted values for the
/// value source, versions for the version source. Each makes its call through its
/// [`Caller`].
pub(crate) trait ReadParameters {
    /// What one request's answer carries.
    type Found: Clone;

    /// GetParameters for up to 10 requests of one region: each request's answer, in order
    /// (`None`: not among the parameters returned).
    async fn read_many(
        &self,
        region: Option<&str>,
        requests: &[ParamRef],
    ) -> Result<Vec<Option<Self::Found>>, Cause>;

    /// GetParameter for one request (`None`: answered without a parameter).
    async fn read_one(
        &self,
        region: Option<&str>,
        request: &ParamRef,
    ) -> Result<Option<Self::Found>, Cause>;
}

/// Answers every request of `batch` with the reads [`BatchRead`] asks for, one after
/// another, in its order.
pub(crate) async fn read_batch<R: ReadParameters>(
    reader: &R,
    batch: Batch,
) -> Vec<(ParamRef, Answer<R::Found>)> {
    let region = batch.region.as_deref();
    let mut read = BatchRead::new(&batch.requests);
    while let Some(ask) = read.next_ask() {
        match ask {
            Ask::GetParameters(asked) => {
                let answer = reader
                    .read_many(region, &batch.requests[asked.clone()])
                    .await;
                read.got_parameters(asked, answer);
            }
            Ask::GetParameter(i) => {
                let answer = reader.read_one(region, &batch.requests[i]).await;
                read.got_parameter(i, answer);
            }
        }
    }
    batch.requests.iter().cloned().zip(read.finish()).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;
    use aws_config::retry::RetryConfig;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;
    use std::sync::Mutex;

    /// Every report, as text.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Recorder {
        fn seen(&self) -> Vec<String> {
            self.0.lock().map(|v| v.clone()).unwrap_or_default()
        }
        fn push(&self, s: String) {
            if let Ok(mut v) = self.0.lock() {
                v.push(s);
            }
        }
    }

    impl CallObserver for Recorder {
        fn observe(&self, op: Operation, failure: Option<&Cause>) {
            self.push(format!(
                "{} {}",
                op.as_str(),
                failure.map_or("ok", Cause::label)
            ));
        }
        fn budget_waited(&self, waited: Duration) {
            self.push(format!("waited {}ms", waited.as_millis()));
        }
        fn coalesced(&self, op: Operation) {
            self.push(format!("coalesced {}", op.as_str()));
        }
    }

    fn config(attempts: u32) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(attempts))
            .build()
    }

    type Response = aws_smithy_runtime_api::http::Response;

    /// An SDK service error with AWS's `code` and an HTTP `status`.
    fn service_error(code: &str, status: u16) -> SdkError<ErrorMetadata, Response> {
        let raw = Response::new(
            StatusCode::try_from(status).unwrap_or_else(|_| StatusCode::try_from(500).unwrap()),
            SdkBody::empty(),
        );
        let err = ErrorMetadata::builder()
            .code(code)
            .message("a message")
            .build();
        SdkError::service_error(err, raw)
    }

    #[test]
    fn labels_are_aws_operation_names_and_only_sqs_is_the_queue() {
        let labels: Vec<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            labels,
            [
                "GetParameter",
                "GetParameters",
                "GetParametersByPath",
                "DescribeParameters",
                "DescribeSecret",
                "GetSecretValue",
                "ReceiveMessage",
                "DeleteMessageBatch"
            ]
        );
        let queue: Vec<Operation> = Operation::ALL
            .into_iter()
            .filter(|o| o.is_queue())
            .collect();
        assert_eq!(
            queue,
            [Operation::ReceiveMessage, Operation::DeleteMessageBatch]
        );
        for (i, op) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(op as usize, i, "{op:?} indexes the counts");
        }
    }

    #[tokio::test]
    async fn a_call_is_classified_counted_and_reported_with_the_configured_attempts() {
        let recorder = Arc::new(Recorder::default());
        let caller = Caller::without_budget(&config(4)).with_observer(recorder.clone());
        let ok = caller
            .call(Operation::GetParameters, || async {
                Ok::<u8, SdkError<ErrorMetadata, Response>>(7)
            })
            .await;
        assert_eq!(ok, Ok(7));
        let throttled = caller
            .call(Operation::DescribeSecret, || async {
                Err::<u8, _>(service_error("ThrottlingException", 400))
            })
            .await;
        assert_eq!(
            throttled,
            Err(Cause::Throttled {
                code: "ThrottlingException".into(),
                attempts: 4
            })
        );
        let missing = caller
            .call(Operation::DescribeSecret, || async {
                Err::<u8, _>(service_error("ResourceNotFoundException", 400))
            })
            .await;
        assert_eq!(missing, Err(Cause::NotFound));
        assert_eq!(
            recorder.seen(),
            [
                "GetParameters ok",
                "DescribeSecret throttled",
                "DescribeSecret not_found"
            ]
        );
        assert_eq!(caller.calls().made(Operation::GetParameters), 1);
        assert_eq!(caller.calls().made(Operation::DescribeSecret), 2);
        assert_eq!(caller.calls().total(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_burst_wait_for_the_budget_and_the_wait_is_reported() {
        let recorder = Arc::new(Recorder::default());
        let budget = BudgetConfig::new(10.0, 2).unwrap();
        let caller = Caller::new(&config(3), budget).with_observer(recorder.clone());
        for _ in 0..3 {
            let _ = caller
                .call(Operation::GetParameters, || async {
                    Ok::<(), SdkError<ErrorMetadata, Response>>(())
                })
                .await;
        }
        assert_eq!(
            recorder.seen(),
            [
                "GetParameters ok",
                "GetParameters ok",
                "waited 100ms",
                "GetParameters ok"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_without_budget_never_waits() {
        let recorder = Arc::new(Recorder::default());
        let caller = Caller::without_budget(&config(3)).with_observer(recorder.clone());
        let started = tokio::time::Instant::now();
        for _ in 0..100 {
            let _ = caller
                .call(Operation::ReceiveMessage, || async {
                    Ok::<(), SdkError<ErrorMetadata, Response>>(())
                })
                .await;
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(recorder.seen().iter().all(|s| s == "ReceiveMessage ok"));
    }

    #[tokio::test(start_paused = true)]
    async fn shared_answers_are_counted_and_reported_once_per_caller_served() {
        let recorder = Arc::new(Recorder::default());
        let caller = Caller::without_budget(&config(3)).with_observer(recorder.clone());
        let calls: Coalescer<&str, u8> = Coalescer::default();
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            5
        };
        let (a, b, c) = tokio::join!(
            caller.coalesce(Operation::GetParametersByPath, &calls, "k", slow),
            caller.coalesce(Operation::GetParametersByPath, &calls, "k", slow),
            caller.coalesce(Operation::GetParametersByPath, &calls, "k", slow),
        );
        assert_eq!((a, b, c), (5, 5, 5));
        assert_eq!(caller.calls().coalesced(), 2);
        assert_eq!(
            recorder.seen(),
            [
                "coalesced GetParametersByPath",
                "coalesced GetParametersByPath"
            ]
        );
    }
}
