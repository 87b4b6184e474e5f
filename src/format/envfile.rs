//! Env-file dialects: `KEY=value` files, each written exactly for the programs that read
//! that dialect, or refused.
//!
//! | dialect | readers it is exact for | how a value is written |
//! | --- | --- | --- |
//! | `shell` | `set -a; . FILE` in bash, dash, busybox sh | `'…'`, a `'` as `'\''` |
//! | `dotenv` | python-dotenv, node `dotenv`, docker compose `env_file` | `'…'`, else `"…"` |
//! | `docker` | `docker run --env-file` | the raw bytes, no quoting |
//! | `k8s-env` | the kubelet's `fileKeyRef` parser | `'…'` with no escapes |
//!
//! A value that the dialect cannot carry exactly for every one of its readers fails the
//! render with [`FormatError::ValueRefused`], naming the key, the dialect and the reason,
//! never the value. Nothing a value holds can end its line early, so no value can create
//! or change another variable in any reader. The readers' rules, with their sources:
//!
//! - **python-dotenv 1.2** (`src/dotenv/parser.py`, `main.py`): the file is read in text
//!   mode, so a raw CR becomes LF; `'…'` decodes `\\` and `\'`; `"…"` decodes `\\ \' \" \a
//!   \b \f \n \r \t \v`; `${NAME}` is expanded in every value, quoted or not.
//! - **node dotenv 17** (`lib/main.js`): CR and CRLF become LF before parsing; `'…'` is
//!   literal; `"…"` decodes only `\n` and `\r` (`\"` stays `\"`).
//! - **docker compose** (compose-go `dotenv/parser.go`): `'…'` is literal up to the first
//!   `'` not after a backslash; `"…"` decodes `\n`, `\r`, drops the backslash of any other
//!   escape but `\$`, and expands `$NAME`; a leading `export` is cut from a key even without
//!   a blank after it.
//! - **docker --env-file** (docker/cli `pkg/kvfile/kvfile.go`): one line per variable read
//!   with a 64 KiB `bufio.Scanner` (a CR before the LF is dropped), the value taken as is,
//!   except that docker/cli 28 strips one pair of matching quotes around it.
//! - **kubelet** (kubernetes `pkg/kubelet/util/env/env_util.go`, `EnvFiles`): `KEY='…'`,
//!   no escapes, newlines allowed inside the quotes, lines read with a 64 KiB
//!   `bufio.Scanner` (a CR before each LF is dropped); an empty value counts as missing.

use std::collections::BTreeMap;

use super::keys::{SHELL_IDENTIFIER_RULE, check_keys, is_shell_identifier};
use super::{Format, FormatError, GENERATED_HEADER, SecretBuf};
use crate::secret::SecretBytes;
use crate::values::Entry;

/// The longest line (without its LF) that Go's default `bufio.Scanner` reads: its buffer
/// is `bufio.MaxScanTokenSize` (64 KiB) and must also hold the LF.
pub(crate) const GO_SCANNER_MAX_LINE: usize = 64 * 1024 - 1;

/// The key rule of the dotenv dialect, as shown to the user.
const DOTENV_KEY_RULE: &str = "a dotenv variable name must match [A-Za-z_][A-Za-z0-9_]* and not start with \"export\" (docker compose cuts that prefix off)";

/// Whether `key` can be written in the dotenv dialect.
fn is_dotenv_key(key: &str) -> bool {
    is_shell_identifier(key) && !key.starts_with("export")
}

/// Renders sorted keys as an env file of the dialect `format` (one of the env-file formats).
pub(super) fn render(
    format: Format,
    keyed: &BTreeMap<String, &Entry>,
) -> Result<SecretBytes, FormatError> {
    match format {
        Format::Dotenv => check_keys(keyed, format, DOTENV_KEY_RULE, is_dotenv_key)?,
        _ => check_keys(keyed, format, SHELL_IDENTIFIER_RULE, is_shell_identifier)?,
    }
    let mut quoting = Vec::with_capacity(keyed.len());
    for (key, entry) in keyed {
        let value = entry.value.expose();
        match dialect_quoting(format, key, value) {
            Ok(q) => quoting.push(q),
            Err(reason) => {
                return Err(FormatError::ValueRefused {
                    key: key.clone(),
                    name: entry.name.clone(),
                    format,
                    reason,
                });
            }
        }
    }

    let size: usize = keyed
        .iter()
        .map(|(k, e)| k.len() + e.value.expose().len() + 4)
        .sum();
    let mut out = SecretBuf::with_capacity(GENERATED_HEADER.len() + size + size / 8);
    out.push_str(GENERATED_HEADER);
    for ((key, entry), quoting) in keyed.iter().zip(quoting) {
        out.push_str(key);
        out.push_char('=');
        write_value(&mut out, quoting, entry.value.expose());
        out.push_char('\n');
    }
    Ok(out.into_bytes())
}

/// How one value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// `'…'`, a `'` written as `'\''` (shell only).
    ShellSingle,
    /// `'…'` holding the value as is (it has no `'`).
    Single,
    /// `"…"` with LF as `\n` and CR as `\r` (the value has no `"`, `$` or `\`).
    Double,
    /// The raw value (docker).
    Raw,
}

/// Why a value cannot be written in a dialect; `Ok` is how it is written.
fn dialect_quoting(format: Format, key: &str, value: &str) -> Result<Quoting, String> {
    if value.contains('\0') {
        return Err("it holds a NUL character, which no environment variable can hold".into());
    }
    match format {
        Format::Dotenv => dotenv_quoting(value),
        Format::Docker => docker_check(key, value).map(|()| Quoting::Raw),
        Format::K8sEnv => k8s_check(key, value).map(|()| Quoting::Single),
        _ => Ok(Quoting::ShellSingle),
    }
}

/// The dotenv dialect: single quotes when all three readers take the value literally
/// there, else double quotes when all three decode the same escapes, else refused.
fn dotenv_quoting(value: &str) -> Result<Quoting, String> {
    if value.contains("${") {
        return Err("it holds \"${\", which python-dotenv expands in every value, quoted or not; use --format shell, json or files for it".into());
    }
    let not_single = if value.contains('\'') {
        Some("a single quote")
    } else if value.contains('\r') {
        Some("a carriage return (python-dotenv reads a raw CR as LF)")
    } else if backslash_escapes_in_single_quotes(value) {
        Some("a backslash before a backslash or at the end (python-dotenv unescapes it)")
    } else {
        None
    };
    let Some(not_single) = not_single else {
        return Ok(Quoting::Single);
    };
    let not_double = if value.contains('"') {
        Some("a double quote (node dotenv keeps \\\" escaped)")
    } else if value.contains('$') {
        Some("a $ (docker compose expands it in double quotes)")
    } else if value.contains('\\') {
        Some("a backslash (the three readers unescape it differently)")
    } else {
        None
    };
    match not_double {
        None => Ok(Quoting::Double),
        Some(not_double) => Err(format!(
            "single quotes cannot carry {not_single} and double quotes cannot carry {not_double}, so python-dotenv, node dotenv and docker compose would not all read it back; use --format shell, json or files for it"
        )),
    }
}

/// Whether python-dotenv would decode a backslash of the value inside single quotes: a
/// `\\` pair, or a `\` at the end (which would escape the closing quote).
fn backslash_escapes_in_single_quotes(value: &str) -> bool {
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                None | Some('\\' | '\'') => return true,
                Some(_) => {}
            }
        }
    }
    false
}

/// The docker dialect: one raw line per variable.
fn docker_check(key: &str, value: &str) -> Result<(), String> {
    if value.contains('\n') {
        return Err("it holds a newline, and docker reads one line per variable with no quoting; use --format shell, dotenv or files for it".into());
    }
    if value.ends_with('\r') {
        return Err("it ends with a carriage return, which docker's line reader drops".into());
    }
    let bytes = value.as_bytes();
    if bytes.len() >= 2 && matches!(bytes[0], b'\'' | b'"') && bytes[0] == bytes[bytes.len() - 1] {
        return Err("it starts and ends with the same quote, which docker/cli 28 removes (older docker keeps them)".into());
    }
    if key.len() + 1 + value.len() > GO_SCANNER_MAX_LINE {
        return Err(format!(
            "its line is longer than docker's line reader takes ({GO_SCANNER_MAX_LINE} bytes)"
        ));
    }
    Ok(())
}

/// The k8s-env dialect: `KEY='value'`, no escapes, as the kubelet reads it.
fn k8s_check(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("it is empty, and the kubelet treats an empty value as a missing key".into());
    }
    if value.contains('\'') {
        return Err("it holds a single quote, and the kubelet reads single quotes with no escapes; use --format shell or files for it".into());
    }
    if value.contains("\r\n") {
        return Err(
            "it holds a carriage return before a newline, which the kubelet's line reader drops"
                .into(),
        );
    }
    // The physical lines: `KEY='` + first part, the middle parts, the last part + `'`.
    let parts: Vec<&str> = value.split('\n').collect();
    let last = parts.len() - 1;
    let too_long = parts.iter().enumerate().any(|(i, part)| {
        let extra = if i == 0 { key.len() + 2 } else { 0 } + usize::from(i == last);
        part.len() + extra > GO_SCANNER_MAX_LINE
    });
    if too_long {
        return Err(format!(
            "one of its lines is longer than the kubelet's line reader takes ({GO_SCANNER_MAX_LINE} bytes)"
        ));
    }
    Ok(())
}

/// Writes one value with its quoting.
fn write_value(out: &mut SecretBuf, quoting: Quoting, value: &str) {
    match quoting {
        Quoting::ShellSingle => {
            out.push_char('\'');
            for (i, part) in value.split('\'').enumerate() {
                if i > 0 {
                    out.push_str("'\\''");
                }
                out.push_str(part);
            }
            out.push_char('\'');
        }
        Quoting::Single => {
            out.push_char('\'');
            out.push_str(value);
            out.push_char('\'');
        }
        Quoting::Double => {
            out.push_char('"');
            for c in value.chars() {
                match c {
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push_char(c),
                }
            }
            out.push_char('"');
        }
        Quoting::Raw => out.push_str(value),
    }
}

#[cfg(test)]
mod tests {
    use super::super::KeyCase;
    use super::super::keys::output_keys;
    use super::super::test_support::{explicit, rel};
    use super::*;
    use proptest::prelude::*;
    use std::io::Write as _;
    use std::process::Command;

    fn render_as(format: Format, values: &[Entry]) -> Result<String, FormatError> {
        let keyed = output_keys(values, KeyCase::UpperSnake)?;
        let bytes = render(format, &keyed)?;
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn shell(values: &[Entry]) -> Result<String, FormatError> {
        render_as(Format::Shell, values)
    }

    /// Writes `text` to a temp file, sources it with bash and prints every key's value
    /// followed by a NUL; returns the values in key order.
    fn source_with_bash(text: &str, keys: &[&str]) -> Vec<Vec<u8>> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file.flush().unwrap();
        let mut script = String::from("set -a; . \"$1\" || exit 3; printf '%s\\0'");
        for key in keys {
            script.push_str(&format!(" \"${key}\""));
        }
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .arg("_")
            .arg(file.path())
            .env_clear()
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bash failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut parts: Vec<Vec<u8>> = out.stdout.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        // printf ends every value with a NUL, so the split leaves one empty tail.
        assert_eq!(parts.pop(), Some(Vec::new()));
        parts
    }

    #[test]
    fn starts_with_a_header_and_writes_sorted_single_quoted_lines() {
        let text = shell(&[rel("b", "two"), rel("a", "one")]).unwrap();
        assert_eq!(
            text,
            "# generated by ssm-injector; do not edit\nA='one'\nB='two'\n"
        );
    }

    #[test]
    fn single_quotes_are_closed_escaped_and_reopened() {
        let text = shell(&[rel("a", "it's")]).unwrap();
        assert!(text.ends_with("A='it'\\''s'\n"), "{text}");
        let text = shell(&[rel("a", "'")]).unwrap();
        assert!(text.ends_with("A=''\\'''\n"), "{text}");
    }

    #[test]
    fn empty_values_are_written_as_empty_quotes() {
        assert!(shell(&[rel("a", "")]).unwrap().ends_with("A=''\n"));
    }

    #[test]
    fn keys_that_are_not_shell_identifiers_are_rejected_naming_the_parameter() {
        for key in ["1ABC", "A-B", "a/b", "A.B"] {
            let err = shell(&[explicit(key, "s3cret")]).unwrap_err();
            let FormatError::InvalidKey {
                key: k,
                name,
                format,
                ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!((k.as_str(), *format), (key, Format::Shell));
            assert_eq!(name, &format!("/app/explicit/{key}"));
            let msg = err.to_string();
            assert!(
                msg.contains("[A-Za-z_][A-Za-z0-9_]*") && !msg.contains("s3cret"),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_value_with_nul_is_refused_in_every_dialect_naming_key_dialect_and_parameter_but_not_the_value()
     {
        for format in ENV_FORMATS {
            let err = render_as(format, &[rel("db/password", "s3cr\0et")]).unwrap_err();
            let FormatError::ValueRefused {
                key,
                name,
                format: f,
                ..
            } = &err
            else {
                panic!("{err:?}");
            };
            assert_eq!(
                (key.as_str(), name.as_str(), *f),
                ("DB_PASSWORD", "/app/db/password", format)
            );
            let msg = err.to_string();
            assert!(
                msg.contains("DB_PASSWORD")
                    && msg.contains("/app/db/password")
                    && msg.contains(format.as_str())
                    && msg.contains("NUL"),
                "{msg}"
            );
            assert!(!msg.contains("s3cr"), "{msg}");
        }
    }

    const ENV_FORMATS: [Format; 4] = [
        Format::Shell,
        Format::Dotenv,
        Format::Docker,
        Format::K8sEnv,
    ];

    /// The injection of issue 17: in python-dotenv, node dotenv and systemd the old output
    /// of this value created NODE_OPTIONS.
    const ATTACK: &str = "it's fine\nNODE_OPTIONS=--require=/tmp/evil.js";

    #[test]
    fn the_injection_value_is_refused_or_quoted_whole_in_every_dialect() {
        let want = [
            (
                Format::Shell,
                Some("A='it'\\''s fine\nNODE_OPTIONS=--require=/tmp/evil.js'\n"),
            ),
            (
                Format::Dotenv,
                Some("A=\"it's fine\\nNODE_OPTIONS=--require=/tmp/evil.js\"\n"),
            ),
            (Format::Docker, None),
            (Format::K8sEnv, None),
        ];
        for (format, want) in want {
            let got = render_as(format, &[rel("a", ATTACK)]);
            match (want, got) {
                (Some(w), Ok(text)) => assert!(text.ends_with(w), "{format}: {text}"),
                (None, Err(FormatError::ValueRefused { key, .. })) => assert_eq!(key, "A"),
                (want, got) => panic!("{format}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn dotenv_single_quotes_what_all_three_read_literally_and_double_quotes_the_rest() {
        let cases = [
            ("plain $HOME `x` \\d # = \n", "'plain $HOME `x` \\d # = \n'"),
            ("it's", "\"it's\""),
            ("cr\r\nlf", "\"cr\\r\\nlf\""),
            ("end\\", "\"end\\\\\""),
            ("", "''"),
        ];
        for (value, written) in cases {
            let text = render_as(Format::Dotenv, &[rel("a", value)]);
            match text {
                Ok(text) if value != "end\\" => {
                    assert!(
                        text.ends_with(&format!("A={written}\n")),
                        "{value:?}: {text}"
                    )
                }
                other => assert!(
                    matches!(other, Err(FormatError::ValueRefused { .. })) && value == "end\\",
                    "{value:?}: {other:?}"
                ),
            }
        }
    }

    #[test]
    fn each_dialect_refuses_what_its_readers_would_change_and_says_why() {
        let cases: [(Format, &str, &str); 12] = [
            (Format::Dotenv, "a${B}", "expands"),
            (Format::Dotenv, "it's \"x\"", "double quote"),
            (Format::Dotenv, "it's $x", "compose expands"),
            (Format::Dotenv, "it's \\x", "unescape it differently"),
            (Format::Dotenv, "\r\"", "carriage return"),
            (Format::Docker, "a\nb", "newline"),
            (Format::Docker, "a\r", "carriage return"),
            (Format::Docker, "'quoted'", "same quote"),
            (Format::K8sEnv, "", "empty"),
            (Format::K8sEnv, "it's", "single quote"),
            (Format::K8sEnv, "a\r\nb", "carriage return before a newline"),
            (Format::Docker, "\"x\"", "same quote"),
        ];
        for (format, value, why) in cases {
            let err = render_as(format, &[rel("k", value)]).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, FormatError::ValueRefused { .. }) && msg.contains(why),
                "{format} {value:?}: {msg}"
            );
            assert!(
                msg.contains(format.as_str()) && msg.contains("key K"),
                "{msg}"
            );
        }
        for (format, value) in [
            (Format::Docker, "  lead and trail\t "),
            (Format::Docker, "a\rb ' \" $x #"),
            (Format::Docker, "'"),
            (Format::K8sEnv, "a\nb\r# c \\"),
            (Format::K8sEnv, "x\r"),
        ] {
            assert!(
                render_as(format, &[rel("k", value)]).is_ok(),
                "{format} {value:?}"
            );
        }
    }

    #[test]
    fn go_scanner_lines_of_64_kib_are_refused_one_byte_below_is_written() {
        // docker: "K=" + value + LF must fit 65536 bytes.
        let fits = "x".repeat(GO_SCANNER_MAX_LINE - 2);
        assert!(render_as(Format::Docker, &[rel("k", &fits)]).is_ok());
        let over = "x".repeat(GO_SCANNER_MAX_LINE - 1);
        assert!(render_as(Format::Docker, &[rel("k", &over)]).is_err());
        // k8s-env: "K='" + value + "'" on one line; a middle line alone.
        let fits = "x".repeat(GO_SCANNER_MAX_LINE - 4);
        assert!(render_as(Format::K8sEnv, &[rel("k", &fits)]).is_ok());
        let over = "x".repeat(GO_SCANNER_MAX_LINE - 3);
        assert!(render_as(Format::K8sEnv, &[rel("k", &over)]).is_err());
        let middle = format!("a\n{}\nb", "x".repeat(GO_SCANNER_MAX_LINE));
        assert!(render_as(Format::K8sEnv, &[rel("k", &middle)]).is_ok());
        let middle = format!("a\n{}\nb", "x".repeat(GO_SCANNER_MAX_LINE + 1));
        assert!(render_as(Format::K8sEnv, &[rel("k", &middle)]).is_err());
    }

    #[test]
    fn dotenv_keys_must_not_start_with_export() {
        let err = render_as(Format::Dotenv, &[explicit("exportFOO", "x")]).unwrap_err();
        assert!(err.to_string().contains("export"), "{err}");
        assert!(render_as(Format::Shell, &[explicit("exportFOO", "x")]).is_ok());
        assert!(render_as(Format::Dotenv, &[explicit("EXPORT_FOO", "x")]).is_ok());
    }

    #[test]
    fn bash_reads_back_tricky_values_byte_for_byte() {
        let tricky = [
            ("A", "it's a \"quoted\" value"),
            ("B", "$HOME ${HOME} $(id) `id`"),
            ("C", "back\\slash\\\\ and \\n literal"),
            ("D", "line1\nline2\n"),
            ("E", "trailing newlines\n\n\n"),
            ("F", "cr\r\nand\rlone cr\r"),
            ("G", "\ttab and  spaces  "),
            ("H", "a=b=c # not a comment"),
            ("I", "ü€😀 non-ASCII"),
            ("J", "'"),
            ("K", "''\\''"),
            ("L", ""),
            ("M", "\n"),
            ("N", " "),
            ("O", "!history ~tilde *glob? [x] {a,b} ; & | < > ( )"),
        ];
        let values: Vec<Entry> = tricky.iter().map(|(k, v)| explicit(k, v)).collect();
        let text = shell(&values).unwrap();
        let keys: Vec<&str> = tricky.iter().map(|(k, _)| *k).collect();
        let got = source_with_bash(&text, &keys);
        let want: Vec<Vec<u8>> = tricky.iter().map(|(_, v)| v.as_bytes().to_vec()).collect();
        assert_eq!(got, want);
    }

    fn value_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~\\n\\r\\t]{0,30}",
            "['\"$`\\\\\\n\\r ]{0,12}",
            "[^\\x00]{0,20}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn bash_reads_back_arbitrary_values_without_nul(
            values in proptest::collection::vec(value_strategy(), 1..5)
        ) {
            let keys: Vec<String> = (0..values.len()).map(|i| format!("K{i}")).collect();
            let entries: Vec<Entry> =
                keys.iter().zip(&values).map(|(k, v)| explicit(k, v)).collect();
            let text = shell(&entries).unwrap();
            let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let got = source_with_bash(&text, &key_refs);
            let want: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
