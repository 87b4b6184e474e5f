//! `ssm-injector render` against moto: what a user gets in the output files.

use crate::support::{Emulator, Run, shared, unique_prefix};
use serde_json::json;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// Sources a dotenv file with a real shell and returns the named variables' values.
fn source_dotenv(file: &Path, keys: &[&str]) -> BTreeMap<String, String> {
    let script = keys
        .iter()
        .map(|k| format!("printf '%s\\0' \"${{{k}-<unset>}}\""))
        .collect::<Vec<_>>()
        .join("; ");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -a; . \"$1\"; {script}"))
        .arg("_")
        .arg(file)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "sourcing failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    keys.iter()
        .zip(text.split('\0'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn renders_a_path_selectors_and_a_secret_field_into_a_sourceable_dotenv_file() {
    let emu = shared();
    let p = unique_prefix("dotenv");
    emu.put_str(&format!("{p}/db/host"), "db.internal");
    emu.put_secure(&format!("{p}/db/password"), "pa ss'w\"o$rd`x`\\\n#=ü");
    emu.put_secure(&format!("{p}/apiKey"), "key-v1");
    emu.put_secure(&format!("{p}/apiKey"), "key-v2");
    emu.aws(
        "ssm",
        "label_parameter_version",
        json!({"Name": format!("{p}/apiKey"), "ParameterVersion": 1, "Labels": ["stable"]}),
    );
    let secret = format!("{}-stripe", &p[1..].replace('/', "-"));
    emu.create_secret(&secret, r#"{"key":"sk_live_1","webhook":"whsec_2"}"#);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");

    Run::render(
        emu,
        [
            "--path",
            &format!("{p}/"),
            "--param",
            &format!("API_KEY_STABLE={p}/apiKey:stable"),
            "--param",
            &format!("API_KEY_V2={p}/apiKey:2"),
            "--param",
            &format!("STRIPE_KEY=/aws/reference/secretsmanager/{secret}#key"),
            "--format",
            "shell",
            "--output",
            out.to_str().unwrap(),
        ],
    )
    .run()
    .assert_code(0);

    let got = source_dotenv(
        &out,
        &[
            "DB_HOST",
            "DB_PASSWORD",
            "API_KEY",
            "API_KEY_STABLE",
            "API_KEY_V2",
            "STRIPE_KEY",
        ],
    );
    assert_eq!(got["DB_HOST"], "db.internal");
    assert_eq!(got["DB_PASSWORD"], "pa ss'w\"o$rd`x`\\\n#=ü");
    assert_eq!(got["API_KEY"], "key-v2");
    assert_eq!(got["API_KEY_STABLE"], "key-v1");
    assert_eq!(got["API_KEY_V2"], "key-v2");
    assert_eq!(got["STRIPE_KEY"], "sk_live_1");
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o400);
}

#[test]
fn follows_every_page_of_a_path_with_one_call_per_page() {
    let emu = Emulator::start();
    let p = unique_prefix("pages");
    for i in 0..35 {
        emu.put_str(&format!("{p}/level{}/n{i:02}", i % 3), &format!("v{i}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.json");
    Run::render(
        &emu,
        [
            "--path",
            &p,
            "--format",
            "json",
            "--key-case",
            "relative",
            "--output",
        ],
    )
    .arg(out.to_str().unwrap())
    .via_proxy(&emu)
    .run()
    .assert_code(0);
    let map: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(map.len(), 35);
    assert_eq!(map["level2/n11"], "v11");
    assert_eq!(emu.calls_of("GetParametersByPath"), 4, "{:?}", emu.calls());
    assert_eq!(emu.calls_of("GetParameters"), 0);
}

#[test]
fn sends_ten_names_per_call_and_asks_for_a_duplicate_once() {
    let emu = Emulator::start();
    let p = unique_prefix("batches");
    let mut args = vec![];
    for i in 0..25 {
        emu.put_str(&format!("{p}/n{i}"), &format!("value-{i}"));
        args.push("--param".to_string());
        args.push(format!("K{i}={p}/n{i}"));
    }
    args.extend(["--param".into(), format!("AGAIN={p}/n3")]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.env");
    args.extend(["--output".into(), out.to_str().unwrap().into()]);
    Run::render(&emu, &args)
        .via_proxy(&emu)
        .run()
        .assert_code(0);
    assert_eq!(emu.calls_of("GetParameters"), 3, "{:?}", emu.calls());
    let got = source_dotenv(&out, &["K0", "K24", "AGAIN"]);
    assert_eq!(got["K24"], "value-24");
    assert_eq!(got["AGAIN"], "value-3");
}

#[test]
fn one_fetch_feeds_several_outputs_from_a_spec_file() {
    let emu = Emulator::start();
    let p = unique_prefix("outputs");
    emu.put_str(&format!("{p}/app/db/host"), "db.internal");
    emu.put_secure(&format!("{p}/app/db/password"), "s3cret: yes\nline2");
    emu.put_str(&format!("{p}/app/flag"), "true");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.tpl"),
        "db: {{ DB_HOST }}:5432\npassword: {{ DB_PASSWORD | tojson }}\nflag={{ values['FLAG'] }}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("spec.yaml"),
        format!(
            r#"
paths:
  - {p}/app/
outputs:
  - {{ format: json, file: {d}/v.json }}
  - {{ format: yaml, file: {d}/v.yaml, mode: "0440" }}
  - {{ format: properties, file: {d}/v.properties }}
  - {{ format: files, file: {d}/tree }}
  - {{ format: template, template: {d}/config.tpl, file: {d}/config.yaml }}
"#,
            d = d.display()
        ),
    )
    .unwrap();
    Run::render(&emu, ["--spec", d.join("spec.yaml").to_str().unwrap()])
        .via_proxy(&emu)
        .run()
        .assert_code(0);

    let expected: BTreeMap<String, String> = [
        ("DB_HOST", "db.internal"),
        ("DB_PASSWORD", "s3cret: yes\nline2"),
        ("FLAG", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let json: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(d.join("v.json")).unwrap()).unwrap();
    assert_eq!(json, expected);
    let yaml: BTreeMap<String, String> =
        serde_yaml_ng::from_slice(&std::fs::read(d.join("v.yaml")).unwrap()).unwrap();
    assert_eq!(yaml, expected);
    assert_eq!(
        std::fs::metadata(d.join("v.yaml"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o440
    );
    let props = std::fs::read_to_string(d.join("v.properties")).unwrap();
    assert!(
        props.contains("DB_PASSWORD=s3cret\\: yes\\nline2")
            || props.contains("DB_PASSWORD=s3cret: yes\\nline2"),
        "{props}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("tree/db/password")).unwrap(),
        "s3cret: yes\nline2"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("tree/flag")).unwrap(),
        "true"
    );
    assert!(
        std::fs::symlink_metadata(d.join("tree/..data"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(d.join("config.yaml")).unwrap(),
        "db: db.internal:5432\npassword: \"s3cret: yes\\nline2\"\nflag=true\n"
    );
    assert_eq!(emu.calls_of("GetParametersByPath"), 1, "{:?}", emu.calls());
}

#[test]
fn properties_output_reads_back_equal_in_a_java_properties_parser() {
    let emu = shared();
    let p = unique_prefix("props");
    let tricky = "a=b:c #d !e \\f\ttab\nnew line ü€😀 ";
    emu.put_secure(&format!("{p}/x"), tricky);
    emu.put_str(&format!("{p}/y"), "  leading spaces");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.properties");
    Run::render(emu, ["--path", &p, "--format", "properties", "--output"])
        .arg(out.to_str().unwrap())
        .run()
        .assert_code(0);
    let py = crate::support::emulator::venv().join("bin/python");
    let read = Command::new(py)
        .arg("-c")
        .arg(
            "import sys, json, jproperties\np = jproperties.Properties()\n\
             p.load(open(sys.argv[1], 'rb'), 'iso-8859-1')\n\
             print(json.dumps({k: v.data for k, v in p.items()}))",
        )
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let map: BTreeMap<String, String> = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(map["X"], tricky);
    assert_eq!(map["Y"], "  leading spaces");
}

#[test]
fn variables_in_names_and_paths_come_from_the_environment() {
    let emu = shared();
    let p = unique_prefix("vars");
    emu.put_secure(&format!("{p}/live/stripeSecretKey"), "sk_live");
    emu.put_secure(&format!("{p}/test/stripeSecretKey"), "sk_test");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.env");
    Run::render(
        emu,
        [
            "--param",
            &format!("STRIPE={p}/${{STAGE}}/stripeSecretKey"),
            "--output",
        ],
    )
    .arg(out.to_str().unwrap())
    .env("STAGE", "live")
    .run()
    .assert_code(0);
    assert_eq!(source_dotenv(&out, &["STRIPE"])["STRIPE"], "sk_live");
}

#[test]
fn the_whole_spec_can_come_from_ssm_injector_environment_variables() {
    let emu = shared();
    let p = unique_prefix("envspec");
    emu.put_str(&format!("{p}/a"), "A");
    emu.put_str(&format!("{p}/b"), "B");
    emu.put_str(&format!("{p}/tree/c"), "C");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.json");
    Run::new(["render"])
        .endpoint(&emu.moto)
        .env("SSM_INJECTOR_PATH", &format!("{p}/tree/"))
        .env("SSM_INJECTOR_PARAM", &format!("A={p}/a, B={p}/b"))
        .env("SSM_INJECTOR_FORMAT", "json")
        .env("SSM_INJECTOR_OUTPUT", out.to_str().unwrap())
        .env("SSM_INJECTOR_FILE_MODE", "0440")
        .run()
        .assert_code(0);
    let map: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(map.len(), 3);
    assert_eq!(
        (map["A"].as_str(), map["B"].as_str(), map["C"].as_str()),
        ("A", "B", "C")
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o440
    );
}

#[test]
fn an_unchanged_value_set_rewrites_nothing() {
    let emu = shared();
    let p = unique_prefix("unchanged");
    emu.put_secure(&format!("{p}/a"), "one");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.env");
    let tree = dir.path().join("tree");
    let spec = dir.path().join("spec.yaml");
    std::fs::write(
        &spec,
        format!(
            "paths: [{p}/]\noutputs:\n  - {{ file: {} }}\n  - {{ format: files, file: {} }}\n",
            out.display(),
            tree.display()
        ),
    )
    .unwrap();
    let render = Run::render(emu, ["--spec", spec.to_str().unwrap()]);
    render.run().assert_code(0);
    let before = (
        std::fs::metadata(&out).unwrap(),
        std::fs::read_link(tree.join("..data")).unwrap(),
    );
    render.run().assert_code(0);
    let after = (
        std::fs::metadata(&out).unwrap(),
        std::fs::read_link(tree.join("..data")).unwrap(),
    );
    assert_eq!(before.0.ino(), after.0.ino());
    assert_eq!(before.0.mtime_nsec(), after.0.mtime_nsec());
    assert_eq!(before.1, after.1, "the files output was republished");

    emu.put_secure(&format!("{p}/a"), "two");
    render.run().assert_code(0);
    assert_ne!(std::fs::metadata(&out).unwrap().ino(), before.0.ino());
    assert_eq!(std::fs::read_to_string(tree.join("a")).unwrap(), "two");
}

#[test]
fn owner_and_mode_flags_are_applied() {
    let emu = shared();
    let p = unique_prefix("owner");
    emu.put_str(&format!("{p}/a"), "x");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.env");
    let me = std::fs::metadata(dir.path()).unwrap();
    // As root, hand the file to nobody; otherwise to ourselves (the only uid we may set).
    let (uid, gid) = if me.uid() == 0 {
        (65534, 65534)
    } else {
        (me.uid(), me.gid())
    };
    Run::render(
        emu,
        [
            "--param",
            &format!("A={p}/a"),
            "--file-mode",
            "0440",
            "--output",
        ],
    )
    .arg(out.to_str().unwrap())
    .arg("--uid")
    .arg(uid.to_string())
    .arg("--gid")
    .arg(gid.to_string())
    .run()
    .assert_code(0);
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.permissions().mode() & 0o777),
        (uid, gid, 0o440)
    );
}

#[test]
fn optional_parameters_that_do_not_exist_are_left_out() {
    let emu = shared();
    let p = unique_prefix("optional");
    emu.put_str(&format!("{p}/here"), "yes");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.json");
    Run::render(
        emu,
        [
            "--param",
            &format!("HERE={p}/here"),
            "--optional-param",
            &format!("GONE={p}/gone"),
            "--optional-param",
            &format!(
                "GONE_SECRET=/aws/reference/secretsmanager/{}-nope",
                &p[1..].replace('/', "-")
            ),
            "--format",
            "json",
            "--output",
            out.to_str().unwrap(),
        ],
    )
    .run()
    .assert_code(0);
    let map: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        map.into_iter().collect::<Vec<_>>(),
        vec![("HERE".to_string(), "yes".to_string())]
    );
}

#[test]
fn full_arns_fetch_shared_parameters() {
    let emu = shared();
    let p = unique_prefix("arn");
    emu.put_secure(&format!("{p}/shared/db"), "from-arn");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.env");
    Run::render(
        emu,
        [
            "--param",
            &format!("DB=arn:aws:ssm:us-east-1:123456789012:parameter{p}/shared/db"),
            "--output",
        ],
    )
    .arg(out.to_str().unwrap())
    .run()
    .assert_code(0);
    assert_eq!(source_dotenv(&out, &["DB"])["DB"], "from-arn");
}

#[test]
fn output_dash_prints_the_values_to_standard_output_and_writes_no_file() {
    let emu = shared();
    let p = unique_prefix("stdout");
    emu.put_secure(&format!("{p}/db"), "s3cret");
    let dir = tempfile::tempdir().unwrap();
    for (format, want) in [("dotenv", "DB='s3cret'\n"), ("json", "\"DB\": \"s3cret\"")] {
        let o = Run::render(
            emu,
            [
                "--param",
                &format!("DB={p}/db"),
                "--format",
                format,
                "--output",
                "-",
            ],
        )
        .run_in(dir.path());
        o.assert_code(0);
        assert!(o.stdout.contains(want), "{format}: stdout {:?}", o.stdout);
        assert!(
            !o.stderr.contains("s3cret"),
            "the value reached the log:\n{}",
            o.stderr
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files were written: {left:?}");
}
