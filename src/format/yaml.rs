//! yaml: one flat mapping of strings that every common YAML reader reads back unchanged,
//! YAML 1.1 readers (PyYAML, SnakeYAML 1.x, libyaml, Ruby's Psych) and YAML 1.2 readers
//! (ruamel.yaml, serde_yaml_ng) alike.
//!
//! Every scalar, keys and values, is written double-quoted, and the file is pure ASCII:
//!
//! * **Why quote everything.** A plain scalar is resolved by the reader's schema, and the
//!   schemas disagree: YAML 1.1 reads `yes`, `off`, `y`, `1:20` (sexagesimal), `0b101`,
//!   `1_000`, `2001-12-14`, `=` (the value tag) and `<<` (the merge key) as non-strings,
//!   and PyYAML fails on a whole file for `=` or `<<`, while a YAML 1.2 reader takes them
//!   as strings. Deciding "safe to leave plain" would mean tracking every reader's regular
//!   expressions; a quoted scalar is a string in every schema (only plain scalars are
//!   resolved), so quoting everything needs no list and cannot miss a case.
//! * **Why double quotes.** They are the only style that can carry every character on one
//!   line: line breaks (LF, CR, NEL, U+2028/9, each a line break to YAML 1.1 and folded
//!   inside any quoted scalar), control characters and the BOM are written as escapes.
//!   Single quotes cannot hold them.
//! * **Which escapes.** Only those every reader decodes the same: `\"`, `\\`, `\t`, `\n`,
//!   `\r`, and `\uXXXX` / `\UXXXXXXXX` for every other character outside printable ASCII
//!   (`\U` above U+FFFF: PyYAML reads a `\u` surrogate pair as two lone surrogates, and
//!   libyaml refuses it). The output is therefore pure ASCII, so a reader that opens it
//!   with the wrong encoding (Java 17's default in a POSIX locale is ASCII) still reads the
//!   right characters.
//! * **Long keys.** A key whose quoted form is longer than [`SIMPLE_KEY_MAX`] characters is
//!   written as an explicit key (`? "KEY"` then `: "value"`): readers look for the `:` of
//!   an implicit key within 1024 characters only.
//!
//! The tests read the output with PyYAML (safe, full and libyaml loaders), ruamel.yaml
//! (YAML 1.2), SnakeYAML 1.33 and serde_yaml_ng (tests/readers.rs, and the tests below).

use std::collections::BTreeMap;
use std::fmt;

use super::{FormatError, flat_map};
use crate::secret::SecretBytes;
use crate::values::Entry;

/// The longest quoted key written as an implicit key `"KEY": value`; PyYAML, libyaml and
/// SnakeYAML give up looking for its `:` after 1024 characters.
const SIMPLE_KEY_MAX: usize = 1000;

/// Renders the keys as a YAML mapping `"KEY": "value"` (`{}` when there are none).
pub(super) fn render(keyed: &BTreeMap<String, &Entry>) -> Result<SecretBytes, FormatError> {
    let (map, mut out) = flat_map(keyed);
    if map.is_empty() {
        out.push_str("{}\n");
        return Ok(out.into_bytes());
    }
    for (key, value) in map {
        // Writing into a SecretBuf cannot fail.
        if quoted_len(key) > SIMPLE_KEY_MAX {
            out.push_str("? ");
            let _ = quote_into(&mut out, key);
            out.push_str("\n: ");
        } else {
            let _ = quote_into(&mut out, key);
            out.push_str(": ");
        }
        let _ = quote_into(&mut out, value);
        out.push_char('\n');
    }
    Ok(out.into_bytes())
}

/// The length of `s` written by [`quote_into`], quotes included.
fn quoted_len(s: &str) -> usize {
    /// A writer that only counts.
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    // Counting cannot fail.
    let _ = quote_into(&mut count, s);
    count.0
}

/// Writes `s` as a double-quoted, pure-ASCII YAML scalar.
fn quote_into(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\t' => out.write_str("\\t")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            ' '..='~' => out.write_char(c)?,
            c if u32::from(c) <= 0xFFFF => write!(out, "\\u{:04X}", u32::from(c))?,
            c => write!(out, "\\U{:08X}", u32::from(c))?,
        }
    }
    out.write_char('"')
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
            "\"DB_HOST\": \"db.local\"\n\"DB_USER\": \"app\"\n"
        );
    }

    #[test]
    fn every_key_and_value_is_double_quoted_in_pure_ascii() {
        let text = yaml(&[
            explicit("yes", "no"),
            explicit("<<", "="),
            explicit("k", "1:20"),
            explicit("t", "a\"b\\c\td\ne\rf"),
            explicit("u", "\0\u{7f}\u{85}\u{a0}ü\u{2028}\u{2029}\u{feff}😀"),
        ]);
        assert_eq!(
            text,
            concat!(
                "\"<<\": \"=\"\n",
                "\"k\": \"1:20\"\n",
                "\"t\": \"a\\\"b\\\\c\\td\\ne\\rf\"\n",
                "\"u\": \"\\u0000\\u007F\\u0085\\u00A0\\u00FC\\u2028\\u2029\\uFEFF\\U0001F600\"\n",
                "\"yes\": \"no\"\n",
            )
        );
    }

    #[test]
    fn a_key_too_long_for_an_implicit_key_is_written_as_an_explicit_key() {
        let short = "k".repeat(SIMPLE_KEY_MAX - 2);
        let long = "😀".repeat(SIMPLE_KEY_MAX / 10);
        let text = yaml(&[explicit(&short, "a"), explicit(&long, "b")]);
        assert!(text.starts_with(&format!("\"{short}\": \"a\"\n")), "{text}");
        assert!(text.contains("\n? \"\\U0001F600"), "{text}");
        assert!(text.contains("\"\n: \"b\"\n"), "{text}");
        let back = parse(&text);
        assert_eq!((back[&short].as_str(), back[&long].as_str()), ("a", "b"));
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
            "Y",
            "NO",
            "On",
            "TRUE",
            "NULL",
            "1:20",
            "190:20:30",
            "0b101",
            "0o17",
            "+0x_1F",
            "1_000.5",
            ".Inf",
            "-.INF",
            ".NaN",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 -5",
            "=",
            "<<",
            "\u{2029}ps",
            "\r",
            "\u{1}\u{1f}\u{9f}",
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
