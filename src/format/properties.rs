//! properties: a pure-ASCII Java `.properties` file that `Properties.load` reads back.
//!
//! One `key=value` line per key after a header comment. Escapes follow
//! `Properties.store`: `\\`, `\n`, `\r`, `\t`, `\f` everywhere; in keys also space, `:`,
//! `=`, `#` and `!`; in values a leading space. Every character outside printable ASCII
//! is written as `\uXXXX` (two escapes, a UTF-16 surrogate pair, above U+FFFF).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{FormatError, GENERATED_HEADER, SecretBuf};
use crate::secret::SecretBytes;
use crate::values::Entry;

/// Renders the keys as a `.properties` file.
pub(super) fn render(keyed: &BTreeMap<String, &Entry>) -> Result<SecretBytes, FormatError> {
    let size: usize = keyed
        .iter()
        .map(|(k, e)| k.len() + e.value.expose().len() + 2)
        .sum();
    let mut out = SecretBuf::with_capacity(GENERATED_HEADER.len() + size + size / 4);
    out.push_str(GENERATED_HEADER);
    for (key, entry) in keyed {
        escape_into(&mut out, key, true);
        out.push_char('=');
        escape_into(&mut out, entry.value.expose(), false);
        out.push_char('\n');
    }
    Ok(out.into_bytes())
}

/// Appends `s` escaped as a key (`is_key`) or a value.
fn escape_into(out: &mut SecretBuf, s: &str, is_key: bool) {
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            '=' | ':' | '#' | '!' if is_key => {
                out.push_char('\\');
                out.push_char(c);
            }
            ' '..='~' => out.push_char(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing into a SecretBuf cannot fail.
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::KeyCase;
    use super::super::keys::output_keys;
    use super::super::test_support::{explicit, rel};
    use super::*;
    use proptest::prelude::*;

    fn properties(values: &[Entry]) -> String {
        let keyed = output_keys(values, KeyCase::UpperSnake).unwrap();
        String::from_utf8(render(&keyed).unwrap().to_vec()).unwrap()
    }

    /// A reference implementation of Java's `Properties.load(Reader)`.
    ///
    /// Natural lines end at `\n`, `\r` or `\r\n`. Leading whitespace (space, tab, form
    /// feed) is skipped; blank lines and lines whose first character is `#` or `!` are
    /// comments. A line ending in an odd number of backslashes continues on the next
    /// line, whose leading whitespace is skipped. The key ends at the first unescaped `=`,
    /// `:` or whitespace; whitespace and at most one `=` or `:` then separate it from the
    /// value. In keys and values `\uXXXX`, `\t`, `\n`, `\r`, `\f` are escapes and any
    /// other escaped character stands for itself.
    fn java_load(text: &str) -> BTreeMap<String, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut map = BTreeMap::new();
        let mut pos = 0;
        while let Some(line) = read_logical_line(&chars, &mut pos) {
            let mut key_end = 0;
            let mut value_start = line.len();
            let mut has_sep = false;
            let mut backslash = false;
            while key_end < line.len() {
                let c = line[key_end];
                if (c == '=' || c == ':') && !backslash {
                    value_start = key_end + 1;
                    has_sep = true;
                    break;
                } else if matches!(c, ' ' | '\t' | '\u{c}') && !backslash {
                    value_start = key_end + 1;
                    break;
                }
                backslash = c == '\\' && !backslash;
                key_end += 1;
            }
            while value_start < line.len() {
                let c = line[value_start];
                if !matches!(c, ' ' | '\t' | '\u{c}') {
                    if !has_sep && (c == '=' || c == ':') {
                        has_sep = true;
                    } else {
                        break;
                    }
                }
                value_start += 1;
            }
            let key = load_convert(&line[..key_end]);
            let value = load_convert(&line[value_start.min(line.len())..]);
            map.insert(key, value);
        }
        map
    }

    /// Reads one logical line (joined continuations, without terminators), skipping
    /// comments and blank lines; `None` at the end of input.
    fn read_logical_line(chars: &[char], pos: &mut usize) -> Option<Vec<char>> {
        let mut line = Vec::new();
        let mut skip_ws = true;
        let mut is_comment = false;
        let mut new_line = true;
        let mut appended = false;
        let mut backslash = false;
        loop {
            let Some(&c) = chars.get(*pos) else {
                if is_comment || line.is_empty() {
                    return None;
                }
                if backslash {
                    line.pop();
                }
                return Some(line);
            };
            *pos += 1;
            if skip_ws {
                if matches!(c, ' ' | '\t' | '\u{c}') || (!appended && (c == '\r' || c == '\n')) {
                    continue;
                }
                skip_ws = false;
                appended = false;
            }
            if new_line {
                new_line = false;
                if c == '#' || c == '!' {
                    is_comment = true;
                    continue;
                }
            }
            if c != '\n' && c != '\r' {
                line.push(c);
                backslash = c == '\\' && !backslash;
                continue;
            }
            // A line terminator.
            if c == '\r' && chars.get(*pos) == Some(&'\n') {
                *pos += 1;
            }
            if is_comment || line.is_empty() {
                is_comment = false;
                new_line = true;
                skip_ws = true;
                line.clear();
                backslash = false;
                continue;
            }
            if backslash {
                line.pop();
                backslash = false;
                skip_ws = true;
                appended = true;
                continue;
            }
            return Some(line);
        }
    }

    /// Resolves escapes in a key or value.
    fn load_convert(s: &[char]) -> String {
        let mut units: Vec<u16> = Vec::new();
        fn push(c: char, units: &mut Vec<u16>) {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            i += 1;
            if c != '\\' {
                push(c, &mut units);
                continue;
            }
            let Some(&e) = s.get(i) else { break };
            i += 1;
            match e {
                'u' => {
                    let hex: String = s[i..i + 4].iter().collect();
                    units.push(u16::from_str_radix(&hex, 16).expect("malformed \\uxxxx"));
                    i += 4;
                }
                't' => push('\t', &mut units),
                'r' => push('\r', &mut units),
                'n' => push('\n', &mut units),
                'f' => push('\u{c}', &mut units),
                other => push(other, &mut units),
            }
        }
        String::from_utf16(&units).expect("valid UTF-16")
    }

    #[test]
    fn reference_parser_follows_java_rules() {
        let text = "# comment\n  ! also a comment\n\na=1\nb : 2\nc 3\n  d=x\\\n    y\\\\\ne\\ f=\\u00fc\\t\ng\r\nh=\\\r\n  z\ni==j";
        let map = java_load(text);
        let want: BTreeMap<String, String> = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "xy\\"),
            ("e f", "ü\t"),
            ("g", ""),
            ("h", "z"),
            ("i", "=j"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(map, want);
    }

    #[test]
    fn starts_with_a_header_and_writes_sorted_key_value_lines() {
        assert_eq!(
            properties(&[rel("db/user", "app"), rel("db/host", "h:1")]),
            "# generated by ssm-injector; do not edit\nDB_HOST=h:1\nDB_USER=app\n"
        );
    }

    #[test]
    fn keys_escape_separators_comment_markers_and_spaces() {
        let text = properties(&[explicit("a b=c:d#e!f\\g", "v")]);
        assert!(text.ends_with("a\\ b\\=c\\:d\\#e\\!f\\\\g=v\n"), "{text}");
        let text = properties(&[explicit("#k", "v")]);
        assert!(text.ends_with("\n\\#k=v\n"), "{text}");
    }

    #[test]
    fn values_escape_backslashes_leading_spaces_and_control_characters() {
        let text = properties(&[rel("a", "  x y\\z\n\r\t\u{c}=:#!")]);
        assert!(text.ends_with("A=\\  x y\\\\z\\n\\r\\t\\f=:#!\n"), "{text}");
    }

    #[test]
    fn non_ascii_becomes_unicode_escapes_with_surrogate_pairs() {
        let text = properties(&[rel("a", "ü€😀\u{7f}\0")]);
        assert!(
            text.ends_with("A=\\u00FC\\u20AC\\uD83D\\uDE00\\u007F\\u0000\n"),
            "{text}"
        );
        assert!(text.is_ascii());
    }

    #[test]
    fn tricky_values_read_back_with_java_rules() {
        let tricky = [
            "",
            " ",
            "  lead",
            "trail  ",
            "a=b",
            ":c",
            "=d",
            "#e",
            "!f",
            "\\",
            "\\\n",
            "x\\",
            "line\ncont\\",
            "\r\n",
            "\u{c}ff",
            "ü€😀",
            "\u{10ffff}",
        ];
        let values: Vec<Entry> = tricky
            .iter()
            .enumerate()
            .map(|(i, v)| explicit(&format!("k{i:02}"), v))
            .collect();
        let back = java_load(&properties(&values));
        for (i, v) in tricky.iter().enumerate() {
            assert_eq!(back[&format!("k{i:02}")], *v);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parses_back_with_java_rules_to_the_same_map(
            map in proptest::collection::btree_map(
                prop_oneof!["[ -~\\n\\r\\t]{1,12}", ".{1,8}"],
                prop_oneof!["[ -~\\n\\r\\t\\x0c]{0,30}", ".{0,20}"],
                0..8,
            )
        ) {
            let entries: Vec<Entry> = map.iter().map(|(k, v)| explicit(k, v)).collect();
            let keyed = output_keys(&entries, KeyCase::UpperSnake).unwrap();
            let bytes = render(&keyed).unwrap();
            prop_assert!(bytes.is_ascii());
            let text = std::str::from_utf8(&bytes).unwrap();
            prop_assert_eq!(java_load(text), map);
        }
    }
}
