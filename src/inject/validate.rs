//! Annotations → a checked [`Request`]. Every error names the annotation and the fix.

use super::Denial;
use super::annotations as a;
use super::port::MIN_ADMIN_PORT;
use crate::format::Format;
use crate::spec::file::RawMode;
use crate::spec::names::{check_path, is_under, parse_param_ref};
pub use crate::spec::region::is_region;
use std::collections::BTreeMap;
use std::time::Duration;

/// How the values reach the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Init,
    Sidecar,
    InitAndSidecar,
}

impl Mode {
    pub fn has_init(self) -> bool {
        matches!(self, Mode::Init | Mode::InitAndSidecar)
    }

    pub fn has_sidecar(self) -> bool {
        matches!(self, Mode::Sidecar | Mode::InitAndSidecar)
    }
}

/// One `param-<KEY>` annotation, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub annotation: String,
    pub key: String,
    /// As written (checked with `parse_param_ref`).
    pub raw: String,
    /// The parameter name (no selector, ARN or field), for the policy.
    pub name: String,
}

/// The injection the pod asks for, every annotation checked, defaults not yet applied
/// where they depend on the webhook's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub paths: Vec<String>,
    pub params: Vec<Param>,
    pub format: Format,
    pub file: String,
    pub mount_path: String,
    pub mode: Mode,
    pub interval: Option<Duration>,
    /// `None`: every container and init container.
    pub containers: Option<Vec<String>>,
    pub file_mode: Option<u32>,
    pub reload_signal: Option<String>,
    pub reload_process: Option<String>,
    pub template: Option<String>,
    pub native_sidecar: Option<bool>,
    pub cpu_request: Option<String>,
    pub memory_request: Option<String>,
    pub cpu_limit: Option<String>,
    pub memory_limit: Option<String>,
    /// The sidecar's admin port, when the pod names one (in range; collisions are
    /// checked against the pod's containers in `patch`).
    pub admin_port: Option<u16>,
    /// `--region` of the injected containers, when the pod names one.
    pub region: Option<String>,
    /// [`a::ENV`]: `format` is `k8s-env` and the selected containers get `env` entries
    /// (`fileKeyRef`) instead of a mount.
    pub env: bool,
    /// [`a::EXEC`]: the selected containers run their command under `exec --watch`; no
    /// file, no sidecar (`mode` and the file's settings are unused).
    pub exec: bool,
    /// [`a::SERVE`]: the sidecar serves the Lambda extension's API.
    pub serve: bool,
    /// [`a::SERVE_ALLOW`]: prefixes the endpoint also reads on demand.
    pub serve_allow: Vec<String>,
}

pub const DEFAULT_MOUNT_PATH: &str = "/ssm";

/// Mount paths the injector's volume may not take: an emptyDir there would hide what the
/// container needs (its programs, libraries, configuration, runtime sockets, every secret
/// Kubernetes mounts). `/tmp` is allowed: an emptyDir over it is common and hides nothing
/// the image ships.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/run/secrets",
    "/sbin",
    "/sys",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local",
    "/usr/local/bin",
    "/usr/sbin",
    "/var",
    "/var/lib",
    "/var/run",
    "/var/run/secrets",
];
/// Nor anything under these: kernel interfaces, devices, and the tokens Kubernetes, EKS
/// (IRSA) and the injector itself (the hub token) mount. (`/var/run` is `/run` in most
/// images.) A directory of its own under /var/run/secrets, such as
/// `/var/run/secrets/app`, is fine.
const SYSTEM_TREES: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/var/run/secrets/kubernetes.io",
    "/var/run/secrets/eks.amazonaws.com",
    "/var/run/secrets/ssm-injector",
    "/run/secrets/kubernetes.io",
    "/run/secrets/eks.amazonaws.com",
    "/run/secrets/ssm-injector",
];

/// CPU of the injected containers (cores): from 1m to 4.
pub const CPU_RANGE: (f64, f64) = (0.001, 4.0);
/// Memory of the injected containers (bytes): from 8Mi (the agent uses about 10 MiB) to 4Gi.
pub const MEMORY_RANGE: (f64, f64) = (8.0 * 1024.0 * 1024.0, 4.0 * 1024.0 * 1024.0 * 1024.0);

fn deny(annotation: &str, message: String) -> Denial {
    Denial {
        annotation: Some(annotation.to_owned()),
        message,
    }
}

/// Checks every annotation under the prefix and builds the request. `default_paths` (the
/// webhook config's, namespace already filled in) are used when the pod names no path and
/// no parameter.
pub fn validate(
    annotations: &BTreeMap<String, String>,
    default_paths: &[String],
) -> Result<Request, Denial> {
    for key in annotations.keys() {
        if key.starts_with(a::PREFIX) && !a::is_known(key) {
            return Err(deny(
                key,
                format!(
                    "unknown annotation {key}; remove it or use one of: {}",
                    a::known_list()
                ),
            ));
        }
    }
    let get = |k: &str| annotations.get(k).map(|v| v.trim());
    let exec = parse_bool(annotations, a::EXEC)?.unwrap_or(false);
    if exec {
        let no_file = [
            a::ENV,
            a::FORMAT,
            a::FILE,
            a::TEMPLATE,
            a::FILE_MODE,
            a::MODE,
            a::RELOAD_SIGNAL,
            a::RELOAD_PROCESS,
            a::NATIVE_SIDECAR,
            a::SERVE,
        ];
        if let Some(k) = no_file.into_iter().find(|k| annotations.contains_key(*k)) {
            return Err(deny(
                k,
                format!(
                    "{k} does not apply with {}: the values go into the environment of each selected container's own command, which is restarted when one changes; no file is written and no sidecar runs; remove {k} (or {})",
                    a::EXEC,
                    a::EXEC
                ),
            ));
        }
    }

    let env = parse_bool(annotations, a::ENV)?.unwrap_or(false);
    if env && annotations.contains_key(a::PATH) {
        return Err(deny(
            a::ENV,
            format!(
                "{} cannot be combined with {}: the env entries are added when the pod is admitted, before the parameters under a path (and so their keys) are known; list each parameter as {}<KEY>, or remove {} and read the file",
                a::ENV,
                a::PATH,
                a::PARAM_PREFIX,
                a::ENV
            ),
        ));
    }

    let mut paths = match get(a::PATH) {
        Some(v) => absolute_paths(a::PATH, "path", v, "/app/prod/")?,
        None => Vec::new(),
    };

    let mut params = Vec::new();
    for (k, v) in annotations.range(a::PARAM_PREFIX.to_owned()..) {
        let Some(key) = k.strip_prefix(a::PARAM_PREFIX) else {
            break;
        };
        if !is_env_key(key) {
            return Err(deny(
                k,
                format!(
                    "{k}: key {key:?} is not a valid output key; use letters, digits and _ \
                     not starting with a digit, e.g. {}DB_PASSWORD",
                    a::PARAM_PREFIX
                ),
            ));
        }
        let v = v.trim();
        no_variables(k, v)?;
        if v.contains(',') {
            return Err(deny(
                k,
                format!("{k}: {v:?} contains a comma; give exactly one parameter name"),
            ));
        }
        let r = parse_param_ref(v).map_err(|e| {
            deny(
                k,
                format!("{k}: parameter {v:?} {e}; give a name like /app/prod/db_password"),
            )
        })?;
        params.push(Param {
            annotation: k.clone(),
            key: key.to_owned(),
            raw: v.to_owned(),
            name: r.name,
        });
    }
    if paths.is_empty() && params.is_empty() && env {
        return Err(deny(
            a::ENV,
            format!(
                "{} needs at least one {}<KEY>: each becomes one environment variable (the injector's default paths cannot, their keys are unknown at admission)",
                a::ENV,
                a::PARAM_PREFIX
            ),
        ));
    }
    if paths.is_empty() && params.is_empty() {
        for p in default_paths {
            check_path(p).map_err(|e| Denial {
                annotation: None,
                message: format!(
                    "the injector's default path {p:?} {e}; name a path with {} or ask the cluster admins to fix default-paths",
                    a::PATH
                ),
            })?;
            paths.push(p.clone());
        }
    }
    if paths.is_empty() && params.is_empty() {
        return Err(deny(
            a::PATH,
            format!(
                "nothing to fetch; add {} (comma-separated paths) or {}<KEY> (one parameter)",
                a::PATH,
                a::PARAM_PREFIX
            ),
        ));
    }

    let template = match get(a::TEMPLATE) {
        None => None,
        Some(t) => Some(check_abs_path(a::TEMPLATE, t, "/config/app.tmpl")?),
    };
    let mut format = match get(a::FORMAT) {
        Some(f) => f
            .to_ascii_lowercase()
            .parse::<Format>()
            .map_err(|e| deny(a::FORMAT, format!("{}: {e}", a::FORMAT)))?,
        None if template.is_some() => Format::Template,
        None => Format::Shell,
    };
    if env {
        if let Some(f) = get(a::FORMAT).filter(|_| format != Format::K8sEnv) {
            return Err(deny(
                a::FORMAT,
                format!(
                    "{} writes the kubelet's {k8s} file, but {} is {f}; remove {} (or set it to {k8s})",
                    a::ENV,
                    a::FORMAT,
                    a::FORMAT,
                    k8s = Format::K8sEnv
                ),
            ));
        }
        if template.is_some() {
            return Err(deny(
                a::TEMPLATE,
                format!(
                    "{} writes the kubelet's {} file, not a template; remove {} or {}",
                    a::ENV,
                    Format::K8sEnv,
                    a::TEMPLATE,
                    a::ENV
                ),
            ));
        }
        format = Format::K8sEnv;
    }
    match (format, &template) {
        (Format::Template, None) => {
            return Err(deny(
                a::TEMPLATE,
                format!(
                    "format template needs {}: the absolute path of the template file in the pod",
                    a::TEMPLATE
                ),
            ));
        }
        (f, Some(_)) if f != Format::Template => {
            return Err(deny(
                a::TEMPLATE,
                format!(
                    "{} is only used with format template, but {} is {f}; remove one of them",
                    a::TEMPLATE,
                    a::FORMAT
                ),
            ));
        }
        _ => {}
    }

    let file = match get(a::FILE) {
        Some(f) => check_file_name(f)?,
        None => default_file(format).to_owned(),
    };
    let mount_path = match get(a::MOUNT_PATH) {
        Some(m) => check_mount_path(check_abs_path(a::MOUNT_PATH, m, DEFAULT_MOUNT_PATH)?)?,
        None => DEFAULT_MOUNT_PATH.to_owned(),
    };
    if let Some(t) = &template
        && is_under(t, &mount_path)
    {
        return Err(deny(
            a::TEMPLATE,
            format!(
                "{}: {t} is inside the injector's own volume at {mount_path}; put the template in a ConfigMap mounted elsewhere",
                a::TEMPLATE
            ),
        ));
    }

    let mode = match get(a::MODE).map(str::to_ascii_lowercase).as_deref() {
        None | Some("init") => Mode::Init,
        Some("sidecar") => Mode::Sidecar,
        Some("init+sidecar") => Mode::InitAndSidecar,
        Some(other) => {
            return Err(deny(
                a::MODE,
                format!(
                    "{}: unknown mode {other:?}; use init, sidecar or init+sidecar",
                    a::MODE
                ),
            ));
        }
    };

    let interval = match get(a::INTERVAL) {
        None => None,
        Some(i) => {
            let d = humantime::parse_duration(i).map_err(|e| {
                deny(
                    a::INTERVAL,
                    format!(
                        "{}: {i:?} is not a duration ({e}); write e.g. 60s or 5m",
                        a::INTERVAL
                    ),
                )
            })?;
            if d < Duration::from_secs(1) {
                return Err(deny(
                    a::INTERVAL,
                    format!("{}: {i:?} is shorter than 1s; use at least 1s", a::INTERVAL),
                ));
            }
            Some(d)
        }
    };

    let containers = match get(a::CONTAINERS) {
        None => None,
        Some(c) => {
            let names: Vec<String> = c.split(',').map(|s| s.trim().to_owned()).collect();
            if names.iter().any(String::is_empty) {
                return Err(deny(
                    a::CONTAINERS,
                    format!(
                        "{}: {c:?} has an empty name; give comma-separated container names",
                        a::CONTAINERS
                    ),
                ));
            }
            Some(names)
        }
    };

    let file_mode = match get(a::FILE_MODE) {
        None => None,
        Some(m) => Some(
            crate::spec::parse_mode(&RawMode(Ok(m.to_owned())))
                .map_err(|e| deny(a::FILE_MODE, format!("{}: {e}", a::FILE_MODE)))?,
        ),
    };

    let reload_signal = match get(a::RELOAD_SIGNAL) {
        None => None,
        Some(s) => {
            crate::reload_action::parse_signal(s)
                .map_err(|e| deny(a::RELOAD_SIGNAL, format!("{}: {e}", a::RELOAD_SIGNAL)))?;
            Some(s.to_owned())
        }
    };
    let reload_process = match get(a::RELOAD_PROCESS) {
        None => None,
        Some(p) => {
            if p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                return Err(deny(
                    a::RELOAD_PROCESS,
                    format!(
                        "{}: {p:?} is not a process name; give the executable's name, e.g. nginx",
                        a::RELOAD_PROCESS
                    ),
                ));
            }
            Some(p.to_owned())
        }
    };
    if reload_signal.is_some() && reload_process.is_none() {
        return Err(deny(
            a::RELOAD_SIGNAL,
            format!(
                "{} needs {}: the name of the process to signal",
                a::RELOAD_SIGNAL,
                a::RELOAD_PROCESS
            ),
        ));
    }
    let admin_port = match get(a::ADMIN_PORT) {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port >= MIN_ADMIN_PORT => Some(port),
            _ => {
                return Err(deny(
                    a::ADMIN_PORT,
                    format!(
                        "{}: {p:?} is not a port from {MIN_ADMIN_PORT} to 65535 (the injected containers run without privileges); write e.g. 9099",
                        a::ADMIN_PORT
                    ),
                ));
            }
        },
    };
    let region = match get(a::REGION) {
        None => None,
        Some(r) if is_region(r) => Some(r.to_owned()),
        Some(r) => {
            return Err(deny(
                a::REGION,
                format!(
                    "{}: {r:?} is not an AWS region; write e.g. eu-west-1 or us-gov-west-1",
                    a::REGION
                ),
            ));
        }
    };

    if env && !mode.has_init() {
        return Err(deny(
            a::MODE,
            format!(
                "{} needs the init container: the kubelet reads the env file once, when a container starts, so it must be written before the app starts; set {} to init or init+sidecar",
                a::ENV,
                a::MODE
            ),
        ));
    }
    if env {
        for k in [a::RELOAD_SIGNAL, a::RELOAD_PROCESS] {
            if annotations.contains_key(k) {
                return Err(deny(
                    k,
                    format!(
                        "{k} cannot reload environment variables: a running process keeps the environment it started with; remove {k} (values from {} change only when a container restarts)",
                        a::ENV
                    ),
                ));
            }
        }
    }
    let serve = parse_bool(annotations, a::SERVE)?.unwrap_or(false);
    if serve && env {
        return Err(deny(
            a::SERVE,
            format!(
                "{} needs the containers to mount the injector's volume (the token file is there), which {} leaves out; remove one of them",
                a::SERVE,
                a::ENV
            ),
        ));
    }
    let mut serve_allow = Vec::new();
    if let Some(v) = get(a::SERVE_ALLOW) {
        if !serve {
            return Err(deny(
                a::SERVE_ALLOW,
                format!(
                    "{} applies to the endpoint of {}; set {}: \"true\", or remove {}",
                    a::SERVE_ALLOW,
                    a::SERVE,
                    a::SERVE,
                    a::SERVE_ALLOW
                ),
            ));
        }
        serve_allow = absolute_paths(
            a::SERVE_ALLOW,
            "prefix",
            v,
            "/app/shared/ or /aws/reference/secretsmanager/app/",
        )?;
    }
    if serve && !mode.has_sidecar() {
        return Err(deny(
            a::SERVE,
            format!(
                "{} needs the sidecar, which holds the values it serves; set {} to sidecar or init+sidecar",
                a::SERVE,
                a::MODE
            ),
        ));
    }
    if !mode.has_sidecar() {
        // With exec, each selected container's supervisor serves the admin port.
        let sidecar_only: &[&str] = if exec {
            &[a::RELOAD_SIGNAL, a::RELOAD_PROCESS]
        } else {
            &[a::RELOAD_SIGNAL, a::RELOAD_PROCESS, a::ADMIN_PORT]
        };
        for &k in sidecar_only {
            if annotations.contains_key(k) {
                return Err(deny(
                    k,
                    format!(
                        "{k} only applies when a sidecar keeps the files current; set {} to sidecar or init+sidecar, or remove {k}",
                        a::MODE
                    ),
                ));
            }
        }
    }

    let native_sidecar = parse_bool(annotations, a::NATIVE_SIDECAR)?;

    let quantity = |k: &str, (min, max): (f64, f64), shown: (&str, &str)| match get(k) {
        None => Ok(None),
        Some(q) => match parse_quantity(q) {
            Some(v) if (min..=max).contains(&v) => Ok(Some(q.to_owned())),
            Some(_) => Err(deny(
                k,
                format!(
                    "{k}: {q} is outside {} to {}; the agent needs about 10 MiB and a little CPU, give a value in that range",
                    shown.0, shown.1
                ),
            )),
            None => Err(deny(
                k,
                format!(
                    "{k}: {q:?} is not a Kubernetes quantity; write e.g. 10m or 0.1 for CPU, 32Mi for memory"
                ),
            )),
        },
    };
    let cpu = ("1m", "4");
    let memory = ("8Mi", "4Gi");
    let cpu_request = quantity(a::CPU_REQUEST, CPU_RANGE, cpu)?;
    let memory_request = quantity(a::MEMORY_REQUEST, MEMORY_RANGE, memory)?;
    let cpu_limit = quantity(a::CPU_LIMIT, CPU_RANGE, cpu)?;
    let memory_limit = quantity(a::MEMORY_LIMIT, MEMORY_RANGE, memory)?;
    for (req, lim, rk, lk) in [
        (&cpu_request, &cpu_limit, a::CPU_REQUEST, a::CPU_LIMIT),
        (
            &memory_request,
            &memory_limit,
            a::MEMORY_REQUEST,
            a::MEMORY_LIMIT,
        ),
    ] {
        if let (Some(r), Some(l)) = (req, lim)
            && parse_quantity(r) > parse_quantity(l)
        {
            return Err(deny(
                rk,
                format!(
                    "{rk} ({r}) is larger than {lk} ({l}); lower the request or raise the limit"
                ),
            ));
        }
    }

    Ok(Request {
        paths,
        params,
        format,
        file,
        mount_path,
        mode,
        interval,
        containers,
        file_mode,
        reload_signal,
        reload_process,
        template,
        native_sidecar,
        cpu_request,
        memory_request,
        cpu_limit,
        memory_limit,
        admin_port,
        region,
        env,
        exec,
        serve,
        serve_allow,
    })
}

/// A `"true"` / `"false"` annotation (any case, trimmed); `None` when absent.
fn parse_bool(annotations: &BTreeMap<String, String>, key: &str) -> Result<Option<bool>, Denial> {
    match annotations
        .get(key)
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(deny(
            key,
            format!("{key}: {other:?} is not \"true\" or \"false\""),
        )),
    }
}

/// The file (or directory, for `files`) written when the pod names none.
pub fn default_file(format: Format) -> &'static str {
    match format {
        Format::Shell | Format::Dotenv | Format::Docker | Format::K8sEnv => "app.env",
        Format::Json => "app.json",
        Format::Yaml => "app.yaml",
        Format::Properties => "app.properties",
        Format::Files => "files",
        Format::Template => "config",
    }
}

/// The comma-separated absolute paths of `annotation` (each a `what`), trimmed; a bad one
/// is denied with `example`.
fn absolute_paths(
    annotation: &str,
    what: &str,
    v: &str,
    example: &str,
) -> Result<Vec<String>, Denial> {
    let mut out = Vec::new();
    for p in v.split(',').map(str::trim) {
        no_variables(annotation, p)?;
        check_path(p).map_err(|e| {
            deny(
                annotation,
                format!(
                    "{annotation}: {what} {p:?} {e}; give comma-separated absolute paths like {example}"
                ),
            )
        })?;
        out.push(p.to_owned());
    }
    Ok(out)
}

fn no_variables(annotation: &str, v: &str) -> Result<(), Denial> {
    if v.contains("${") {
        return Err(deny(
            annotation,
            format!(
                "{annotation}: {v:?} contains ${{...}}; the webhook cannot see the pod's environment, so write the name out in full"
            ),
        ));
    }
    Ok(())
}

fn is_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_file_name(f: &str) -> Result<String, Denial> {
    let ok = !f.is_empty()
        && !f.starts_with('.')
        && f.len() <= 255
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(f.to_owned())
    } else {
        Err(deny(
            a::FILE,
            format!(
                "{}: {f:?} is not a plain file name; use letters, digits, . _ - (no /, not starting with .), e.g. app.env",
                a::FILE
            ),
        ))
    }
}

/// Absolute, no empty, `.` or `..` segments, not `/`, a conservative character set.
/// Returns the path without a trailing `/`.
fn check_abs_path(annotation: &str, p: &str, example: &str) -> Result<String, Denial> {
    let trimmed = p.strip_suffix('/').unwrap_or(p);
    let ok = trimmed.starts_with('/')
        && trimmed.len() <= 1024
        && trimmed[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(deny(
            annotation,
            format!(
                "{annotation}: {p:?} is not an absolute path without . or .. segments (letters, digits, / . _ -, not /); write e.g. {example}"
            ),
        ))
    }
}

/// Refuses a mount path that would shadow a system directory ([`SYSTEM_DIRS`], or
/// anything under [`SYSTEM_TREES`]).
fn check_mount_path(path: String) -> Result<String, Denial> {
    let shadows =
        SYSTEM_DIRS.contains(&path.as_str()) || SYSTEM_TREES.iter().any(|dir| is_under(&path, dir));
    if shadows {
        return Err(deny(
            a::MOUNT_PATH,
            format!(
                "{}: {path} would hide a system directory of the container (/etc, /usr, /proc, /sys, /dev, /var/run/secrets, the service account tokens, ...); use a directory of its own, e.g. {DEFAULT_MOUNT_PATH} or /etc/myapp",
                a::MOUNT_PATH
            ),
        ));
    }
    Ok(path)
}

/// Parses a Kubernetes quantity (`5m`, `0.5`, `16Mi`, `1e3`) into its value; `None` when
/// malformed or negative.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let num = num.strip_prefix('+').unwrap_or(num);
    if num.is_empty()
        || num == "."
        || num.matches('.').count() > 1
        || !num.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s => {
            let exp = s.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || digits.len() > 3 || !digits.chars().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            10f64.powi(exp.parse().ok()?)
        }
    };
    Some(n * mult)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn quantities_parse_like_kubernetes() {
        for (q, v) in [
            ("5m", Some(0.005)),
            ("16Mi", Some(16.0 * 1024.0 * 1024.0)),
            ("1", Some(1.0)),
            ("0.5", Some(0.5)),
            ("1e3", Some(1000.0)),
            ("", None),
            ("-1", None),
            ("abc", None),
            ("1Xi", None),
            ("1..2", None),
            ("Mi", None),
        ] {
            assert_eq!(parse_quantity(q), v, "{q}");
        }
    }

    #[test]
    fn mount_paths_over_system_directories_are_refused() {
        for (p, ok) in [
            ("/etc", false),
            ("/etc/", false),
            ("/usr", false),
            ("/bin", false),
            ("/proc/self", false),
            ("/sys/fs", false),
            ("/dev/shm", false),
            ("/var/run/secrets", false),
            ("/var/run/secrets/kubernetes.io/serviceaccount", false),
            ("/run/secrets", false),
            ("/run/secrets/eks.amazonaws.com/serviceaccount", false),
            ("/var/run/secrets/ssm-injector", false),
            ("/run/secrets/app", true),
            ("/var/run", false),
            ("/ssm", true),
            ("/etc/myapp", true),
            ("/tmp", true),
            ("/var/lib/app", true),
            ("/devices", true),
        ] {
            let r = check_abs_path(a::MOUNT_PATH, p, "/ssm").and_then(check_mount_path);
            assert_eq!(r.is_ok(), ok, "{p}: {r:?}");
            if let Err(d) = r {
                assert_eq!(d.annotation.as_deref(), Some(a::MOUNT_PATH));
                assert!(d.message.contains("system directory"), "{}", d.message);
            }
        }
    }

    #[test]
    fn is_under_compares_whole_components() {
        assert!(is_under("/a/b", "/a"));
        assert!(is_under("/a", "/a/"));
        assert!(!is_under("/ab", "/a"));
    }
}
