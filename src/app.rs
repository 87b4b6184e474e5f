//! Per-subcommand glue: reads files, builds the spec, calls the source, formats, writes.
//! Maps every command's error to its exit code ([`crate::exit`]).

use crate::cli::{
    Cli, Command, ExecArgs, IamPolicyArgs, OutputArgs, PolicyFormat, RenderArgs, SpecArgs,
};
use crate::exec::ExecError;
use crate::exit;
use crate::format::KeyCase;
use crate::iam::{self, IamError, Target};
use crate::output::{OutputError, prepare_outputs, write_outputs};
use crate::source::config::AwsConfigError;
use crate::source::delta::Held;
use crate::source::{FetchFailure, Kind, Source};
use crate::spec::file::{RawMode, RawOutput};
use crate::spec::{At, Spec, SpecError, SpecInput};
use crate::supervise::{SuperviseError, Supervisor};
use crate::watch::config::{WatchConfig, WatchConfigError};
use crate::watch::{Delivery, EnvDelivery, Rebuild, Watch, WatchError};
use crate::writer::FileMeta;
use std::time::Instant;

/// Everything that can stop a subcommand. Messages name the parameter, flag, key or file.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("spec file {path}: {reason}")]
    SpecFile { path: String, reason: String },
    #[error("{0}")]
    Setup(#[from] AwsConfigError),
    #[error("{0}")]
    Fetch(#[from] FetchFailure),
    #[error("{0}")]
    Output(#[from] OutputError),
    #[error("{0}")]
    WatchConfig(#[from] WatchConfigError),
    #[error("{0}")]
    Install(#[from] crate::install::InstallError),
    #[error("probe {0}")]
    Probe(#[from] crate::probe::ProbeError),
    #[error("{0}")]
    Watch(#[from] WatchError),
    #[error("{0}")]
    Iam(#[from] IamError),
    #[error("exec: {0}")]
    Env(#[from] ExecError),
    #[error("exec: {0}")]
    Supervise(#[from] SuperviseError),
    #[error("exec {command}: {}", exec_reason(source))]
    Exec {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing to stdout: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("webhook: {0}")]
    Webhook(#[from] crate::webhook::WebhookError),
    #[error("capacity: {0}")]
    Capacity(#[from] crate::capacity::CapacityError),
    #[error("hub: {0}")]
    Hub(#[from] crate::hub::HubError),
}

fn exec_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            "command not found (not in PATH, or the file does not exist)".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".to_owned(),
        _ => e.to_string(),
    }
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Spec(_)
            | AppError::SpecFile { .. }
            | AppError::Setup(_)
            | AppError::WatchConfig(_)
            | AppError::Watch(_)
            | AppError::Iam(_) => exit::USAGE,
            AppError::Fetch(f) => match f.kind() {
                Kind::NotFound => exit::NOT_FOUND,
                Kind::Denied => exit::DENIED,
                Kind::Unavailable => exit::UNAVAILABLE,
                Kind::Other => exit::OTHER,
            },
            AppError::Output(OutputError::TemplateFile { .. } | OutputError::Overlap(_)) => {
                exit::USAGE
            }
            AppError::Output(_) | AppError::Env(_) | AppError::Stdout(_) | AppError::Install(_) => {
                exit::OUTPUT
            }
            AppError::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                exit::EXEC_NOT_FOUND
            }
            AppError::Exec { .. } => exit::EXEC_FAILED,
            AppError::Probe(crate::probe::ProbeError::BadUrl(_)) => exit::USAGE,
            AppError::Probe(_) => exit::UNAVAILABLE,
            AppError::Webhook(e) => e.exit_code(),
            AppError::Capacity(_) => exit::USAGE,
            AppError::Hub(e) => e.exit_code(),
            AppError::Supervise(e) => e.exit_code(),
        }
    }
}

/// The name of the webhook's worker threads (`/proc/PID/task/*/comm`).
pub const WEBHOOK_WORKER: &str = "webhook-worker";

/// The async runtime `command` runs on. The webhook answers reviews on one worker thread per
/// core: a review is pure CPU (JSON in, the pure [`crate::inject::mutate`], JSON out), so
/// with one thread a second core would sit idle while reviews queue. Every other command
/// runs on the thread that started it: the sidecar and the one-shot commands wait on I/O,
/// and the hub's held requests cost memory, not CPU.
pub fn runtime(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    match command {
        Command::Webhook(_) => {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name(WEBHOOK_WORKER)
                .enable_all()
                .build()
        }
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
}

/// `install DIR`: copies this binary into DIR.
fn install(dir: &std::path::Path) -> Result<(), AppError> {
    let done = crate::install::install(dir)?;
    tracing::info!(
        path = %done.path.display(),
        bytes = done.bytes,
        "installed"
    );
    Ok(())
}

/// Runs the parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Render(args) => render(args).await,
        // exec --watch ends with its command's exit code.
        Command::Exec(args) => match exec(args).await {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::IamPolicy(args) => iam_policy(args),
        Command::Probe(args) => crate::probe::probe(&args.url, args.timeout)
            .await
            .map_err(AppError::from),
        Command::Webhook(args) => crate::webhook::run(args).await.map_err(AppError::from),
        Command::Capacity(args) => capacity(args),
        Command::Install(args) => install(&args.dir),
        Command::Hub(mut args) => {
            if args.instance_id.is_none() {
                args.instance_id = std::env::var("HOSTNAME").ok();
            }
            crate::hub::run(args).await.map_err(AppError::from)
        }
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!(exit_code = e.exit_code(), "{e}");
            e.exit_code()
        }
    }
}

/// The watch flags checked by `build`, with `--instance-id` defaulting to `HOSTNAME`;
/// `None` without `--watch`.
fn watch_config(
    mut watch: crate::cli::WatchArgs,
    build: fn(crate::cli::WatchArgs) -> Result<WatchConfig, WatchConfigError>,
) -> Result<Option<WatchConfig>, WatchConfigError> {
    if !watch.watch {
        return Ok(None);
    }
    // On Kubernetes HOSTNAME is the pod name; on ECS the task's own host name.
    if watch.instance_id.is_none() {
        watch.instance_id = std::env::var("HOSTNAME").ok();
    }
    build(watch).map(Some)
}

/// Where a `render --watch` error about standard output points.
const WATCH_OUTPUTS: &str = "--watch";

async fn render(args: RenderArgs) -> Result<(), AppError> {
    let RenderArgs {
        spec: spec_args,
        output,
        watch,
    } = args;
    let watch = watch_config(watch, WatchConfig::build)?;
    let spec = build_spec(spec_args.clone(), Some(output.clone()))?;
    if watch.is_some() {
        spec.check_for_watch(WATCH_OUTPUTS)?;
    }
    let prepared = prepare_outputs(&spec)?;
    let source = Source::from_env(spec.region.clone(), spec.concurrency, spec.budget).await?;
    if let Some(config) = watch {
        let spec_file = spec_args.spec.clone().map(|path| {
            let rebuild: Rebuild = Box::new(move || {
                let spec = build_spec(spec_args.clone(), Some(output.clone()))
                    .map_err(|e| e.to_string())?;
                spec.check_for_watch(WATCH_OUTPUTS)
                    .map_err(|e| e.to_string())?;
                Ok(spec)
            });
            (path, rebuild)
        });
        // A token the sidecar makes is readable by whoever reads the output files.
        let token_meta = spec
            .outputs
            .first()
            .map_or_else(FileMeta::default, |o| FileMeta {
                mode: o.mode,
                uid: o.uid,
                gid: o.gid,
            });
        let ports = crate::watch::bind(&config, token_meta).await?;
        crate::watch::run(Watch {
            config,
            spec,
            delivery: Delivery::Files(prepared),
            source,
            held: Held::default(),
            spec_file,
            ports,
        })
        .await?;
        return Ok(());
    }
    let started = Instant::now();
    let values = source.fetch_first(&spec).await?;
    tracing::info!(
        values = values.len(),
        api_calls = source.calls().total(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "fetched"
    );
    write_outputs(&prepared, &values)?;
    Ok(())
}

/// Fetches, builds the environment and replaces this process with the command. Returns
/// only on failure; the command is never started unless everything before it succeeded.
/// With `--watch` it starts the command as its child instead and keeps it current
/// ([`exec_watch`]): then the command's exit code comes back.
async fn exec(args: ExecArgs) -> Result<u8, AppError> {
    use std::os::unix::process::CommandExt;

    let ExecArgs {
        spec,
        override_existing,
        key_case,
        command,
        watch,
        restart,
    } = args;
    let watch = watch_config(watch, WatchConfig::build_for_exec)?;
    let spec = build_spec_without_outputs(spec)?;
    if !spec.outputs.is_empty() {
        tracing::warn!(
            outputs = spec.outputs.len(),
            "exec ignores the spec file's outputs"
        );
    }
    let key_case = match key_case {
        None => KeyCase::UpperSnake,
        Some(k) => k.parse::<KeyCase>().map_err(|_| SpecError::BadKeyCase {
            at: At("--key-case".into()),
            value: k,
        })?,
    };
    let existing = |key: &str| std::env::var_os(key).is_some();
    // Explicit keys are known now: a bad one costs no AWS call.
    crate::exec::check_keys(
        spec.params.iter().map(|p| p.key.as_str()),
        &existing,
        override_existing,
    )?;
    // clap requires a command after `--`; an empty one is still answered, not a panic.
    let Some((program, rest)) = command.split_first() else {
        return Err(AppError::Exec {
            command: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command after --"),
        });
    };
    let restart = match watch {
        Some(config) => {
            let signal = crate::reload_action::parse_signal(&restart.restart_signal)
                .map_err(WatchConfigError::RestartSignal)?;
            let command = crate::supervise::Command {
                program: program.clone(),
                args: rest.to_vec(),
                restart_signal: signal,
                grace: restart.restart_grace,
                restart_on_exit: restart.restart_on_exit,
                limit: crate::supervise::RestartLimit::per_hour(restart.max_restarts_per_hour),
            };
            Some((config, command))
        }
        None => None,
    };
    let source = Source::from_env(spec.region.clone(), spec.concurrency, spec.budget).await?;
    if let Some((config, command)) = restart {
        let build = move |values: &crate::values::Values| {
            let existing = |key: &str| std::env::var_os(key).is_some();
            crate::exec::env_vars(values, key_case, &existing, override_existing)
        };
        return exec_watch(config, spec, source, command, Box::new(build)).await;
    }
    let values = source.fetch_first(&spec).await?;
    let vars = crate::exec::env_vars(&values, key_case, &existing, override_existing)?;
    tracing::info!(
        command = %program.to_string_lossy(),
        variables = vars.len(),
        api_calls = source.calls().total(),
        "exec"
    );
    let err = std::process::Command::new(program)
        .args(rest)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.expose())))
        .exec();
    Err(AppError::Exec {
        command: program.to_string_lossy().into_owned(),
        source: err,
    })
}

/// How `exec --watch` builds the command's environment from a set of values.
type BuildEnv =
    Box<dyn Fn(&crate::values::Values) -> Result<crate::supervise::Env, ExecError> + Send>;

/// `exec --watch`: the first fetch (failing as `exec` fails, before the command ever
/// starts), the command started with those values, then the watch loop restarts it when
/// they change; the command's exit code.
async fn exec_watch(
    config: WatchConfig,
    spec: Spec,
    source: Source,
    command: crate::supervise::Command,
    build: BuildEnv,
) -> Result<u8, AppError> {
    // First of all: a port in use ends this before any AWS call, and before the command
    // could have started.
    let ports = crate::watch::bind(&config, FileMeta::default()).await?;
    // The first fetch fills `held`: the loop's polls then decrypt only what changed.
    let mut held = Held::default();
    let values = {
        let _exempt = source.exempt_from_budget();
        source.poll(&spec, &mut held).await?
    };
    let env = build(&values)?;
    drop(values);
    tracing::info!(
        command = %command.program.to_string_lossy(),
        variables = env.len(),
        api_calls = source.calls().total(),
        "exec --watch: starting the command"
    );
    let hasher = std::hash::RandomState::new();
    let running = crate::watch::env_fingerprint(&env, &hasher);
    let (supervisor, handle, _events) = Supervisor::start(command, env)?;
    let ended = tokio::spawn(supervisor.run());
    let build =
        Box::new(move |values: &crate::values::Values| build(values).map_err(|e| e.to_string()));
    let code = crate::watch::run(Watch {
        config,
        spec,
        delivery: Delivery::Env(EnvDelivery {
            supervisor: handle,
            ended,
            build,
            running,
            hasher,
        }),
        source,
        held,
        spec_file: None,
        ports,
    })
    .await?;
    Ok(code)
}

/// Prints the least-privilege IAM policy for the spec. No AWS call.
fn iam_policy(args: IamPolicyArgs) -> Result<(), AppError> {
    use std::io::Write;

    let IamPolicyArgs {
        spec,
        account,
        partition,
        format,
        kms_key_arns,
    } = args;
    let spec = build_spec_without_outputs(spec)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let region = spec
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"));
    let account = account.or_else(|| env("AWS_ACCOUNT_ID"));
    let target = Target::build(account.as_deref(), region.as_deref(), partition.as_deref())?;
    for key in &kms_key_arns {
        iam::check_kms_key_arn(key)?;
    }
    let doc = iam::policy(&spec, &target, &kms_key_arns);
    let text = match format {
        PolicyFormat::Json => {
            let mut t = serde_json::to_string_pretty(&doc)
                .map_err(|e| AppError::Stdout(std::io::Error::other(e)))?;
            t.push('\n');
            t
        }
        PolicyFormat::Terraform => iam::terraform(&doc, "ssm_injector"),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(AppError::Stdout)
}

/// Prints the capacity model's estimate (a table, or JSON). No AWS call.
fn capacity(args: crate::cli::CapacityArgs) -> Result<(), AppError> {
    use crate::capacity::{self, Inputs, Mode, Prices, Quotas};
    use crate::cli::{CapacityArgs, CapacityFormat, CapacityMode};
    use std::io::Write;

    let CapacityArgs {
        pods,
        params,
        mode,
        interval,
        regions,
        paths,
        extra_empty_page,
        secret_refs,
        secure_fraction,
        pod_starts_per_day,
        distinct_names,
        hub_interval,
        hub_replicas,
        rotations_per_day,
        target_tps,
        quota_tps,
        high_throughput_tps,
        high_throughput_by_path_tps,
        parameter_store_price,
        secrets_manager_price,
        kms_price,
        kms_free_requests,
        format,
    } = args;
    let d = Inputs::default();
    let inputs = Inputs {
        pods: pods.unwrap_or(d.pods),
        params_per_pod: params.unwrap_or(d.params_per_pod),
        mode: match mode {
            None => d.mode,
            Some(CapacityMode::ByName) => Mode::ByName,
            Some(CapacityMode::ByPath) => Mode::ByPath,
            Some(CapacityMode::Hub) => Mode::Hub,
        },
        interval: interval.unwrap_or(d.interval),
        regions: regions.unwrap_or(d.regions),
        paths: paths.unwrap_or(d.paths),
        extra_empty_page,
        secret_refs: secret_refs.unwrap_or(d.secret_refs),
        secure_fraction: secure_fraction.unwrap_or(d.secure_fraction),
        pod_starts_per_day: pod_starts_per_day.unwrap_or(d.pod_starts_per_day),
        distinct_names,
        hub_interval: hub_interval.unwrap_or(d.hub_interval),
        hub_replicas: hub_replicas.unwrap_or(d.hub_replicas),
        rotations_per_day: rotations_per_day.unwrap_or(d.rotations_per_day),
        target_tps: target_tps.unwrap_or(d.target_tps),
        quotas: Quotas {
            standard_tps: quota_tps.unwrap_or(d.quotas.standard_tps),
            high_throughput_tps: high_throughput_tps.unwrap_or(d.quotas.high_throughput_tps),
            high_throughput_by_path_tps: high_throughput_by_path_tps
                .unwrap_or(d.quotas.high_throughput_by_path_tps),
        },
        prices: Prices {
            parameter_store_per_10k: parameter_store_price
                .unwrap_or(d.prices.parameter_store_per_10k),
            secrets_manager_per_10k: secrets_manager_price
                .unwrap_or(d.prices.secrets_manager_per_10k),
            kms_per_10k: kms_price.unwrap_or(d.prices.kms_per_10k),
            kms_free_requests: kms_free_requests.unwrap_or(d.prices.kms_free_requests),
        },
    };
    let estimate = capacity::estimate(&inputs)?;
    let text = match format {
        CapacityFormat::Text => capacity::text(&estimate),
        CapacityFormat::Json => {
            capacity::json(&estimate).map_err(|e| AppError::Stdout(std::io::Error::other(e)))?
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(AppError::Stdout)
}

/// Reads the spec file (if any), merges the flags and checks everything. The spec must
/// name at least one output.
pub fn build_spec(args: SpecArgs, output: Option<OutputArgs>) -> Result<Spec, AppError> {
    build_spec_with(args, output, false)
}

/// Like [`build_spec`], for subcommands that write no files (`exec`, `iam-policy`): no
/// output is needed, and any outputs in a spec file are ignored by the caller.
pub fn build_spec_without_outputs(args: SpecArgs) -> Result<Spec, AppError> {
    build_spec_with(args, None, true)
}

fn build_spec_with(
    args: SpecArgs,
    output: Option<OutputArgs>,
    outputs_optional: bool,
) -> Result<Spec, AppError> {
    let SpecArgs {
        spec,
        paths,
        no_recursive,
        params,
        optional_params,
        region,
        concurrency,
        max_tps,
        burst,
    } = args;
    let file = match spec {
        None => None,
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| AppError::SpecFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let parsed = crate::spec::file::parse(&text).map_err(|e| AppError::SpecFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            Some((shown, parsed))
        }
    };
    let output = output.and_then(|o| {
        let OutputArgs {
            output,
            format,
            template,
            key_case,
            file_mode,
            uid,
            gid,
        } = o;
        output.map(|file| RawOutput {
            format,
            file,
            template,
            key_case,
            mode: file_mode.map(|m| RawMode(Ok(m))),
            uid,
            gid,
        })
    });
    let input = SpecInput {
        file,
        paths,
        recursive: !no_recursive,
        params,
        optional_params,
        region,
        output,
        concurrency,
        max_tps,
        burst,
        outputs_optional,
    };
    Ok(Spec::build(input, &|name| std::env::var(name).ok())?)
}
