//! `exec`: fetched values -> environment variables for the command that replaces us.
//!
//! Pure: the current environment comes in as a lookup function; the `exec` itself is in
//! [`crate::app`]. Errors name keys, never values.

use crate::format::{FormatError, KeyCase, keys};
use crate::secret::Secret;
use crate::values::Values;
use std::fmt;

/// The rule for environment variable names, as shown to the user.
pub const ENV_NAME_RULE: &str = "an environment variable name must match [A-Za-z_][A-Za-z0-9_]*";

/// Why the environment could not be built. Keys only, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Keys(#[from] FormatError),
    #[error(
        "not valid environment variable name(s): {}; {ENV_NAME_RULE} (choose the key with --param KEY=NAME, or use --key-case upper-snake for path keys)",
        Quoted(keys)
    )]
    InvalidNames { keys: Vec<String> },
    #[error("the value of {key} contains a NUL byte, which an environment variable cannot hold")]
    NulInValue { key: String },
    #[error(
        "already set in the environment: {}; pass --override (SSM_INJECTOR_OVERRIDE=true) to let the spec replace them, or choose other keys",
        Quoted(keys)
    )]
    Clash { keys: Vec<String> },
}

/// Lists keys as `"A", "B"`.
struct Quoted<'a>(&'a [String]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k:?}")?;
        }
        Ok(())
    }
}

/// Checks that `key` is an environment variable name a shell can use:
/// `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks key names against the env-name rule and the current environment. `existing`
/// says whether a variable is already set. Used before the fetch for the explicit
/// `--param` keys (so a bad key costs no AWS call) and after it for every key.
pub fn check_keys<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    existing: &dyn Fn(&str) -> bool,
    override_existing: bool,
) -> Result<(), ExecError> {
    let keys: Vec<&str> = keys.into_iter().collect();
    let mut invalid: Vec<String> = keys
        .iter()
        .filter(|k| !is_env_name(k))
        .map(|k| k.to_string())
        .collect();
    if !invalid.is_empty() {
        invalid.sort();
        invalid.dedup();
        return Err(ExecError::InvalidNames { keys: invalid });
    }
    if !override_existing {
        let mut clashes: Vec<String> = keys
            .iter()
            .filter(|k| existing(k))
            .map(|k| k.to_string())
            .collect();
        if !clashes.is_empty() {
            clashes.sort();
            clashes.dedup();
            return Err(ExecError::Clash { keys: clashes });
        }
    }
    Ok(())
}

/// The variables to set, sorted by name: explicit `--param` keys as given, path keys
/// cased by `case`. Fails on key collisions, invalid names, NUL bytes in values and (without
/// `override_existing`) variables that are already set.
pub fn env_vars(
    values: &Values,
    case: KeyCase,
    existing: &dyn Fn(&str) -> bool,
    override_existing: bool,
) -> Result<Vec<(String, Secret)>, ExecError> {
    let keyed = keys::output_keys(values, case)?;
    check_keys(
        keyed.keys().map(String::as_str),
        existing,
        override_existing,
    )?;
    if let Some((key, _)) = keyed
        .iter()
        .find(|(_, e)| e.value.expose().as_bytes().contains(&0))
    {
        return Err(ExecError::NulInValue { key: key.clone() });
    }
    Ok(keyed
        .into_iter()
        .map(|(k, e)| (k, e.value.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{Entry, SourceKey};

    fn explicit(key: &str, value: &str) -> Entry {
        Entry {
            key: SourceKey::Explicit(key.into()),
            name: format!("/app/explicit/{key}"),
            version: Some(1),
            value: value.into(),
        }
    }

    fn rel(rel: &str, value: &str) -> Entry {
        Entry {
            key: SourceKey::Relative(rel.into()),
            name: format!("/app/{rel}"),
            version: Some(1),
            value: value.into(),
        }
    }

    fn nothing_set(_: &str) -> bool {
        false
    }

    fn names(vars: &[(String, Secret)]) -> Vec<&str> {
        vars.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn path_keys_are_upper_snake_and_explicit_keys_are_kept() {
        let values = vec![
            rel("db/password", "p\nw"),
            rel("apiKey", "k"),
            explicit("Mixed_Case", "m"),
        ];
        let vars = env_vars(&values, KeyCase::UpperSnake, &nothing_set, false).unwrap();
        assert_eq!(names(&vars), ["API_KEY", "DB_PASSWORD", "Mixed_Case"]);
        assert_eq!(vars[1].1.expose(), "p\nw");
    }

    #[test]
    fn lower_snake_is_honoured_for_path_keys() {
        let vars = env_vars(
            &vec![rel("db/password", "x")],
            KeyCase::LowerSnake,
            &nothing_set,
            false,
        )
        .unwrap();
        assert_eq!(names(&vars), ["db_password"]);
    }

    #[test]
    fn invalid_names_are_all_named_without_values() {
        let values = vec![
            explicit("1ST", "s3cret-a"),
            explicit("A-B", "s3cret-b"),
            explicit("OK", "v"),
        ];
        let err = env_vars(&values, KeyCase::UpperSnake, &nothing_set, false).unwrap_err();
        assert_eq!(
            err,
            ExecError::InvalidNames {
                keys: vec!["1ST".into(), "A-B".into()]
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"1ST\", \"A-B\"") && msg.contains("[A-Za-z_]"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn relative_key_case_gives_invalid_names_for_nested_parameters() {
        let err = env_vars(
            &vec![rel("db/password", "x")],
            KeyCase::Relative,
            &nothing_set,
            false,
        )
        .unwrap_err();
        assert!(matches!(err, ExecError::InvalidNames { ref keys } if keys == &["db/password"]));
    }

    #[test]
    fn an_existing_variable_is_a_clash_unless_overridden() {
        let values = vec![explicit("HOME", "s3cret"), explicit("NEW", "n")];
        let existing = |k: &str| k == "HOME" || k == "PATH";
        let err = env_vars(&values, KeyCase::UpperSnake, &existing, false).unwrap_err();
        assert_eq!(
            err,
            ExecError::Clash {
                keys: vec!["HOME".into()]
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"HOME\"") && msg.contains("--override"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"), "{msg}");
        let vars = env_vars(&values, KeyCase::UpperSnake, &existing, true).unwrap();
        assert_eq!(names(&vars), ["HOME", "NEW"]);
    }

    #[test]
    fn a_nul_byte_in_a_value_names_the_key_not_the_value() {
        let err = env_vars(
            &vec![explicit("K", "s3cret\0x")],
            KeyCase::UpperSnake,
            &nothing_set,
            false,
        )
        .unwrap_err();
        assert_eq!(err, ExecError::NulInValue { key: "K".into() });
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn two_parameters_mapping_to_one_variable_are_a_collision() {
        let err = env_vars(
            &vec![rel("db-password", "a"), rel("db/password", "b")],
            KeyCase::UpperSnake,
            &nothing_set,
            false,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ExecError::Keys(FormatError::KeyCollision { .. })
        ));
    }

    #[test]
    fn env_names_follow_the_shell_rule() {
        for ok in ["A", "_", "_a1", "DB_PASSWORD", "x9"] {
            assert!(is_env_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "a/b", "A B", "Ä", "A=B", "A\0"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }
}
