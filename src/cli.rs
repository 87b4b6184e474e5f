//! Command-line flags. Every flag also reads an `SSM_INJECTOR_*` environment variable;
//! list flags take comma-separated values there. Raw values only: checks live in `spec`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "ssm-injector",
    version,
    about = "Get AWS SSM Parameter Store values and Secrets Manager secrets into containers, safely.",
    after_help = "Exit codes: 0 ok, 1 other error, 2 bad spec or usage, 3 parameter not found, \
                  4 access denied (IAM, KMS, credentials), 5 AWS unavailable (throttled, 5xx, network), \
                  6 output could not be formatted or written (exec: the environment could not be built), \
                  126 exec: the command could not be run, 127 exec: the command was not found. \
                  After a successful exec the exit code is the command's own."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "SSM_INJECTOR_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once per process: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch the spec's parameters and write the output file(s) atomically, then exit.
    Render(RenderArgs),
    /// Fetch the spec's parameters, put them into the environment and exec CMD (it
    /// replaces ssm-injector: same pid, its own signals and exit code).
    Exec(ExecArgs),
    /// Print the least-privilege IAM policy for the spec (no AWS call).
    IamPolicy(IamPolicyArgs),
    /// GET an http:// URL and exit 0 on a 2xx answer (container health checks: the image
    /// has no shell or curl).
    Probe(ProbeArgs),
    /// Kubernetes mutating admission webhook (HTTPS only) that injects the init container
    /// and sidecar into annotated pods.
    Webhook(WebhookArgs),
    /// Fleet capacity model: AWS calls/s, quota use and monthly cost for pods × parameters
    /// × interval × mode (no AWS call; docs/capacity.md explains the model).
    Capacity(CapacityArgs),
    /// Version hub (HTTPS only): tracks the current versions (never values) of the names
    /// and paths its clients watch, polls AWS once per interval for all of them, and
    /// answers a long poll when one changes (docs/hub.md).
    Hub(HubArgs),
    /// Copy this binary to DIR/ssm-injector (mode 0555, atomically), so that an app
    /// container can run `exec --watch` from a shared volume (the image has no `cp`).
    Install(InstallArgs),
}

/// `install`: where to copy the binary.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The directory (created if missing; its parent must exist), e.g. /ssm/bin.
    #[arg(value_name = "DIR")]
    pub dir: std::path::PathBuf,
}

/// `capacity`: every input of the model. Unset values take the model's defaults.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// Pods (or tasks) with a sidecar [default: 10000].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_PODS", value_name = "N")]
    pub pods: Option<u64>,
    /// Parameters per pod: names, or parameters under its paths [default: 20].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_PARAMS", value_name = "N")]
    pub params: Option<u64>,
    /// How pods get their values [default: by-name].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_MODE")]
    pub mode: Option<CapacityMode>,
    /// Sidecar poll interval; in hub mode, the fallback polling interval [default: 10m].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_INTERVAL", value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// Regions the names are spread over evenly (by name, hub) [default: 1].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_REGIONS", value_name = "N")]
    pub regions: Option<u64>,
    /// Paths the parameters are spread over evenly (by path) [default: 1].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_PATHS", value_name = "N")]
    pub paths: Option<u64>,
    /// Count one more, empty page for a path holding an exact multiple of 10 parameters.
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_EXTRA_EMPTY_PAGE")]
    pub extra_empty_page: bool,
    /// Of each pod's names, how many are /aws/reference/secretsmanager/ references [default: 0].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_SECRET_REFS", value_name = "N")]
    pub secret_refs: Option<u64>,
    /// Fraction of the other parameters that are SecureStrings (0 to 1) [default: 1].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_SECURE_FRACTION", value_name = "F")]
    pub secure_fraction: Option<f64>,
    /// Pod starts per day across the fleet; each is one init render [default: 0].
    #[arg(
        long,
        env = "SSM_INJECTOR_CAPACITY_POD_STARTS_PER_DAY",
        value_name = "N"
    )]
    pub pod_starts_per_day: Option<f64>,
    /// Hub: distinct names across the fleet [default: --params, every pod watches the same set].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_DISTINCT_NAMES", value_name = "N")]
    pub distinct_names: Option<u64>,
    /// Hub: its poll interval [default: 30s].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_HUB_INTERVAL", value_parser = humantime::parse_duration)]
    pub hub_interval: Option<Duration>,
    /// Hub: replicas, each polling [default: 2].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_HUB_REPLICAS", value_name = "N")]
    pub hub_replicas: Option<u64>,
    /// Hub: rotations per parameter per day [default: 1].
    #[arg(
        long,
        env = "SSM_INJECTOR_CAPACITY_ROTATIONS_PER_DAY",
        value_name = "N"
    )]
    pub rotations_per_day: Option<f64>,
    /// Calls/s the busiest region should stay under [default: 40, the default quota].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_TARGET_TPS", value_name = "CALLS")]
    pub target_tps: Option<f64>,
    /// Parameter Store standard throughput quota, calls/s per account and region [default: 40].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_QUOTA_TPS", value_name = "CALLS")]
    pub quota_tps: Option<f64>,
    /// Higher-throughput quota for GetParameter(s) [default: 10000].
    #[arg(
        long,
        env = "SSM_INJECTOR_CAPACITY_HIGH_THROUGHPUT_TPS",
        value_name = "CALLS"
    )]
    pub high_throughput_tps: Option<f64>,
    /// Higher-throughput quota for GetParametersByPath [default: 100].
    #[arg(
        long,
        env = "SSM_INJECTOR_CAPACITY_HIGH_THROUGHPUT_BY_PATH_TPS",
        value_name = "CALLS"
    )]
    pub high_throughput_by_path_tps: Option<f64>,
    /// USD per 10,000 Parameter Store API interactions with higher throughput [default: 0.05].
    #[arg(
        long,
        env = "SSM_INJECTOR_CAPACITY_PARAMETER_STORE_PRICE",
        value_name = "USD"
    )]
    pub parameter_store_price: Option<f64>,
    /// USD per 10,000 Secrets Manager API calls [default: 0.05].
    #[arg(
        long,
        env = "SSM_INJECTOR_CAPACITY_SECRETS_MANAGER_PRICE",
        value_name = "USD"
    )]
    pub secrets_manager_price: Option<f64>,
    /// USD per 10,000 KMS requests [default: 0.03].
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_KMS_PRICE", value_name = "USD")]
    pub kms_price: Option<f64>,
    /// Free KMS requests per month [default: 20000].
    #[arg(
        long,
        env = "SSM_INJECTOR_CAPACITY_KMS_FREE_REQUESTS",
        value_name = "N"
    )]
    pub kms_free_requests: Option<f64>,
    /// Output: a readable table, or JSON for scripts.
    #[arg(long, env = "SSM_INJECTOR_CAPACITY_FORMAT", default_value = "text")]
    pub format: CapacityFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CapacityMode {
    ByName,
    ByPath,
    Hub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CapacityFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("webhook_tls")
        .required(true)
        .args(["cert", "tls_secret"])
))]
pub struct WebhookArgs {
    /// PEM certificate chain, server certificate first; re-read when it changes. With
    /// --key; or manage the certificate with --tls-secret instead.
    #[arg(long, env = "SSM_INJECTOR_CERT", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the certificate; re-read when it changes.
    #[arg(
        long,
        env = "SSM_INJECTOR_KEY",
        value_name = "FILE",
        requires = "cert",
        conflicts_with = "tls_secret"
    )]
    pub key: Option<PathBuf>,
    /// Address and port of the HTTPS server.
    #[arg(long, env = "SSM_INJECTOR_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: String,
    /// Injector configuration (YAML: image, native-sidecar, excluded-namespaces,
    /// namespace-prefixes, default-interval, default-paths, default-resources, hub-url,
    /// hub-ca-file, hub-audience).
    #[arg(long, env = "SSM_INJECTOR_WEBHOOK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Image of the injected containers (overrides the config file's `image`).
    #[arg(long, env = "SSM_INJECTOR_IMAGE", value_name = "IMAGE")]
    pub image: Option<String>,
    /// How often the certificate and key files are checked for a change.
    #[arg(long, env = "SSM_INJECTOR_CERT_CHECK_INTERVAL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub cert_check_interval: Duration,
    /// Longest time a client may take to send a request body, from the end of its headers
    /// (1s-10m); then the answer is 408 and the connection is closed.
    #[arg(long, env = "SSM_INJECTOR_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub request_timeout: Duration,
    /// Most connections open at once; more are closed as soon as they are accepted.
    #[arg(long, env = "SSM_INJECTOR_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    #[command(flatten)]
    pub self_tls: WebhookSelfTlsArgs,
}

/// `ssm-injector webhook --tls-secret`: the webhook runs its own CA (no cert-manager).
#[derive(Debug, Args)]
#[command(next_help_heading = "Self-managed TLS (instead of --cert and --key)")]
pub struct WebhookSelfTlsArgs {
    /// Secret (in --namespace) holding the CA: made on first start, rotated before it
    /// expires. Each replica issues its serving certificate from it in memory.
    #[arg(
        long,
        env = "SSM_INJECTOR_TLS_SECRET",
        value_name = "NAME",
        requires_all = ["webhook_configuration", "service_name"]
    )]
    pub tls_secret: Option<String>,
    /// The MutatingWebhookConfiguration whose caBundle (every webhook in it) is kept equal
    /// to the CA bundle.
    #[arg(
        long,
        env = "SSM_INJECTOR_WEBHOOK_CONFIGURATION",
        value_name = "NAME",
        requires = "tls_secret"
    )]
    pub webhook_configuration: Option<String>,
    /// The webhook's Service: the certificate is for SERVICE, SERVICE.NS, SERVICE.NS.svc
    /// and SERVICE.NS.svc.cluster.local.
    #[arg(
        long,
        env = "SSM_INJECTOR_SERVICE_NAME",
        value_name = "NAME",
        requires = "tls_secret"
    )]
    pub service_name: Option<String>,
    /// Namespace of the Secret and the Service [default: POD_NAMESPACE, else the service
    /// account's namespace file].
    #[arg(
        long,
        env = "SSM_INJECTOR_NAMESPACE",
        value_name = "NS",
        requires = "tls_secret"
    )]
    pub namespace: Option<String>,
    /// More DNS names or IP addresses for the serving certificate.
    #[arg(
        long,
        env = "SSM_INJECTOR_TLS_EXTRA_SAN",
        value_name = "NAME|IP",
        value_delimiter = ',',
        requires = "tls_secret"
    )]
    pub tls_extra_san: Vec<String>,
    /// Validity of a new CA.
    #[arg(long, env = "SSM_INJECTOR_TLS_CA_VALIDITY", value_parser = humantime::parse_duration, default_value = "87600h")]
    pub tls_ca_validity: Duration,
    /// A new CA is made when the newest has less than this left.
    #[arg(long, env = "SSM_INJECTOR_TLS_CA_RENEW_BEFORE", value_parser = humantime::parse_duration, default_value = "8760h")]
    pub tls_ca_renew_before: Duration,
    /// How long a new CA is trusted (in the caBundle) before it signs serving certificates.
    #[arg(long, env = "SSM_INJECTOR_TLS_CA_PROPAGATION", value_parser = humantime::parse_duration, default_value = "24h")]
    pub tls_ca_propagation: Duration,
    /// Validity of the serving certificate; it is reissued after two thirds of it.
    #[arg(long, env = "SSM_INJECTOR_TLS_CERT_VALIDITY", value_parser = humantime::parse_duration, default_value = "720h")]
    pub tls_cert_validity: Duration,
    /// How often the Secret and the caBundle are checked (the caBundle is also watched).
    #[arg(long, env = "SSM_INJECTOR_TLS_CHECK_INTERVAL", value_parser = humantime::parse_duration, default_value = "1m")]
    pub tls_check_interval: Duration,
}

/// `ssm-injector hub`.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("hub_tls")
        .required(true)
        .args(["cert", "tls_secret"])
))]
pub struct HubArgs {
    /// Address and port of the HTTPS server.
    #[arg(long, env = "SSM_INJECTOR_HUB_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: String,
    /// PEM certificate chain, server certificate first; re-read when it changes. With
    /// --key; or issue the certificate from the webhook's CA with --tls-secret instead.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,
    /// PEM private key of the certificate; re-read when it changes.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_KEY",
        value_name = "FILE",
        requires = "cert",
        conflicts_with = "tls_secret"
    )]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub self_tls: HubSelfTlsArgs,
    /// How often the certificate and key files are checked for a change.
    #[arg(long, env = "SSM_INJECTOR_HUB_CERT_CHECK_INTERVAL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub cert_check_interval: Duration,
    /// How often every watched name and path is read from AWS (at least 100ms).
    #[arg(long, env = "SSM_INJECTOR_HUB_INTERVAL", value_parser = humantime::parse_duration, default_value = "30s")]
    pub interval: Duration,
    /// Longest time a watch request is held (clients ask for less with wait_seconds).
    #[arg(long, env = "SSM_INJECTOR_HUB_MAX_WAIT", value_parser = humantime::parse_duration, default_value = "55s")]
    pub max_wait: Duration,
    /// AWS calls/s all clients of a changed key may make together when they re-fetch;
    /// sets the spread_ms the hub answers.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_CLIENT_BUDGET",
        value_name = "CALLS",
        default_value_t = 20.0
    )]
    pub client_budget: f64,
    /// Longest spread_ms the hub answers.
    #[arg(long, env = "SSM_INJECTOR_HUB_MAX_SPREAD", value_parser = humantime::parse_duration, default_value = "20m")]
    pub max_spread: Duration,
    /// How clients authenticate.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_AUTH",
        value_enum,
        default_value = "none"
    )]
    pub auth: HubAuth,
    #[command(flatten)]
    pub kube: HubKubeArgs,
    /// Most distinct names and paths one client may have the hub watch: per namespace
    /// with --auth kubernetes, per IP address with --auth none; a request that would pass
    /// it gets 429.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_MAX_KEYS_PER_CLIENT",
        default_value_t = 5000
    )]
    pub max_keys_per_client: usize,
    /// Longest time a client may take to send a request body, from the end of its headers
    /// (1s-10m); then the answer is 408 and the connection is closed.
    #[arg(long, env = "SSM_INJECTOR_HUB_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10s")]
    pub request_timeout: Duration,
    /// Most connections open at once (each held watch request is one); more are closed
    /// as soon as they are accepted.
    #[arg(long, env = "SSM_INJECTOR_HUB_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// AWS region (default: the SDK's chain, e.g. AWS_REGION).
    #[arg(long, env = "SSM_INJECTOR_REGION")]
    pub region: Option<String>,
    /// Call budget of the hub: AWS calls per second on average, after a burst [default: 20].
    #[arg(long, env = "SSM_INJECTOR_MAX_TPS", value_name = "CALLS")]
    pub max_tps: Option<f64>,
    /// Calls allowed at once before --max-tps applies [default: 40].
    #[arg(long, env = "SSM_INJECTOR_BURST", value_name = "CALLS")]
    pub burst: Option<u32>,
    /// AWS calls in flight at once (1-64).
    #[arg(long, env = "SSM_INJECTOR_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Push: SQS queue of this replica, filled by an EventBridge rule with Parameter Store
    /// and Secrets Manager change events; the keys they name are re-read at once.
    /// `{ordinal}` is replaced by the trailing number of --instance-id [default: no push].
    #[arg(long, env = "SSM_INJECTOR_HUB_QUEUE_URL", value_name = "URL")]
    pub queue_url: Option<String>,
    /// This replica's name; its trailing -N fills `{ordinal}` in --queue-url [default:
    /// HOSTNAME, the pod name of a StatefulSet: NAME-0, NAME-1, ...].
    #[arg(long, env = "SSM_INJECTOR_HUB_INSTANCE_ID", value_name = "ID")]
    pub instance_id: Option<String>,
}

/// `ssm-injector hub --tls-secret`: the hub's certificate from the webhook's own CA.
#[derive(Debug, Args)]
#[command(next_help_heading = "Certificate from the webhook's CA (instead of --cert and --key)")]
pub struct HubSelfTlsArgs {
    /// The webhook's CA Secret (`webhook --tls-secret`, in --namespace): each hub replica
    /// issues its certificate from it in memory. The hub only reads it.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_TLS_SECRET",
        value_name = "NAME",
        requires = "service_name"
    )]
    pub tls_secret: Option<String>,
    /// The hub's Service: the certificate is for SERVICE, SERVICE.NS, SERVICE.NS.svc and
    /// SERVICE.NS.svc.cluster.local.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_SERVICE_NAME",
        value_name = "NAME",
        requires = "tls_secret"
    )]
    pub service_name: Option<String>,
    /// Namespace of the Secret and the Service [default: POD_NAMESPACE, else the service
    /// account's namespace file].
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_NAMESPACE",
        value_name = "NS",
        requires = "tls_secret"
    )]
    pub namespace: Option<String>,
    /// More DNS names or IP addresses for the certificate.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_TLS_EXTRA_SAN",
        value_name = "NAME|IP",
        value_delimiter = ',',
        requires = "tls_secret"
    )]
    pub tls_extra_san: Vec<String>,
    /// How long a new CA is in the bundle before it signs certificates (the webhook's
    /// --tls-ca-propagation).
    #[arg(long, env = "SSM_INJECTOR_HUB_TLS_CA_PROPAGATION", value_parser = humantime::parse_duration, default_value = "24h")]
    pub tls_ca_propagation: Duration,
    /// Validity of the certificate; it is reissued after two thirds of it.
    #[arg(long, env = "SSM_INJECTOR_HUB_TLS_CERT_VALIDITY", value_parser = humantime::parse_duration, default_value = "720h")]
    pub tls_cert_validity: Duration,
    /// How often the CA Secret is read again.
    #[arg(long, env = "SSM_INJECTOR_HUB_TLS_CHECK_INTERVAL", value_parser = humantime::parse_duration, default_value = "1m")]
    pub tls_check_interval: Duration,
}

/// `ssm-injector hub --auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HubAuth {
    /// Anyone who reaches the port may watch anything (versions only, never values).
    None,
    /// Clients send their projected service account token (`Authorization: Bearer`); the
    /// hub checks it with a Kubernetes TokenReview and applies the namespace policy of
    /// --config.
    Kubernetes,
}

/// `ssm-injector hub --auth kubernetes`: how tokens are checked, and the policy.
#[derive(Debug, Args)]
pub struct HubKubeArgs {
    /// The Kubernetes API server that reviews tokens, with --kube-ca-file and
    /// --kube-token-file [default: the kube client's inference: KUBECONFIG, else
    /// ~/.kube/config, else the pod's service account (KUBERNETES_SERVICE_HOST and PORT)].
    #[arg(long, env = "SSM_INJECTOR_HUB_KUBE_API", value_name = "URL")]
    pub kube_api: Option<String>,
    /// With --kube-api: the hub's own service account token, sent with each TokenReview;
    /// re-read every minute (the kubelet rotates it) and when the API server refuses it
    /// [default: /var/run/secrets/kubernetes.io/serviceaccount/token].
    #[arg(long, env = "SSM_INJECTOR_HUB_KUBE_TOKEN_FILE", value_name = "FILE")]
    pub kube_token_file: Option<PathBuf>,
    /// With --kube-api: the CA that signed the API server's certificate; re-read every
    /// minute [default: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt].
    #[arg(long, env = "SSM_INJECTOR_HUB_KUBE_CA_FILE", value_name = "FILE")]
    pub kube_ca_file: Option<PathBuf>,
    /// The audience clients' tokens must be for (the webhook projects them with its
    /// config's hub-audience, which must be the same).
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_AUDIENCE",
        default_value = crate::hub_protocol::DEFAULT_AUDIENCE
    )]
    pub audience: String,
    /// The webhook's config file (YAML); with --auth kubernetes the hub applies its
    /// namespace-prefixes: a client may only watch names and paths under its namespace's
    /// prefixes [default: no policy].
    #[arg(long, env = "SSM_INJECTOR_HUB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// For example http://127.0.0.1:8099/readyz.
    pub url: String,
    /// Time limit.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Let the spec replace variables that are already set (default: a clash is an error).
    #[arg(long = "override", env = "SSM_INJECTOR_OVERRIDE")]
    pub override_existing: bool,
    /// Variable names from path-relative names: upper-snake, lower-snake or relative
    /// [default: upper-snake]. --param keys are used as given.
    #[arg(long, env = "SSM_INJECTOR_KEY_CASE")]
    pub key_case: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
    /// `--watch`: stay the command's parent, poll, and restart it with the new values when
    /// one changes (the --reload-* flags are render's: here a change restarts).
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub restart: RestartArgs,
}

/// How `exec --watch` restarts the command. Each needs --watch.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Restarts (exec --watch)")]
pub struct RestartArgs {
    /// Signal that asks the command to end before it starts again with the new values.
    #[arg(
        long,
        env = "SSM_INJECTOR_RESTART_SIGNAL",
        requires = "watch",
        default_value = "TERM"
    )]
    pub restart_signal: String,
    /// Time the command has to end after the restart signal; then its process group gets
    /// SIGKILL.
    #[arg(long, env = "SSM_INJECTOR_RESTART_GRACE", requires = "watch", value_parser = humantime::parse_duration, default_value = "10s")]
    pub restart_grace: Duration,
    /// Most restarts in any hour (for changes and --restart-on-exit together); beyond it
    /// the running command keeps its values, and the refusal is logged and counted.
    #[arg(
        long,
        env = "SSM_INJECTOR_MAX_RESTARTS_PER_HOUR",
        requires = "watch",
        default_value_t = 10
    )]
    pub max_restarts_per_hour: u32,
    /// Start the command again when it ends on its own (within the limit), instead of
    /// ending with its exit code.
    #[arg(long, env = "SSM_INJECTOR_RESTART_ON_EXIT", requires = "watch")]
    pub restart_on_exit: bool,
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// AWS account id for ARNs without one [default: AWS_ACCOUNT_ID].
    #[arg(long, env = "SSM_INJECTOR_ACCOUNT", value_name = "ID")]
    pub account: Option<String>,
    /// AWS partition [default: from the region: aws, aws-cn or aws-us-gov].
    #[arg(long, env = "SSM_INJECTOR_PARTITION")]
    pub partition: Option<String>,
    /// Output: a JSON policy document, or a Terraform aws_iam_policy_document data block.
    #[arg(
        long = "format",
        env = "SSM_INJECTOR_POLICY_FORMAT",
        default_value = "json"
    )]
    pub format: PolicyFormat,
    /// Limit kms:Decrypt to these key ARNs [default: any key, through SSM / Secrets Manager only].
    #[arg(
        long = "kms-key-arn",
        env = "SSM_INJECTOR_KMS_KEY_ARN",
        value_name = "ARN",
        value_delimiter = ','
    )]
    pub kms_key_arns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyFormat {
    Json,
    Terraform,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// Sidecar mode: keep the files current. Every other flag here needs --watch: without it
/// they would be ignored, so giving one is a usage error.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Watch mode (sidecar)")]
pub struct WatchArgs {
    /// Keep running: poll, and rewrite the files atomically when a value changes.
    #[arg(long, env = "SSM_INJECTOR_WATCH")]
    pub watch: bool,
    /// Time between polls (e.g. 60s, 5m). The default keeps 10,000 pods watching 20 names
    /// each under Parameter Store's default 40 calls/s (docs/capacity.md).
    #[arg(long, env = "SSM_INJECTOR_INTERVAL", requires = "watch", value_parser = humantime::parse_duration, default_value = "10m")]
    pub interval: Duration,
    /// Random spread of each poll around its slot, as a fraction of the interval (0 to 0.5).
    #[arg(
        long,
        env = "SSM_INJECTOR_JITTER",
        requires = "watch",
        default_value_t = 0.1
    )]
    pub jitter: f64,
    /// Identity of this pod or task; its hash picks the poll slot within the interval, so a
    /// fleet restarted together polls spread out [default: HOSTNAME, the pod name on
    /// Kubernetes].
    #[arg(
        long,
        env = "SSM_INJECTOR_INSTANCE_ID",
        requires = "watch",
        value_name = "ID"
    )]
    pub instance_id: Option<String>,
    /// Longest wait between retries after failures (exponential backoff, full jitter).
    #[arg(long, env = "SSM_INJECTOR_MAX_BACKOFF", requires = "watch", value_parser = humantime::parse_duration, default_value = "5m")]
    pub max_backoff: Duration,
    /// Version hub (`ssm-injector hub`) to follow instead of polling AWS: when it reports a
    /// change, the values are fetched from AWS with this pod's own role. If the hub is
    /// unreachable, polling AWS every --interval takes over.
    #[arg(long, env = "SSM_INJECTOR_HUB", requires = "watch", value_name = "URL")]
    pub hub: Option<String>,
    /// CA certificate(s) (PEM file) that signed the hub's certificate.
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_CA",
        requires = "watch",
        value_name = "FILE",
        requires = "hub"
    )]
    pub hub_ca: Option<PathBuf>,
    /// The same CA as PEM text (the webhook injects it this way).
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_CA_PEM",
        requires = "watch",
        value_name = "PEM",
        hide_env_values = true
    )]
    pub hub_ca_pem: Option<String>,
    /// Token sent to the hub as a bearer token, re-read for every request (a projected
    /// service account token on Kubernetes).
    #[arg(
        long,
        env = "SSM_INJECTOR_HUB_TOKEN_FILE",
        requires = "watch",
        value_name = "FILE"
    )]
    pub hub_token_file: Option<PathBuf>,
    /// Address for /healthz, /readyz and /metrics ("off" to disable).
    #[arg(
        long,
        env = "SSM_INJECTOR_LISTEN",
        requires = "watch",
        default_value = "0.0.0.0:8099"
    )]
    pub listen: String,
    /// /readyz fails when the last successful poll is older than this [default: never].
    #[arg(long, env = "SSM_INJECTOR_STALE_AFTER", requires = "watch", value_parser = humantime::parse_duration)]
    pub stale_after: Option<Duration>,
    /// Signal sent after a change (HUP, USR1, TERM, ...) [default: HUP when a target is given].
    #[arg(long, env = "SSM_INJECTOR_RELOAD_SIGNAL", requires = "watch")]
    pub reload_signal: Option<String>,
    /// Send the signal to the pid in this file.
    #[arg(
        long,
        env = "SSM_INJECTOR_RELOAD_PID_FILE",
        requires = "watch",
        value_name = "FILE",
        conflicts_with = "reload_process"
    )]
    pub reload_pid_file: Option<PathBuf>,
    /// Send the signal to every process with this name (needs a shared process namespace).
    #[arg(
        long,
        env = "SSM_INJECTOR_RELOAD_PROCESS",
        requires = "watch",
        value_name = "NAME"
    )]
    pub reload_process: Option<String>,
    /// Run this command after a change (split like a shell would, run without one).
    #[arg(
        long,
        env = "SSM_INJECTOR_RELOAD_COMMAND",
        requires = "watch",
        value_name = "CMD"
    )]
    pub reload_command: Option<String>,
    /// POST to this http:// URL after a change.
    #[arg(
        long,
        env = "SSM_INJECTOR_RELOAD_URL",
        requires = "watch",
        value_name = "URL"
    )]
    pub reload_url: Option<String>,
    /// Minimum time between two reloads; changes in between are coalesced.
    #[arg(long, env = "SSM_INJECTOR_RELOAD_DEBOUNCE", requires = "watch", value_parser = humantime::parse_duration, default_value = "5s")]
    pub reload_debounce: Duration,
    /// Time limit for one reload action.
    #[arg(long, env = "SSM_INJECTOR_RELOAD_TIMEOUT", requires = "watch", value_parser = humantime::parse_duration, default_value = "10s")]
    pub reload_timeout: Duration,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The local endpoint compatible with the AWS Parameters and Secrets Lambda Extension
/// (`--watch` only). The variables without the `SSM_INJECTOR_` prefix are the extension's.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Local endpoint (the Lambda extension's API)")]
pub struct ServeArgs {
    /// Serve GET /systemsmanager/parameters/get and /secretsmanager/get on this loopback
    /// address, e.g. 127.0.0.1:2773.
    #[arg(
        long,
        env = "SSM_INJECTOR_SERVE",
        requires = "watch",
        value_name = "ADDR"
    )]
    pub serve: Option<String>,
    /// The port of --serve's address [default: its own].
    #[arg(
        long,
        env = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
        requires = "serve",
        value_name = "PORT"
    )]
    pub serve_port: Option<u16>,
    /// File holding the token every request must send in X-Aws-Parameters-Secrets-Token
    /// [default: the AWS_SESSION_TOKEN variable, as the extension does].
    #[arg(
        long,
        env = "SSM_INJECTOR_SERVE_TOKEN_FILE",
        requires = "serve",
        value_name = "FILE"
    )]
    pub serve_token_file: Option<PathBuf>,
    /// Create --serve-token-file with a new random token when it does not exist (owner and
    /// mode of the output files), so that the app containers that mount it can read it.
    #[arg(
        long,
        env = "SSM_INJECTOR_SERVE_TOKEN_CREATE",
        requires = "serve_token_file"
    )]
    pub serve_token_create: bool,
    /// Prefixes of names (or /aws/reference/secretsmanager/ references) that are read on
    /// demand although the spec does not name them; others answer 403.
    #[arg(
        long,
        env = "SSM_INJECTOR_SERVE_ALLOW",
        requires = "serve",
        value_name = "PREFIX",
        value_delimiter = ','
    )]
    pub serve_allow: Vec<String>,
    /// How long an on-demand parameter is reused: seconds (0 to 300) or 90s, 5m.
    #[arg(long, env = "SSM_PARAMETER_STORE_TTL", requires = "serve", value_parser = parse_ttl, default_value = "300")]
    pub serve_parameter_ttl: Duration,
    /// How long an on-demand secret is reused: seconds (0 to 300) or 90s, 5m.
    #[arg(long, env = "SECRETS_MANAGER_TTL", requires = "serve", value_parser = parse_ttl, default_value = "300")]
    pub serve_secret_ttl: Duration,
    /// Most on-demand answers kept (0 to 1000; 0 keeps none).
    #[arg(
        long,
        env = "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
        requires = "serve",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u16).range(0..=1000)
    )]
    pub serve_cache_size: u16,
}

/// A TTL as the extension takes it (whole seconds, 0 to 300) or a duration (`90s`).
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = match s.trim().parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s.trim()).map_err(|e| e.to_string())?,
    };
    if d > Duration::from_secs(300) {
        return Err("at most 300 seconds, as the extension allows".to_owned());
    }
    Ok(d)
}

/// What to fetch (shared by every subcommand that reads parameters).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "What to fetch")]
pub struct SpecArgs {
    /// YAML spec file (paths, params, outputs); flags add to it.
    #[arg(long, env = "SSM_INJECTOR_SPEC", value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Fetch every parameter under PATH (GetParametersByPath); keys are names relative to it.
    #[arg(
        long = "path",
        env = "SSM_INJECTOR_PATH",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub paths: Vec<String>,
    /// Only direct children of --path, not the whole tree.
    #[arg(long, env = "SSM_INJECTOR_NO_RECURSIVE")]
    pub no_recursive: bool,
    /// KEY=NAME: one parameter (NAME, NAME:VERSION, NAME:LABEL, ARN, NAME#field); ${VAR} expands.
    #[arg(
        long = "param",
        env = "SSM_INJECTOR_PARAM",
        value_name = "KEY=NAME",
        value_delimiter = ','
    )]
    pub params: Vec<String>,
    /// KEY=NAME like --param, but a missing parameter is left out instead of failing.
    #[arg(
        long = "optional-param",
        env = "SSM_INJECTOR_OPTIONAL_PARAM",
        value_name = "KEY=NAME",
        value_delimiter = ','
    )]
    pub optional_params: Vec<String>,
    /// AWS region (default: the SDK's chain, e.g. AWS_REGION).
    #[arg(long, env = "SSM_INJECTOR_REGION")]
    pub region: Option<String>,
    /// AWS calls in flight at once (1-64) [default: 4].
    #[arg(long, env = "SSM_INJECTOR_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Call budget of this process's polls: AWS calls per second on average, after a
    /// burst (token bucket, on top of the SDK's retries); the first render is not
    /// throttled [default: 20].
    #[arg(long, env = "SSM_INJECTOR_MAX_TPS", value_name = "CALLS")]
    pub max_tps: Option<f64>,
    /// Calls allowed at once before --max-tps applies [default: 40].
    #[arg(long, env = "SSM_INJECTOR_BURST", value_name = "CALLS")]
    pub burst: Option<u32>,
}

/// One output given by flags (a spec file may list more).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Where it goes")]
pub struct OutputArgs {
    /// Output file (a directory for --format files).
    #[arg(long, env = "SSM_INJECTOR_OUTPUT", value_name = "FILE")]
    pub output: Option<String>,
    /// shell, dotenv, docker, k8s-env, json, yaml, properties, files or template
    /// [default: shell].
    #[arg(long, env = "SSM_INJECTOR_FORMAT", requires = "output")]
    pub format: Option<String>,
    /// Template file for --format template (minijinja).
    #[arg(
        long,
        env = "SSM_INJECTOR_TEMPLATE",
        value_name = "FILE",
        requires = "output"
    )]
    pub template: Option<String>,
    /// upper-snake, lower-snake or relative [default: relative for files, else upper-snake].
    #[arg(long, env = "SSM_INJECTOR_KEY_CASE", requires = "output")]
    pub key_case: Option<String>,
    /// Octal file mode [default: 0400].
    #[arg(
        long,
        env = "SSM_INJECTOR_FILE_MODE",
        value_name = "MODE",
        requires = "output"
    )]
    pub file_mode: Option<String>,
    /// Owner uid of the written files.
    #[arg(long, env = "SSM_INJECTOR_UID", requires = "output")]
    pub uid: Option<u32>,
    /// Owner gid of the written files.
    #[arg(long, env = "SSM_INJECTOR_GID", requires = "output")]
    pub gid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_issue_example_parses() {
        let cli = Cli::try_parse_from([
            "ssm-injector",
            "render",
            "--path",
            "/app/prod/",
            "--param",
            "DB=/app/prod/db",
            "--param",
            "A=/a,B=/b",
            "--format",
            "dotenv",
            "--output",
            "/ssm/app.env",
        ])
        .unwrap();
        let Command::Render(r) = cli.command else {
            panic!("not render")
        };
        assert_eq!(r.spec.params, ["DB=/app/prod/db", "A=/a", "B=/b"]);
        assert_eq!(r.output.output.as_deref(), Some("/ssm/app.env"));
    }

    #[test]
    fn exec_takes_the_command_after_a_double_dash() {
        let cli = Cli::try_parse_from([
            "ssm-injector",
            "exec",
            "--param",
            "A=/a",
            "--override",
            "--",
            "env",
            "-0",
            "--param",
        ])
        .unwrap();
        let Command::Exec(e) = cli.command else {
            panic!("not exec")
        };
        assert!(e.override_existing);
        assert_eq!(e.spec.params, ["A=/a"]);
        assert_eq!(e.command, ["env", "-0", "--param"]);
        assert!(Cli::try_parse_from(["ssm-injector", "exec", "--param", "A=/a"]).is_err());
    }

    #[test]
    fn iam_policy_takes_account_and_format() {
        let cli = Cli::try_parse_from([
            "ssm-injector",
            "iam-policy",
            "--path",
            "/app/",
            "--account",
            "111122223333",
            "--format",
            "terraform",
        ])
        .unwrap();
        let Command::IamPolicy(i) = cli.command else {
            panic!("not iam-policy")
        };
        assert_eq!(i.account.as_deref(), Some("111122223333"));
        assert_eq!(i.format, PolicyFormat::Terraform);
    }

    #[test]
    fn capacity_takes_the_benchmark_inputs() {
        let cli = Cli::try_parse_from([
            "ssm-injector",
            "capacity",
            "--pods",
            "200",
            "--params",
            "20",
            "--mode",
            "by-path",
            "--interval",
            "5m",
            "--format",
            "json",
        ])
        .unwrap();
        let Command::Capacity(c) = cli.command else {
            panic!("not capacity")
        };
        assert_eq!((c.pods, c.params), (Some(200), Some(20)));
        assert_eq!(c.mode, Some(CapacityMode::ByPath));
        assert_eq!(c.interval, Some(Duration::from_secs(300)));
        assert_eq!(c.format, CapacityFormat::Json);
    }

    #[test]
    fn output_flags_need_an_output() {
        assert!(
            Cli::try_parse_from([
                "ssm-injector",
                "render",
                "--param",
                "A=/a",
                "--format",
                "json"
            ])
            .is_err()
        );
    }

    #[test]
    fn watch_only_flags_without_watch_are_a_usage_error_naming_the_flag() {
        let render = |extra: &[&str]| {
            let mut all = vec![
                "ssm-injector",
                "render",
                "--param",
                "A=/a",
                "--output",
                "/x",
            ];
            all.extend(extra);
            Cli::try_parse_from(all)
        };
        for (flag, value) in [
            ("--interval", "5s"),
            ("--jitter", "0.2"),
            ("--instance-id", "pod-1"),
            ("--max-backoff", "1m"),
            ("--hub", "https://hub:8443"),
            ("--hub-ca-pem", "PEM"),
            ("--hub-token-file", "/t"),
            ("--listen", "off"),
            ("--stale-after", "1m"),
            ("--reload-signal", "HUP"),
            ("--reload-pid-file", "/p"),
            ("--reload-process", "nginx"),
            ("--reload-command", "true"),
            ("--reload-url", "http://127.0.0.1/"),
            ("--reload-debounce", "1s"),
            ("--reload-timeout", "1s"),
        ] {
            let e = render(&[flag, value]).expect_err(flag);
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
            assert_eq!(e.exit_code(), 2);
            let text = e.to_string();
            assert!(
                text.contains("--watch") && text.contains(flag),
                "{flag}: {text}"
            );
            assert!(render(&[flag, value, "--watch"]).is_ok(), "{flag} --watch");
        }
        assert!(render(&[]).is_ok(), "the defaults alone need no --watch");
    }

    #[test]
    fn the_webhook_takes_certificate_files_or_a_tls_secret_never_both_nor_neither() {
        let parse = |args: &[&str]| {
            let mut all = vec!["ssm-injector", "webhook"];
            all.extend(args);
            Cli::try_parse_from(all)
        };
        let Command::Webhook(w) = parse(&["--cert", "c", "--key", "k"])
            .expect("files")
            .command
        else {
            panic!("webhook");
        };
        assert_eq!(w.cert.as_deref(), Some(std::path::Path::new("c")));
        let self_tls = [
            "--tls-secret",
            "hook-ca",
            "--webhook-configuration",
            "hook",
            "--service-name",
            "hook",
            "--tls-extra-san",
            "127.0.0.1,localhost",
        ];
        let Command::Webhook(w) = parse(&self_tls).expect("self-managed").command else {
            panic!("webhook");
        };
        assert_eq!(w.self_tls.tls_extra_san, ["127.0.0.1", "localhost"]);
        assert_eq!(
            w.self_tls.tls_cert_validity,
            Duration::from_secs(720 * 3600)
        );

        let mut both = self_tls.to_vec();
        both.extend(["--cert", "c", "--key", "k"]);
        for (args, fragment) in [
            (both.as_slice(), "cannot be used with"),
            (&[][..], "--cert <FILE>|--tls-secret <NAME>"),
            (&["--cert", "c"][..], "--key <FILE>"),
            (&["--tls-secret", "hook-ca"][..], "--webhook-configuration"),
            (
                &["--cert", "c", "--key", "k", "--namespace", "x"][..],
                "--tls-secret",
            ),
        ] {
            let e = parse(args).expect_err(fragment).to_string();
            assert!(e.contains(fragment), "{args:?}: {e}");
        }
    }
}
