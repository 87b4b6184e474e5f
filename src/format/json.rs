//! json: one flat, sorted, pretty-printed object of strings, ending with a newline.

use std::collections::BTreeMap;

use super::{Format, FormatError, flat_map};
use crate::secret::SecretBytes;
use crate::values::Entry;

/// Renders the keys as `{"KEY": "value", ...}`.
pub(super) fn render(keyed: &BTreeMap<String, &Entry>) -> Result<SecretBytes, FormatError> {
    let (map, mut out) = flat_map(keyed);
    serde_json::to_writer_pretty(&mut out, &map).map_err(|_| FormatError::Serialize {
        format: Format::Json,
    })?;
    out.push_str("\n");
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::KeyCase;
    use super::super::keys::output_keys;
    use super::super::test_support::{explicit, rel};
    use super::*;
    use proptest::prelude::*;

    fn json(values: &[Entry]) -> String {
        let keyed = output_keys(values, KeyCase::UpperSnake).unwrap();
        String::from_utf8(render(&keyed).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn writes_a_sorted_pretty_object_with_a_trailing_newline() {
        let text = json(&[rel("db/user", "app"), rel("db/password", "p\"w\n")]);
        assert_eq!(
            text,
            "{\n  \"DB_PASSWORD\": \"p\\\"w\\n\",\n  \"DB_USER\": \"app\"\n}\n"
        );
    }

    #[test]
    fn no_values_give_an_empty_object() {
        assert_eq!(json(&[]), "{}\n");
    }

    #[test]
    fn any_non_empty_key_is_allowed() {
        let text = json(&[explicit("a b/c:\"d\"", "v")]);
        let back: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back["a b/c:\"d\""], "v");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parses_back_to_the_same_map(
            map in proptest::collection::btree_map(".{1,12}", ".{0,40}", 0..8)
        ) {
            let entries: Vec<Entry> = map.iter().map(|(k, v)| explicit(k, v)).collect();
            let keyed = output_keys(&entries, KeyCase::UpperSnake).unwrap();
            let bytes = render(&keyed).unwrap();
            prop_assert_eq!(bytes.last(), Some(&b'\n'));
            let back: BTreeMap<String, String> = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(back, map);
        }
    }
}
