//! Strict reference readers for the fuzz targets (compiled only with `cfg(test)` or
//! `cfg(fuzzing)`, which `cargo fuzz` sets).
//!
//! These are not the proof that the env-file dialects round-trip: tests/readers.rs reads
//! every dialect back with its real readers (bash, dash, python-dotenv, node dotenv, and
//! line-for-line ports of compose-go, docker/cli and the kubelet). [`parse_shell`] only
//! lets the fuzzer check the structure of the `shell` output at fuzzing speed.
//!
//! `java-properties` 2.0 rejects the UTF-16 surrogate pairs (`\uD83D\uDE00`) that Java's
//! `Properties.load` reads as one character, a limit of that crate, so [`java_load`] is
//! ours. See docs/fuzzing.md.

/// A strict parser for exactly the `shell` env-file subset that ssm-injector writes and
/// that a POSIX shell reads with `set -a; . FILE`:
///
/// ```text
/// file       = { comment | assignment }
/// comment    = "#" { any byte but "\n" } "\n"          (only at the start of a line)
/// assignment = KEY "=" value "\n"
/// KEY        = [A-Za-z_][A-Za-z0-9_]*
/// value      = { "'" { any character but "'" } "'" | "\'" }
/// ```
///
/// Inside single quotes every character, newlines included, stands for itself; outside,
/// only `\'` (a literal quote) may join two quoted parts. This is what the shell does for
/// this subset; anything outside it (unquoted text, `$`, `"`, a missing newline) is an error
/// rather than a guess, so the round trip fails loudly if the renderer ever leaves it.
pub fn parse_shell(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('#') {
            let end = after.find('\n').ok_or("comment without a newline")?;
            rest = &after[end + 1..];
            continue;
        }
        let key_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("key without =")?;
        let key = &rest[..key_len];
        if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("bad key {key:?}"));
        }
        rest = rest[key_len..]
            .strip_prefix('=')
            .ok_or_else(|| format!("{key}: no = after the key"))?;
        let mut value = String::new();
        loop {
            if let Some(after) = rest.strip_prefix('\'') {
                let end = after
                    .find('\'')
                    .ok_or_else(|| format!("{key}: unterminated quote"))?;
                value.push_str(&after[..end]);
                rest = &after[end + 1..];
            } else if let Some(after) = rest.strip_prefix("\\'") {
                value.push('\'');
                rest = after;
            } else if let Some(after) = rest.strip_prefix('\n') {
                rest = after;
                break;
            } else {
                return Err(format!("{key}: unexpected text after the value"));
            }
        }
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// A reference implementation of Java's `Properties.load(Reader)`, returning errors
/// instead of guessing.
///
/// Natural lines end at `\n`, `\r` or `\r\n`. Leading whitespace (space, tab, form feed) is
/// skipped; blank lines and lines whose first character is `#` or `!` are comments. A line
/// ending in an odd number of backslashes continues on the next line, whose leading
/// whitespace is skipped. The key ends at the first unescaped `=`, `:` or whitespace;
/// whitespace and at most one `=` or `:` then separate it from the value. In keys and values
/// `\uXXXX`, `\t`, `\n`, `\r`, `\f` are escapes and any other escaped character stands for
/// itself. Returns the pairs in file order (Java would keep the last of a repeated key).
pub fn java_load(text: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
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
        let key = load_convert(&line[..key_end])?;
        let value = load_convert(&line[value_start.min(line.len())..])?;
        out.push((key, value));
    }
    Ok(out)
}

/// Reads one logical line (joined continuations, without terminators), skipping comments
/// and blank lines; `None` at the end of input.
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
fn load_convert(s: &[char]) -> Result<String, String> {
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
                let hex: String = s.get(i..i + 4).ok_or("short \\uXXXX")?.iter().collect();
                units.push(u16::from_str_radix(&hex, 16).map_err(|_| "malformed \\uXXXX")?);
                i += 4;
            }
            't' => push('\t', &mut units),
            'r' => push('\r', &mut units),
            'n' => push('\n', &mut units),
            'f' => push('\u{c}', &mut units),
            other => push(other, &mut units),
        }
    }
    String::from_utf16(&units).map_err(|_| "unpaired surrogate".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_reference_parser_reads_joined_quotes_and_newlines() {
        let text = "# header\nA='it'\\''s'\nB='two\nlines'\nC=''\n";
        let got = parse_shell(text).unwrap();
        assert_eq!(
            got,
            vec![
                ("A".into(), "it's".into()),
                ("B".into(), "two\nlines".into()),
                ("C".into(), String::new())
            ]
        );
    }

    #[test]
    fn the_shell_reference_parser_refuses_what_it_does_not_know() {
        for bad in [
            "A=x\n",
            "A='x'",
            "1A='x'\n",
            "A='x' \n",
            "A=\"x\"\n",
            "A='x\n",
        ] {
            assert!(parse_shell(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_properties_reference_parser_follows_java_rules() {
        let text = "# c\n  ! c\n\na=1\nb : 2\nc 3\n  d=x\\\n    y\\\\\ne\\ f=\\u00fc\\t\ng\r\nh=\\\r\n  z\ni==j\nk=\\uD83D\\uDE00";
        let got = java_load(text).unwrap();
        let want: Vec<(String, String)> = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "xy\\"),
            ("e f", "ü\t"),
            ("g", ""),
            ("h", "z"),
            ("i", "=j"),
            ("k", "😀"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(got, want);
    }
}
