//! files: one file per key, the key being its path relative to the output directory.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::keys::{RELATIVE_PATH_RULE, check_keys, check_no_path_prefixes, is_safe_relative_path};
use super::{Format, FormatError};
use crate::secret::SecretBytes;
use crate::values::Entry;

/// Renders each key as a relative path whose content is the raw value (no newline added).
pub(super) fn render(
    keyed: &BTreeMap<String, &Entry>,
) -> Result<BTreeMap<String, SecretBytes>, FormatError> {
    check_keys(
        keyed,
        Format::Files,
        RELATIVE_PATH_RULE,
        is_safe_relative_path,
    )?;
    check_no_path_prefixes(keyed)?;
    Ok(keyed
        .iter()
        .map(|(key, entry)| {
            let content = Zeroizing::new(entry.value.expose().as_bytes().to_vec());
            (key.clone(), content)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::KeyCase;
    use super::super::keys::output_keys;
    use super::super::test_support::{explicit, rel};
    use super::*;

    fn files(
        values: &[Entry],
        case: KeyCase,
    ) -> Result<BTreeMap<String, SecretBytes>, FormatError> {
        render(&output_keys(values, case)?)
    }

    #[test]
    fn writes_one_file_per_key_with_the_raw_value() {
        let tree = files(
            &[
                rel("db/password", "pw\n"),
                rel("api-key", "k\0\u{1}ü"),
                explicit("x.txt", ""),
            ],
            KeyCase::Relative,
        )
        .unwrap();
        let got: Vec<(&str, &[u8])> = tree
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("api-key", "k\0\u{1}ü".as_bytes()),
                ("db/password", b"pw\n".as_slice()),
                ("x.txt", b"".as_slice()),
            ]
        );
    }

    #[test]
    fn other_key_cases_name_the_files() {
        let tree = files(&[rel("db/password", "pw")], KeyCase::UpperSnake).unwrap();
        assert_eq!(tree.keys().collect::<Vec<_>>(), ["DB_PASSWORD"]);
    }

    #[test]
    fn unsafe_paths_are_rejected_naming_the_parameter() {
        for key in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "..data",
            "a b",
            "a/",
        ] {
            let err = files(&[explicit(key, "s3cret")], KeyCase::Relative).unwrap_err();
            let FormatError::InvalidKey { name, format, .. } = &err else {
                panic!("{key}: {err:?}");
            };
            assert_eq!(*format, Format::Files);
            assert_eq!(name, &format!("/app/explicit/{key}"));
            assert!(!err.to_string().contains("s3cret"));
        }
    }

    #[test]
    fn a_file_that_another_key_needs_as_a_directory_is_rejected() {
        let err = files(
            &[rel("db", "s3cret"), rel("db/password", "s3cret")],
            KeyCase::Relative,
        )
        .unwrap_err();
        assert!(matches!(err, FormatError::PathConflict { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("/app/db ") && msg.contains("/app/db/password"),
            "{msg}"
        );
        assert!(!msg.contains("s3cret"));
    }
}
