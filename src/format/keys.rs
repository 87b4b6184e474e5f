//! Output keys: from parameter names to the keys a format writes, and per-format checks.

use std::collections::BTreeMap;
use std::collections::btree_map;

use super::{Format, FormatError, KeyCase};
use crate::values::{Entry, SourceKey};

/// Gives every entry its output key, sorted by key.
///
/// An explicit key (`--param KEY=NAME`) is used as given; a path-relative name is turned
/// into a key by `case` (see [`case_key`]). An empty key is an error naming the parameter,
/// and so are two parameters that end up with the same key. The same parameter listed
/// twice with the same value is kept once.
pub fn output_keys(
    values: &[Entry],
    case: KeyCase,
) -> Result<BTreeMap<String, &Entry>, FormatError> {
    let mut out: BTreeMap<String, &Entry> = BTreeMap::new();
    for entry in values {
        let key = match &entry.key {
            SourceKey::Explicit(key) => key.clone(),
            SourceKey::Relative(rel) => case_key(rel, case),
        };
        if key.is_empty() {
            return Err(FormatError::EmptyKey {
                name: entry.name.clone(),
            });
        }
        match out.entry(key) {
            btree_map::Entry::Vacant(slot) => {
                slot.insert(entry);
            }
            btree_map::Entry::Occupied(slot) => {
                let first = *slot.get();
                if first.name == entry.name && first.value == entry.value {
                    continue;
                }
                return Err(FormatError::KeyCollision {
                    key: slot.key().clone(),
                    first: first.name.clone(),
                    second: entry.name.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Turns a path-relative parameter name into a key.
///
/// `UpperSnake`: every run of characters other than ASCII letters and digits becomes one
/// `_`, an `_` is also put where a lowercase letter or digit is followed by an uppercase
/// letter, leading and trailing `_` are dropped, and letters are uppercased
/// (`stripeSecretKey/live` -> `STRIPE_SECRET_KEY_LIVE`). `LowerSnake` is the same in
/// lowercase. `Relative` keeps the name unchanged.
pub fn case_key(rel: &str, case: KeyCase) -> String {
    let upper = match case {
        KeyCase::Relative => return rel.to_owned(),
        KeyCase::UpperSnake => true,
        KeyCase::LowerSnake => false,
    };
    let mut out = String::with_capacity(rel.len() + 4);
    let mut separator = false;
    let mut prev: Option<char> = None;
    for c in rel.chars() {
        if !c.is_ascii_alphanumeric() {
            separator = true;
            prev = None;
            continue;
        }
        let hump = c.is_ascii_uppercase()
            && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
        if (separator || hump) && !out.is_empty() {
            out.push('_');
        }
        separator = false;
        prev = Some(c);
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
    }
    out
}

/// The rule for dotenv keys, as shown to the user.
pub(crate) const SHELL_IDENTIFIER_RULE: &str =
    "a shell variable name must match [A-Za-z_][A-Za-z0-9_]*";

/// The rule for files keys, as shown to the user.
pub(crate) const RELATIVE_PATH_RULE: &str = "a file path must be relative, made of '/'-separated segments of [A-Za-z0-9_.-], none empty, '.' or '..' or starting with '..'";

/// Checks that `key` is a shell identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_shell_identifier(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks that `key` is a safe relative path.
///
/// Segments are `/`-separated, made of `[A-Za-z0-9_.-]`, not empty, not `.` or `..`, and
/// do not start with `..` (the atomic writer keeps `..data` and `..<timestamp>` entries
/// next to the files). A leading `/` gives an empty first segment and is rejected.
pub(crate) fn is_safe_relative_path(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && !seg.starts_with("..")
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        })
}

/// Fails with [`FormatError::InvalidKey`] for the first key `valid` rejects.
pub(crate) fn check_keys(
    keyed: &BTreeMap<String, &Entry>,
    format: Format,
    rule: &'static str,
    valid: fn(&str) -> bool,
) -> Result<(), FormatError> {
    match keyed.iter().find(|(key, _)| !valid(key)) {
        Some((key, entry)) => Err(FormatError::InvalidKey {
            key: key.clone(),
            name: entry.name.clone(),
            format,
            rule,
        }),
        None => Ok(()),
    }
}

/// Fails with [`FormatError::PathConflict`] when one key is a directory prefix of another
/// (`a` and `a/b`): `a` cannot be a file and a directory at once.
pub(crate) fn check_no_path_prefixes(keyed: &BTreeMap<String, &Entry>) -> Result<(), FormatError> {
    for (key, entry) in keyed {
        let prefix = format!("{key}/");
        let next_below = keyed
            .range(prefix.clone()..)
            .next()
            .filter(|(below, _)| below.starts_with(&prefix));
        if let Some((below, below_entry)) = next_below {
            return Err(FormatError::PathConflict {
                file: key.clone(),
                file_name: entry.name.clone(),
                dir_key: below.clone(),
                dir_name: below_entry.name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{explicit, rel};
    use super::*;

    fn upper(rel: &str) -> String {
        case_key(rel, KeyCase::UpperSnake)
    }

    #[test]
    fn upper_snake_turns_slashes_and_dashes_into_underscores() {
        assert_eq!(upper("db/password"), "DB_PASSWORD");
        assert_eq!(upper("db-password"), "DB_PASSWORD");
        assert_eq!(upper("db.password"), "DB_PASSWORD");
    }

    #[test]
    fn upper_snake_splits_camel_case_at_lower_or_digit_to_upper() {
        assert_eq!(upper("stripeSecretKey/live"), "STRIPE_SECRET_KEY_LIVE");
        assert_eq!(upper("oauth2Token"), "OAUTH2_TOKEN");
        assert_eq!(upper("HTTPServer"), "HTTPSERVER");
        assert_eq!(upper("already_UPPER"), "ALREADY_UPPER");
    }

    #[test]
    fn upper_snake_collapses_runs_and_trims_underscores() {
        assert_eq!(upper("/a//b--c__d/"), "A_B_C_D");
        assert_eq!(upper("_x_"), "X");
        assert_eq!(upper("a-/-B"), "A_B");
        assert_eq!(upper("ünï"), "N");
    }

    #[test]
    fn lower_snake_is_upper_snake_lowercased() {
        assert_eq!(
            case_key("stripeSecretKey/live", KeyCase::LowerSnake),
            "stripe_secret_key_live"
        );
        assert_eq!(case_key("DB/Password", KeyCase::LowerSnake), "db_password");
    }

    #[test]
    fn relative_keeps_the_name_unchanged() {
        assert_eq!(case_key("db/Pass-word", KeyCase::Relative), "db/Pass-word");
    }

    #[test]
    fn explicit_keys_are_used_as_given() {
        let values = vec![explicit("my-Key/x", "v")];
        let keys = output_keys(&values, KeyCase::UpperSnake).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["my-Key/x"]);
    }

    #[test]
    fn keys_come_back_sorted() {
        let values = vec![rel("b", "1"), rel("a", "2"), explicit("C", "3")];
        let keys = output_keys(&values, KeyCase::UpperSnake).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["A", "B", "C"]);
        assert_eq!(keys["A"].value.expose(), "2");
    }

    #[test]
    fn two_parameters_with_one_key_are_a_collision_naming_both() {
        let values = vec![rel("db-password", "s3cret1"), rel("db/password", "s3cret2")];
        let err = output_keys(&values, KeyCase::UpperSnake).unwrap_err();
        assert_eq!(
            err,
            FormatError::KeyCollision {
                key: "DB_PASSWORD".into(),
                first: "/app/db-password".into(),
                second: "/app/db/password".into(),
            }
        );
        let msg = err.to_string();
        assert_eq!(
            msg,
            "parameters /app/db-password and /app/db/password both map to key DB_PASSWORD; \
             use --key-case relative or an explicit --param KEY=NAME"
        );
        assert!(!msg.contains("s3cret"));
    }

    #[test]
    fn an_explicit_key_can_collide_with_a_derived_one() {
        let values = vec![rel("db/password", "x"), explicit("DB_PASSWORD", "y")];
        let err = output_keys(&values, KeyCase::UpperSnake).unwrap_err();
        assert!(
            matches!(err, FormatError::KeyCollision { ref second, .. } if second == "/app/explicit/DB_PASSWORD")
        );
    }

    #[test]
    fn the_same_parameter_twice_with_the_same_value_is_kept_once() {
        let values = vec![rel("a", "v"), rel("a", "v")];
        assert_eq!(output_keys(&values, KeyCase::UpperSnake).unwrap().len(), 1);
    }

    #[test]
    fn a_name_without_letters_or_digits_is_an_empty_key_error_naming_it() {
        let err = output_keys(&[rel("--/", "s3cret")], KeyCase::UpperSnake).unwrap_err();
        assert_eq!(
            err,
            FormatError::EmptyKey {
                name: "/app/--/".into()
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("/app/--/") && msg.contains("--param") && !msg.contains("s3cret"));
        let err = output_keys(&[explicit("", "v")], KeyCase::Relative).unwrap_err();
        assert!(matches!(err, FormatError::EmptyKey { .. }));
    }

    #[test]
    fn shell_identifiers_are_letters_digits_and_underscores_not_starting_with_a_digit() {
        for ok in ["A", "_", "_a1", "DB_PASSWORD", "x9"] {
            assert!(is_shell_identifier(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "a/b", "A B", "Ä", "A=B"] {
            assert!(!is_shell_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn safe_relative_paths_reject_escapes_and_odd_characters() {
        for ok in ["a", "a/b", "db/pass-word.txt", "A_1/.hidden", "a/b.c/d"] {
            assert!(is_safe_relative_path(ok), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", ".", "..", "a/../b", "a/./b", "..data", "a/..x", "a b", "a\\b",
            "ü", "a:b",
        ] {
            assert!(!is_safe_relative_path(bad), "{bad}");
        }
    }

    #[test]
    fn invalid_key_error_names_key_parameter_format_and_rule() {
        let values = vec![explicit("a b", "s3cret")];
        let keyed = output_keys(&values, KeyCase::Relative).unwrap();
        let err = check_keys(
            &keyed,
            Format::Files,
            RELATIVE_PATH_RULE,
            is_safe_relative_path,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"a b\""), "{msg}");
        assert!(msg.contains("/app/explicit/a b"), "{msg}");
        assert!(msg.contains("files output"), "{msg}");
        assert!(msg.contains("[A-Za-z0-9_.-]"), "{msg}");
        assert!(!msg.contains("s3cret"));
    }

    #[test]
    fn a_key_that_is_a_directory_of_another_is_a_path_conflict() {
        let values = vec![rel("a", "1"), rel("a/b", "2"), rel("a-b", "3")];
        let keyed = output_keys(&values, KeyCase::Relative).unwrap();
        let err = check_no_path_prefixes(&keyed).unwrap_err();
        assert_eq!(
            err,
            FormatError::PathConflict {
                file: "a".into(),
                file_name: "/app/a".into(),
                dir_key: "a/b".into(),
                dir_name: "/app/a/b".into(),
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("parameter /app/a is written to file a"),
            "{msg}"
        );
        assert!(
            msg.contains("parameter /app/a/b needs a to be a directory"),
            "{msg}"
        );
    }

    #[test]
    fn siblings_sharing_a_name_prefix_are_not_a_path_conflict() {
        let values = vec![
            rel("a", "1"),
            rel("ab/c", "2"),
            rel("a-b", "3"),
            rel("a.b/c", "4"),
        ];
        let keyed = output_keys(&values, KeyCase::Relative).unwrap();
        assert!(check_no_path_prefixes(&keyed).is_ok());
    }
}
