//! `ssm-injector iam-policy`: the printed policy names exactly the spec's ARNs, and moto's
//! IAM (which validates policy documents) accepts it.

use crate::support::{Run, shared, unique_prefix};
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";

fn statement<'a>(doc: &'a Value, sid: &str) -> &'a Value {
    doc["Statement"]
        .as_array()
        .expect("Statement list")
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {doc:#}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

#[test]
fn prints_a_least_privilege_policy_that_moto_iam_accepts() {
    let emu = shared();
    let p = unique_prefix("iam");
    let arn = |rest: &str| format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{rest}");
    let out = Run::new([
        "iam-policy",
        "--path",
        "/app/${STAGE}/",
        "--param",
        &format!("DB={p}/db:3"),
        "--param",
        &format!("PW={p}/creds#password"),
        "--param",
        "SHARED=arn:aws:ssm:eu-west-1:444455556666:parameter/shared/db",
        "--param",
        "STRIPE=/aws/reference/secretsmanager/prod/stripe#key",
        "--account",
        ACCOUNT,
    ])
    .env("STAGE", "prod")
    .run();
    out.assert_code(0);
    let doc: Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");

    assert_eq!(doc["Version"], "2012-10-17");
    assert_eq!(
        strings(&statement(&doc, "SsmGetParametersByPath")["Resource"]),
        [arn("/app/prod")]
    );
    let params = statement(&doc, "SsmGetParameters");
    assert_eq!(
        strings(&params["Action"]),
        ["ssm:GetParameter", "ssm:GetParameters"]
    );
    let mut expected = vec![
        arn("/app/prod/*"),
        arn("/aws/reference/secretsmanager/prod/stripe"),
        arn(&format!("{p}/creds")),
        arn(&format!("{p}/db")),
        "arn:aws:ssm:eu-west-1:444455556666:parameter/shared/db".to_owned(),
    ];
    expected.sort();
    assert_eq!(strings(&params["Resource"]), expected);
    assert_eq!(
        strings(&statement(&doc, "SecretsManagerGetSecretValue")["Action"]),
        [
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue"
        ]
    );
    assert_eq!(
        strings(&statement(&doc, "SecretsManagerGetSecretValue")["Resource"]),
        [format!(
            "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/stripe-??????"
        )]
    );
    let decrypt = statement(&doc, "KmsDecryptViaService");
    assert_eq!(strings(&decrypt["Action"]), ["kms:Decrypt"]);
    assert_eq!(strings(&decrypt["Resource"]), ["*"]);
    assert_eq!(
        strings(&decrypt["Condition"]["StringEquals"]["kms:ViaService"]),
        [
            "secretsmanager.us-east-1.amazonaws.com",
            "ssm.eu-west-1.amazonaws.com",
            "ssm.us-east-1.amazonaws.com",
        ]
    );

    let name = format!("ssm-injector{}", p.replace(['/', '.'], "-"));
    let created = emu.aws(
        "iam",
        "create_policy",
        json!({"PolicyName": name, "PolicyDocument": out.stdout}),
    );
    assert_eq!(
        created["Policy"]["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:policy/{name}")
    );
    // moto really validates documents: a broken resource is refused.
    let mut broken = doc.clone();
    broken["Statement"][0]["Resource"] = json!(["not-an-arn"]);
    assert!(
        emu.try_aws(
            "iam",
            "create_policy",
            json!({"PolicyName": format!("{name}-broken"), "PolicyDocument": broken.to_string()}),
        )
        .is_err()
    );
}

#[test]
fn the_account_comes_from_aws_account_id_and_terraform_output_is_a_data_block() {
    let out = Run::new([
        "iam-policy",
        "--path",
        "/app/prod/",
        "--format",
        "terraform",
    ])
    .env("AWS_ACCOUNT_ID", "111122223333")
    .env("AWS_REGION", "eu-central-1")
    .run();
    out.assert_code(0);
    assert!(
        out.stdout
            .starts_with("data \"aws_iam_policy_document\" \"ssm_injector\" {\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("\"arn:aws:ssm:eu-central-1:111122223333:parameter/app/prod\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\"ssm.eu-central-1.amazonaws.com\""));
}

#[test]
fn without_an_account_it_exits_2_and_says_to_pass_account() {
    Run::new(["iam-policy", "--path", "/app/prod/"])
        .run()
        .assert_code(2)
        .assert_stderr_has(&["--account"]);
    Run::new(["iam-policy", "--path", "/app/prod/", "--account", "123"])
        .run()
        .assert_code(2)
        .assert_stderr_has(&["12 digits"]);
}
