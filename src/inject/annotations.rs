//! Pod annotations read by the injector. Every key lives under [`PREFIX`]; a key under the
//! prefix that is not listed in [`ALL`] (and does not start with [`PARAM_PREFIX`]) denies
//! the pod, so a typo never silently does nothing.

/// The prefix of every annotation the injector reads or writes.
pub const PREFIX: &str = "ssm-injector.io/";

/// Opt in: exactly `"true"` injects; anything else (`"TRUE"`, `" true"`), or no annotation,
/// leaves the pod alone. The webhook configuration's matchCondition compares the same way.
pub const INJECT: &str = "ssm-injector.io/inject";

/// Comma-separated parameter paths; every parameter under each is fetched
/// (`--path`), keys are the names relative to the path.
pub const PATH: &str = "ssm-injector.io/path";

/// `param-<KEY>: NAME`: one parameter under the output key KEY (`--param KEY=NAME`).
/// KEY is `[A-Za-z_][A-Za-z0-9_]*`; NAME is a parameter name, `NAME:VERSION`, `NAME:LABEL`,
/// an ARN or `/aws/reference/secretsmanager/SECRET`, with an optional `#field`.
pub const PARAM_PREFIX: &str = "ssm-injector.io/param-";

/// `"true"`: the values reach the selected containers as environment variables, through
/// the kubelet's env files (`env[].valueFrom.fileKeyRef`, Kubernetes 1.35+): the init
/// container writes a `k8s-env` file into the injector's volume and every selected
/// container gets one `env` entry per `param-<KEY>`, without a mount. Needs `param-<KEY>`
/// (not [`PATH`]: the keys under a path are unknown at admission) and the init container
/// (`init` or `init+sidecar`); the kubelet reads the file once, when a container starts.
pub const ENV: &str = "ssm-injector.io/env";

/// `"true"`: the selected containers (default: every app container, not the init
/// containers) run their own command under `ssm-injector exec --watch --`, with the values
/// in its environment, restarted when one changes. The init container copies the binary
/// into the injector's volume (`install`), mounted read-only in those containers; each
/// needs an explicit `command` (the injector cannot see an image's entrypoint). Not with
/// [`ENV`], [`FORMAT`], [`FILE`], [`TEMPLATE`], [`FILE_MODE`], [`MODE`], reload-* or
/// [`NATIVE_SIDECAR`]: no file is written and no sidecar runs.
pub const EXEC: &str = "ssm-injector.io/exec";

/// `"true"`: the sidecar also serves the AWS Parameters and Secrets Lambda Extension's API
/// on `127.0.0.1` (`--serve`): port 2773, or the `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` a
/// selected container sets, or the next port up no container uses. The sidecar makes the
/// token file `MOUNT/serve-token` (owner and mode of the output files); each selected
/// container gets `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` and
/// `SSM_INJECTOR_SERVE_TOKEN_FILE`. Needs the sidecar (`sidecar` or `init+sidecar`); not
/// with [`ENV`] or [`EXEC`].
pub const SERVE: &str = "ssm-injector.io/serve";

/// With [`SERVE`]: comma-separated parameter paths (or `/aws/reference/secretsmanager/…`
/// prefixes) whose names the endpoint also reads on demand, kept for the extension's TTL
/// (`--serve-allow`). Each must pass the namespace policy, as [`PATH`] does.
pub const SERVE_ALLOW: &str = "ssm-injector.io/serve-allow";

/// Output format: shell (default), dotenv, docker, k8s-env, json, yaml, properties, files or
/// template.
pub const FORMAT: &str = "ssm-injector.io/format";

/// Output file name inside the mount path (a plain name, no `/`); default `app.env`,
/// `app.json`, `app.yaml`, `app.properties`, `files` (a directory) or `config` (template).
pub const FILE: &str = "ssm-injector.io/file";

/// Where the shared memory volume is mounted in every container (absolute; default `/ssm`).
pub const MOUNT_PATH: &str = "ssm-injector.io/mount-path";

/// `init` (default): render once before the app starts; `sidecar`: keep the files current;
/// `init+sidecar`: both.
pub const MODE: &str = "ssm-injector.io/mode";

/// Sidecar poll interval (`60s`, `5m`; at least 1s); default from the webhook's config.
pub const INTERVAL: &str = "ssm-injector.io/interval";

/// Comma-separated names of the containers (or init containers) that get the read-only
/// mount (with [`ENV`]: the `env` entries); default all of them.
pub const CONTAINERS: &str = "ssm-injector.io/containers";

/// Octal mode of the written files (`0400`, `0440`). Default: derived from the
/// securityContexts of the containers that get the mount (`super::access`): 0400 owned by
/// their uid when they all run as the same uid, else 0440 with a group they all have
/// (fsGroup first), else 0444 with an admission warning. A mode that may keep one of them
/// out is kept, with a warning.
pub const FILE_MODE: &str = "ssm-injector.io/file-mode";

/// Port of the sidecar's /healthz, /readyz and /metrics (1024-65535; sidecar modes only).
/// Default 8099, or the next port up that no container of the pod declares or probes.
pub const ADMIN_PORT: &str = "ssm-injector.io/admin-port";

/// AWS region of the injected containers (`--region`), e.g. `eu-west-1`; default the
/// webhook config's `region`, else the AWS SDK's chain in the containers (AWS_REGION,
/// AWS_DEFAULT_REGION, profile, IMDS).
pub const REGION: &str = "ssm-injector.io/region";

/// Signal sent to the reload process after a change (`HUP`, `USR1`, ...); sidecar modes
/// only, needs [`RELOAD_PROCESS`]. The pod gets `shareProcessNamespace: true`.
pub const RELOAD_SIGNAL: &str = "ssm-injector.io/reload-signal";

/// Name of the process to signal after a change (default signal HUP); sidecar modes only.
/// The pod gets `shareProcessNamespace: true`.
pub const RELOAD_PROCESS: &str = "ssm-injector.io/reload-process";

/// Absolute path of a minijinja template inside the pod (for example from a ConfigMap
/// mounted in an app container); implies format `template`. The volume holding it is
/// mounted read-only in the injected containers too.
pub const TEMPLATE: &str = "ssm-injector.io/template";

/// `"true"` / `"false"`: run the sidecar as a native sidecar (an init container with
/// `restartPolicy: Always`, Kubernetes 1.29+) or as a regular container; default from the
/// webhook's config.
pub const NATIVE_SIDECAR: &str = "ssm-injector.io/native-sidecar";

/// CPU request of each injected container (a Kubernetes quantity; default `5m`).
pub const CPU_REQUEST: &str = "ssm-injector.io/cpu-request";

/// Memory request of each injected container (default `16Mi`).
pub const MEMORY_REQUEST: &str = "ssm-injector.io/memory-request";

/// CPU limit of each injected container (default none).
pub const CPU_LIMIT: &str = "ssm-injector.io/cpu-limit";

/// Memory limit of each injected container (default `32Mi`, raised to the request when
/// the request is larger).
pub const MEMORY_LIMIT: &str = "ssm-injector.io/memory-limit";

/// Written by the injector: [`STATUS_INJECTED`] once the pod is mutated; a pod carrying it
/// is never injected again.
pub const STATUS: &str = "ssm-injector.io/status";

/// The value of [`STATUS`] on an injected pod.
pub const STATUS_INJECTED: &str = "injected";

/// Written by the injector: who can read the files and why, e.g. `uid 2000 mode 0400`,
/// `gid 3000 mode 0440` or `mode 0444: containers app (uid 1000), worker (uid 2000): no
/// common uid or group`. Accepted on input (a copied pod carries it) and overwritten.
pub const FILE_ACCESS: &str = "ssm-injector.io/file-access";

/// Every annotation with its documentation, in README order. `param-<KEY>` stands for
/// every key starting with [`PARAM_PREFIX`].
pub const ALL: &[(&str, &str)] = &[
    (
        INJECT,
        "\"true\" to inject; anything else or absent leaves the pod alone",
    ),
    (
        PATH,
        "comma-separated parameter paths; every parameter under each is fetched",
    ),
    (
        "ssm-injector.io/param-<KEY>",
        "one parameter (NAME, NAME:VERSION, NAME:LABEL, ARN, /aws/reference/secretsmanager/SECRET, optional #field) under output key KEY",
    ),
    (
        ENV,
        "\"true\": the selected containers get each param-<KEY> as an environment variable (env[].valueFrom.fileKeyRef to a k8s-env file the init container writes; Kubernetes 1.35+), without a mount; not with path, format (other than k8s-env), template, reload-* or mode sidecar; read once when a container starts",
    ),
    (
        EXEC,
        "\"true\": the selected containers (default: the app containers) run their command under ssm-injector exec --watch, values in its environment, restarted on a change; the init container installs the binary; each needs an explicit command; not with env, format, file, template, file-mode, mode, reload-* or native-sidecar",
    ),
    (
        SERVE,
        "\"true\": the sidecar also serves the Lambda extension's API on 127.0.0.1 (port 2773, or the selected containers' PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, or the next free one) with a token file it makes in the mount; the selected containers get PARAMETERS_SECRETS_EXTENSION_HTTP_PORT and SSM_INJECTOR_SERVE_TOKEN_FILE; needs mode sidecar or init+sidecar; not with env or exec",
    ),
    (
        SERVE_ALLOW,
        "with serve: comma-separated paths (or /aws/reference/secretsmanager/ prefixes) also read on demand and kept for the extension's TTL; each must pass the namespace policy",
    ),
    (
        FORMAT,
        "shell (default), dotenv, docker, k8s-env, json, yaml, properties, files or template",
    ),
    (
        FILE,
        "output file name inside the mount path; default app.env / app.json / app.yaml / app.properties / files / config",
    ),
    (MOUNT_PATH, "mount path of the shared volume; default /ssm"),
    (MODE, "init (default), sidecar or init+sidecar"),
    (
        INTERVAL,
        "sidecar poll interval (e.g. 60s, 5m; at least 1s)",
    ),
    (
        CONTAINERS,
        "comma-separated containers that get the read-only mount (with env: the env entries); default all",
    ),
    (
        FILE_MODE,
        "octal mode of the written files, e.g. 0400 or 0440; default derived from the securityContexts of the containers that get the mount (see below); a mode that may keep one of them out is kept, with a warning",
    ),
    (
        ADMIN_PORT,
        "port of the sidecar's /healthz, /readyz and /metrics (1024-65535); default 8099, or the next port up that no container declares or probes",
    ),
    (
        REGION,
        "AWS region of the injected containers (--region), e.g. eu-west-1; default the webhook config's region, else the AWS SDK's chain in the containers (see below)",
    ),
    (
        RELOAD_SIGNAL,
        "signal sent after a change (HUP, USR1, ...); sidecar modes, needs reload-process",
    ),
    (
        RELOAD_PROCESS,
        "process name to signal after a change; sidecar modes; shares the pod's process namespace",
    ),
    (
        TEMPLATE,
        "absolute path of a minijinja template mounted in the pod; implies format template",
    ),
    (
        NATIVE_SIDECAR,
        "\"true\"/\"false\": native sidecar (Kubernetes 1.29+) or regular container",
    ),
    (
        CPU_REQUEST,
        "CPU request of injected containers; default 5m",
    ),
    (
        MEMORY_REQUEST,
        "memory request of injected containers; default 16Mi",
    ),
    (CPU_LIMIT, "CPU limit of injected containers; default none"),
    (
        MEMORY_LIMIT,
        "memory limit of injected containers; default 32Mi",
    ),
    (
        STATUS,
        "set by the injector to \"injected\"; a pod carrying it is not injected again",
    ),
    (
        FILE_ACCESS,
        "set by the injector: owner, group and mode of the files and why, e.g. \"uid 2000 mode 0400\"; accepted on input and overwritten",
    ),
];

/// True when `key` is one the injector knows (a listed key or `param-…`).
pub fn is_known(key: &str) -> bool {
    key.starts_with(PARAM_PREFIX) || ALL.iter().any(|(k, _)| *k == key)
}

/// The known keys without the prefix, for messages.
pub fn known_list() -> String {
    ALL.iter()
        .map(|(k, _)| k.strip_prefix(PREFIX).unwrap_or(k))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod doc_tests {
    use super::ALL;

    #[test]
    fn the_annotation_reference_in_docs_lists_every_annotation() {
        let doc = include_str!("../../docs/annotations.md");
        for (key, _) in ALL {
            assert!(
                doc.contains(&format!("`{key}`")),
                "docs/annotations.md lacks {key}"
            );
        }
    }
}
