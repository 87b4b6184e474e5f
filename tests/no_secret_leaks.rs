//! No secret value reaches a log line or an error message, at any log level, in any
//! format, on success or failure. Every value is a distinctive canary; every run is
//! searched (stdout and stderr) for any canary and for any 12 characters of one.

use crate::support::run::Output;
use crate::support::{Emulator, Run, shared, unique_prefix};
use serde_json::json;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// How many characters of a canary count as a leak.
const LEAK_LEN: usize = 12;
/// How much text before a leak the report shows.
const CONTEXT: usize = 40;

/// Distinctive values: `CANARY-<16 random hex>-<n>`, one per value.
struct Canaries {
    tag: String,
    all: Vec<String>,
}

impl Canaries {
    fn new() -> Canaries {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos(),
        );
        h.write_u32(std::process::id());
        Canaries {
            tag: format!("{:016x}", h.finish()),
            all: Vec::new(),
        }
    }

    /// A new canary.
    fn make(&mut self) -> String {
        let c = format!("CANARY-{}-{}", self.tag, self.all.len() + 1);
        self.all.push(c.clone());
        c
    }

    /// Every `LEAK_LEN`-character piece of every canary.
    fn pieces(&self) -> impl Iterator<Item = &str> {
        self.all
            .iter()
            .flat_map(|c| (0..=c.len() - LEAK_LEN).map(move |i| &c[i..i + LEAK_LEN]))
    }

    /// Byte offsets in `text` where a piece of a canary starts, in order.
    fn find_all(&self, text: &str) -> Vec<usize> {
        let mut at: Vec<usize> = self
            .pieces()
            .flat_map(|p| text.match_indices(p).map(|(i, _)| i))
            .collect();
        at.sort_unstable();
        at.dedup();
        at
    }

    /// `text` with every piece of a canary blanked out, safe to print.
    fn redact(&self, text: &str) -> String {
        let mut covered = vec![false; text.len()];
        for i in self.find_all(text) {
            covered[i..i + LEAK_LEN].iter_mut().for_each(|c| *c = true);
        }
        let mut out = String::with_capacity(text.len());
        let mut hidden = false;
        for (i, ch) in text.char_indices() {
            if covered[i] {
                if !hidden {
                    out.push_str("<REDACTED>");
                }
                hidden = true;
            } else {
                hidden = false;
                out.push(ch);
            }
        }
        out
    }
}

/// The runs of one test and the leaks found in them.
struct Audit<'a> {
    canaries: &'a Canaries,
    runs: usize,
    problems: Vec<String>,
}

impl<'a> Audit<'a> {
    fn new(canaries: &'a Canaries) -> Audit<'a> {
        Audit {
            canaries,
            runs: 0,
            problems: Vec::new(),
        }
    }

    /// Runs `run`, expects exit code `code`, and records every place a canary shows up.
    fn check(&mut self, what: &str, code: i32, run: Run) -> Output {
        let out = run.run();
        self.runs += 1;
        for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let found = self.canaries.find_all(text);
            if found.is_empty() {
                continue;
            }
            // Overlapping pieces of one leaked value are one place.
            let starts: Vec<usize> = found
                .iter()
                .enumerate()
                .filter(|&(i, &at)| i == 0 || found[i - 1] + LEAK_LEN <= at)
                .map(|(_, &at)| at)
                .collect();
            let places: Vec<String> = starts
                .iter()
                .take(5)
                .map(|&at| {
                    let before: String = text[..at]
                        .chars()
                        .rev()
                        .take(CONTEXT)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    format!("byte {at}, after {:?}", self.canaries.redact(&before))
                })
                .collect();
            self.problems.push(format!(
                "{what}: a value leaked to {stream} ({} places): {}",
                starts.len(),
                places.join("; ")
            ));
        }
        if out.code != Some(code) {
            self.problems.push(format!(
                "{what}: exit code {:?}, expected {code}; stderr (values redacted):\n{}",
                out.code,
                self.canaries.redact(&out.stderr)
            ));
        }
        out
    }

    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    fn assert_clean(self) {
        assert!(
            self.problems.is_empty(),
            "{} of {} runs had problems:\n{}",
            self.problems.len(),
            self.runs,
            self.problems.join("\n")
        );
    }
}

/// Parameters and secrets filled with canaries, and the spec that reads them.
struct World {
    canaries: Canaries,
    prefix: String,
    /// `/aws/reference/secretsmanager/…` of a JSON secret (username, password, port).
    secret: String,
    /// Reference to a secret whose value is not JSON.
    not_json: String,
    /// Canaries a successful render of [`World::args`] writes.
    rendered: Vec<String>,
}

impl World {
    fn seed(emu: &Emulator, test: &str) -> World {
        let mut c = Canaries::new();
        let prefix = unique_prefix(test);
        let sm = |leaf: &str| format!("{}/{leaf}", prefix.trim_start_matches('/'));
        let plain = c.make();
        let secure = c.make();
        let multi = c.make();
        let user = c.make();
        let password = c.make();
        emu.put_str(&format!("{prefix}/app/plain"), &plain);
        emu.put_secure(&format!("{prefix}/app/secure"), &secure);
        emu.put_secure(
            &format!("{prefix}/app/multi"),
            &format!("first line\nit's \"quoted\" $HOME `id` \\ {multi}\n  last line"),
        );
        emu.create_secret(
            &sm("db"),
            &json!({"username": user, "password": password, "port": 5432}).to_string(),
        );
        let not_json = c.make();
        emu.create_secret(&sm("token"), &not_json);
        let one = c.make();
        let two = c.make();
        emu.put_secure(&format!("{prefix}/collide/db/password"), &one);
        emu.put_secure(&format!("{prefix}/collide/db-password"), &two);
        World {
            rendered: vec![plain, secure, multi, user, password],
            canaries: c,
            secret: format!("/aws/reference/secretsmanager/{}", sm("db")),
            not_json: format!("/aws/reference/secretsmanager/{}", sm("token")),
            prefix,
        }
    }

    /// One GetParameters call for a SecureString and a field of the JSON secret. Keeps
    /// the most verbose SDK logs under 64 KiB: `Run` reads the child's pipes only after
    /// it exits, so more output than a pipe holds would block the binary.
    fn one_call_args(&self) -> Vec<String> {
        vec![
            "--param".to_owned(),
            format!("SECURE={}/app/secure", self.prefix),
            "--param".to_owned(),
            format!("DB_PASSWORD={}#password", self.secret),
        ]
    }

    /// A path, two fields of the JSON secret and the whole secret: every kind of value.
    fn args(&self) -> Vec<String> {
        [
            "--path",
            &format!("{}/app/", self.prefix),
            "--param",
            &format!("DB_USER={}#username", self.secret),
            "--param",
            &format!("DB_PASSWORD={}#password", self.secret),
            "--param",
            &format!("DB_JSON={}", self.secret),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// `args` followed by `more`, as one argument list.
fn with(args: &[String], more: &[&str]) -> Vec<String> {
    args.iter()
        .cloned()
        .chain(more.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// `render --format template` of the world's values at `RUST_LOG=trace`.
fn template_run(emu: &Emulator, world: &World, template: &Path, out: &Path) -> Run {
    Run::render(
        emu,
        with(
            &world.args(),
            &[
                "--format",
                "template",
                "--template",
                path(template),
                "--output",
                path(out),
            ],
        ),
    )
    .env("RUST_LOG", "trace")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Everything written at `target` (a file, or every regular file of a tree).
fn written(target: &Path) -> String {
    fn collect(p: &Path, out: &mut String) {
        let meta = fs::symlink_metadata(p).expect("metadata");
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(p)
                .expect("list")
                .map(|e| e.expect("entry").path())
                .collect();
            entries.sort();
            for e in entries {
                collect(&e, out);
            }
        } else if meta.is_file() {
            out.push_str(&String::from_utf8_lossy(&fs::read(p).expect("read")));
            out.push('\n');
        }
    }
    let mut out = String::new();
    collect(target, &mut out);
    out
}

/// A template that uses every value.
const TEMPLATE: &str = "user={{ DB_USER }}\npassword={{ DB_PASSWORD }}\n{{ PLAIN }} {{ SECURE }}\n{{ MULTI }}\n{{ values['DB_JSON'] }}\n";

const FORMATS: [&str; 6] = ["shell", "json", "yaml", "properties", "files", "template"];

/// With `RUST_LOG=trace` the log must really be verbose, or the test proves little. The
/// binary itself logs nothing at trace level and caps the SDK at debug, so debug lines
/// are what shows that the setting took effect.
fn verbose(audit: &mut Audit<'_>, what: &str, out: &Output, json_logs: bool) {
    let marker = if json_logs {
        "\"level\":\"DEBUG\""
    } else {
        " DEBUG "
    };
    if !out.stderr.contains(marker) {
        audit.problem(format!("{what}: no debug-level line on stderr"));
    }
}

#[test]
fn successful_renders_in_every_format_log_no_value_at_trace_level() {
    let emu = shared();
    let world = World::seed(emu, "leaks success");
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("app.tpl");
    fs::write(&template, TEMPLATE).unwrap();
    let mut audit = Audit::new(&world.canaries);

    for format in FORMATS {
        let out = dir.path().join(format!("out-{format}"));
        let mut more = vec!["--format", format, "--output", path(&out)];
        if format == "template" {
            more.extend(["--template", path(&template)]);
        }
        for log_format in ["text", "json"] {
            let what = format!("{format} output, {log_format} logs");
            let o = audit.check(
                &what,
                0,
                Run::render(emu, with(&world.args(), &more))
                    .env("RUST_LOG", "trace")
                    .env("SSM_INJECTOR_LOG_FORMAT", log_format),
            );
            verbose(&mut audit, &what, &o, log_format == "json");
        }
        // Not vacuous: the values really were fetched and written.
        let text = written(&out);
        for c in &world.rendered {
            if !text.contains(c.as_str()) {
                audit.problem(format!(
                    "{format}: the output lacks value #{}",
                    world.canaries.all.iter().position(|x| x == c).unwrap() + 1
                ));
            }
        }
    }

    // Several outputs from one spec file, written and then found unchanged.
    let spec = dir.path().join("spec.yaml");
    let outputs: Vec<String> = FORMATS
        .iter()
        .map(|f| {
            let file = dir.path().join(format!("spec-{f}"));
            let tpl = if *f == "template" {
                format!(", template: '{}'", path(&template))
            } else {
                String::new()
            };
            format!("  - {{ format: {f}, file: '{}'{tpl} }}\n", path(&file))
        })
        .collect();
    fs::write(&spec, format!("outputs:\n{}", outputs.concat())).unwrap();
    for round in ["first", "unchanged"] {
        let what = format!("spec file with every format, {round}");
        let o = audit.check(
            &what,
            0,
            Run::render(emu, with(&world.args(), &["--spec", path(&spec)]))
                .env("RUST_LOG", "trace")
                .arg("--log-format")
                .arg("json"),
        );
        verbose(&mut audit, &what, &o, true);
    }
    audit.assert_clean();
}

#[test]
fn failures_after_values_were_fetched_log_no_value() {
    let emu = shared();
    let world = World::seed(emu, "leaks failures");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let out_dir = dir.path().join("taken");
    fs::create_dir(&out_dir).unwrap();
    let base = world.args();
    let p = &world.prefix;
    let cases: Vec<(&str, i32, Vec<String>)> = vec![
        (
            "a missing JSON field",
            3,
            with(
                &base,
                &["--param", &format!("NOPE={}#nofield", world.secret)],
            ),
        ),
        (
            "a field of a value that is not JSON",
            3,
            with(
                &base,
                &["--param", &format!("TOKEN={}#field", world.not_json)],
            ),
        ),
        (
            "a missing required parameter next to fetched ones",
            3,
            with(&base, &["--param", &format!("GONE={p}/app/gone")]),
        ),
        (
            "two parameters on one key",
            6,
            with(&base, &["--path", &format!("{p}/collide/")]),
        ),
        (
            "a key that is not a shell identifier",
            6,
            with(&base, &["--param", &format!("1BAD={p}/app/secure")]),
        ),
    ];
    let mut audit = Audit::new(&world.canaries);
    for (what, code, args) in cases {
        for log_format in ["text", "json"] {
            audit.check(
                &format!("{what}, {log_format} logs"),
                code,
                Run::render(emu, with(&args, &["--output", path(&out)]))
                    .env("RUST_LOG", "trace")
                    .env("SSM_INJECTOR_LOG_FORMAT", log_format),
            );
        }
    }
    audit.check(
        "the output path is an existing directory",
        6,
        Run::render(emu, with(&base, &["--output", path(&out_dir)])).env("RUST_LOG", "trace"),
    );
    audit.check(
        "the output path is an existing directory, json logs",
        6,
        Run::render(emu, with(&base, &["--output", path(&out_dir)]))
            .env("RUST_LOG", "trace")
            .arg("--log-format")
            .arg("json"),
    );
    assert!(!out.exists(), "a failed render wrote {}", out.display());
    audit.assert_clean();
}

#[test]
fn template_errors_that_touch_a_value_log_no_value() {
    let emu = shared();
    let world = World::seed(emu, "leaks templates");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.conf");
    let template = dir.path().join("app.tpl");
    let mut audit = Audit::new(&world.canaries);
    for source in [
        "{{ DB_PASSWORD | int }}",
        "{{ DB_PASSWORD.foo.bar }}",
        "{{ DB_PASSWORD + 1 }}",
        "{{ range(DB_PASSWORD) }}",
        "{{ DB_PASSWORD | float }}",
        "{{ DB_PASSWORD() }}",
        "{{ DB_PASSWORD[1:] - 1 }}",
        "{{ values[DB_PASSWORD] }}",
        "{{ values[DB_PASSWORD[1:]] }}",
        "{{ DB_PASSWORD | attr(DB_PASSWORD) }}",
        "{{ DB_PASSWORD | batch(DB_PASSWORD) }}",
        "{{ DB_PASSWORD | indent(DB_PASSWORD) }}",
        "{{ '%s %s' | format(DB_PASSWORD[1:]) }}",
        "{{ range(**{DB_PASSWORD: 1}) }}",
        "{{ range(**{DB_PASSWORD[1:]: 1}) }}",
        "{% include DB_PASSWORD %}",
        "{% include DB_PASSWORD[1:] %}",
        "{% for a, b in DB_PASSWORD %}{% endfor %}",
        "{{ DB_JSON | int }}",
        "{{ MULTI | int }}",
        "{{ MULTI.split('\\n')[1] | int }}",
        "{{ DB_PASSWORD | nosuchfilter }}",
        "{{ DB_PASSWORD.nosuchmethod() }}",
        "{{ UNKNOWN_KEY }}",
    ] {
        fs::write(&template, format!("password={source}\n")).unwrap();
        audit.check(
            &format!("template {source:?}"),
            6,
            template_run(emu, &world, &template, &out),
        );
    }
    assert!(!out.exists(), "a failed render wrote {}", out.display());
    audit.assert_clean();
}

#[test]
fn aws_failures_while_other_values_are_fetched_log_no_value() {
    let emu = Emulator::start();
    let mut world = World::seed(&emu, "leaks faults");
    let p = world.prefix.clone();
    // Two pages under one path, every value a canary.
    let paged: Vec<String> = (0..13)
        .map(|i| {
            let v = world.canaries.make();
            emu.put_secure(&format!("{p}/paged/k{i:02}"), &v);
            v
        })
        .collect();
    // The JSON secret and a SecureString in one GetParameters batch.
    let args = with(
        &world.args(),
        &["--param", &format!("SECURE_AGAIN={p}/app/secure")],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let cases = [
        (
            "every GetParameters throttled, the path fetched",
            5,
            json!([{"op": "GetParameters", "status": 400, "code": "ThrottlingException",
                    "message": "Rate exceeded"}]),
            args.clone(),
        ),
        (
            "one name of a batch denied, the others fetched",
            4,
            json!([{"op": "GetParameters", "match": "/app/secure\"", "status": 400,
                    "code": "AccessDeniedException",
                    "message": "not authorized to perform: ssm:GetParameters"}]),
            args.clone(),
        ),
        (
            "one name of a batch not decryptable, the others fetched",
            4,
            json!([{"op": "GetParameters", "match": "/app/secure\"", "status": 400,
                    "code": "KMS.DisabledException", "message": "key is disabled"}]),
            args.clone(),
        ),
        (
            "HTTP 500 on GetParameters, the path fetched",
            5,
            json!([{"op": "GetParameters", "status": 500, "code": "InternalServerError"}]),
            args.clone(),
        ),
        (
            "the second page of a path fails after the first was fetched",
            5,
            json!([{"op": "GetParametersByPath", "match": "NextToken", "status": 500,
                    "code": "InternalServerError"}]),
            with(&args, &["--path", &format!("{p}/paged/")]),
        ),
    ];
    let mut audit = Audit::new(&world.canaries);
    for (what, code, faults, args) in cases {
        for log_format in ["text", "json"] {
            emu.faults(faults.clone());
            audit.check(
                &format!("{what}, {log_format} logs"),
                code,
                Run::render(&emu, with(&args, &["--output", path(&out)]))
                    .via_proxy(&emu)
                    .env("RUST_LOG", "trace")
                    .env("SSM_INJECTOR_LOG_FORMAT", log_format),
            );
        }
    }
    assert!(!out.exists(), "a failed render wrote {}", out.display());
    // And the same through the proxy with no fault, so the cases above were not vacuous.
    emu.faults(json!([]));
    audit.check(
        "no fault",
        0,
        Run::render(
            &emu,
            with(
                &args,
                &["--path", &format!("{p}/paged/"), "--output", path(&out)],
            ),
        )
        .via_proxy(&emu)
        .env("RUST_LOG", "trace"),
    );
    let text = written(&out);
    for (i, c) in world.rendered.iter().chain(&paged).enumerate() {
        if !text.contains(c.as_str()) {
            audit.problem(format!(
                "the render without faults lacks value {i} of the spec"
            ));
        }
    }
    audit.assert_clean();
}

#[test]
fn rust_log_directives_that_name_sdk_modules_log_no_value() {
    let emu = shared();
    let world = World::seed(emu, "leaks rust log");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut audit = Audit::new(&world.canaries);
    for (rust_log, sensitive) in [
        ("TRACE", false),
        ("debug", false),
        ("aws_smithy_runtime=trace", false),
        ("aws_smithy_runtime::client=trace", false),
        ("aws_smithy_runtime::client::orchestrator=trace", false),
        (
            "aws_smithy_http_client=trace,hyper_util=trace,hyper=trace",
            false,
        ),
        (
            "aws_sdk_ssm=trace,aws_smithy_types=trace,aws_smithy_json=trace",
            false,
        ),
        ("[{body}]=trace", false),
        // The SDK prints bodies only when asked to; the cap must still hold.
        ("trace", true),
        ("aws_smithy_runtime=trace", true),
    ] {
        let mut run = Run::render(emu, with(&world.one_call_args(), &["--output", path(&out)]))
            .env("RUST_LOG", rust_log);
        if sensitive {
            run = run.env("LOG_SENSITIVE_BODIES", "true");
        }
        audit.check(
            &format!("RUST_LOG={rust_log}, LOG_SENSITIVE_BODIES={sensitive}"),
            0,
            run,
        );
    }
    let text = written(&out);
    for c in [&world.rendered[1], &world.rendered[4]] {
        if !text.contains(c.as_str()) {
            audit.problem("the output lacks a value: the runs were vacuous".to_owned());
        }
    }
    audit.assert_clean();
}

#[test]
fn a_more_specific_rust_log_directive_does_not_lift_the_cap_on_sdk_body_logging() {
    let emu = shared();
    let world = World::seed(emu, "leaks sdk cap");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    let mut audit = Audit::new(&world.canaries);
    for rust_log in [
        "aws_smithy_runtime::client=trace",
        "aws_smithy_runtime::client::orchestrator=trace",
    ] {
        audit.check(
            &format!("RUST_LOG={rust_log}, LOG_SENSITIVE_BODIES=true"),
            0,
            Run::render(emu, with(&world.one_call_args(), &["--output", path(&out)]))
                .env("RUST_LOG", rust_log)
                .env("LOG_SENSITIVE_BODIES", "true"),
        );
    }
    audit.assert_clean();
}

#[test]
fn a_template_error_never_quotes_part_of_a_value() {
    let emu = shared();
    let world = World::seed(emu, "leaks template slice");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.conf");
    let template = dir.path().join("app.tpl");
    fs::write(
        &template,
        "{% macro m(a) %}{% endmacro %}{{ m(**{DB_PASSWORD[1:]: 1}) }}\n",
    )
    .unwrap();
    let mut audit = Audit::new(&world.canaries);
    audit.check(
        "a macro called with a slice of a value as keyword",
        6,
        template_run(emu, &world, &template, &out),
    );
    audit.assert_clean();
}
