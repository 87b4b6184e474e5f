//! yaml: one flat mapping of strings that a YAML parser reads back unchanged.
//!
//! serde_yaml_ng quotes strings that would otherwise read as numbers, booleans or null,
//! and uses double quotes with escapes for anything a plain scalar cannot hold.

use std::collections::BTreeMap;

use super::{Format, FormatError, flat_map};
use crate::secret::SecretBytes;
use crate::values::Entry;

/// Renders the keys as a YAML mapping `KEY: value`.
pub(super) fn render(keyed: &BTreeMap<String, &Entry>) -> Result<SecretBytes, FormatError> {
    let (map, mut out) = flat_map(keyed);
    // serde_yaml_ng's errors for plain strings never occur in practice and are not shown,
    // since their text could quote a value.
    serde_yaml_ng::to_writer(&mut out, &map).map_err(|_| FormatError::Serialize {
        format: Format::Yaml,
    })?;
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::KeyCase;
    use super::super::keys::output_keys;
    use super::super::test_support::{explicit, rel};
    use super::*;
    use proptest::prelude::*;

    fn yaml(values: &[Entry]) -> String {
        let keyed = output_keys(values, KeyCase::UpperSnake).unwrap();
        String::from_utf8(render(&keyed).unwrap().to_vec()).unwrap()
    }

    fn parse(text: &str) -> BTreeMap<String, String> {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn writes_a_sorted_flat_mapping() {
        assert_eq!(
            yaml(&[rel("db/user", "app"), rel("db/host", "db.local")]),
            "DB_HOST: db.local\nDB_USER: app\n"
        );
    }

    #[test]
    fn no_values_give_an_empty_mapping_that_parses() {
        let text = yaml(&[]);
        assert!(parse(&text).is_empty(), "{text}");
    }

    #[test]
    fn values_that_look_like_other_types_read_back_as_the_same_strings() {
        let tricky = [
            "true",
            "false",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "null",
            "Null",
            "~",
            "",
            "1",
            "-1",
            "007",
            "0x1F",
            "0o17",
            "1e3",
            "1_000",
            ".inf",
            "-.inf",
            ".nan",
            "1.0",
            "12:30:45",
            "2024-01-01",
            "  leading and trailing  ",
            "a: b",
            "# comment",
            "a #b",
            "- item",
            "? key",
            "[x]",
            "{y}",
            "&anchor",
            "*alias",
            "!tag",
            "%dir",
            "@at",
            "`tick",
            "|",
            ">",
            "'",
            "\"",
            "multi\nline\n",
            "trailing\n\n",
            "\n",
            "\ttab",
            "cr\r\n",
            "ü€😀",
            "\u{85}nel",
            "\u{2028}ls",
            "\u{feff}bom",
            "\u{7}bell",
            "\0nul",
            "---",
            "...",
            "key: value\n- list",
        ];
        let values: Vec<Entry> = tricky
            .iter()
            .enumerate()
            .map(|(i, v)| explicit(&format!("K{i:02}"), v))
            .collect();
        let text = yaml(&values);
        let back = parse(&text);
        for (i, v) in tricky.iter().enumerate() {
            assert_eq!(back[&format!("K{i:02}")], *v, "{text}");
        }
    }

    #[test]
    fn keys_that_look_like_other_types_stay_strings() {
        let keys = ["true", "1", "null", "~", "a: b", "- x", "y"];
        let values: Vec<Entry> = keys.iter().map(|k| explicit(k, "v")).collect();
        let back = parse(&yaml(&values));
        assert_eq!(
            back.keys().map(String::as_str).collect::<Vec<_>>().len(),
            keys.len()
        );
        for k in keys {
            assert_eq!(back[k], "v");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parses_back_to_the_same_map(
            map in proptest::collection::btree_map(
                ".{1,12}",
                prop_oneof!["[ -~\\n\\r\\t]{0,30}", ".{0,30}"],
                0..8,
            )
        ) {
            let entries: Vec<Entry> = map.iter().map(|(k, v)| explicit(k, v)).collect();
            let keyed = output_keys(&entries, KeyCase::UpperSnake).unwrap();
            let bytes = render(&keyed).unwrap();
            let back: BTreeMap<String, String> = serde_yaml_ng::from_slice(&bytes).unwrap();
            prop_assert_eq!(back, map);
        }
    }
}
