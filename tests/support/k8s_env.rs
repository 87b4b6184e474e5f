//! A port of the kubelet's env-file reader, for checking what `--format k8s-env` writes
//! exactly as the kubelet will read it (`env[].valueFrom.fileKeyRef`, Kubernetes 1.35+).
//!
//! Source: kubernetes/kubernetes `pkg/kubelet/util/env/env_util.go`, `ParseEnv(envFilePath,
//! key)` (the strict single-quote parser of KEP-3721, as of Kubernetes 1.35/1.36), read
//! through Go's `bufio.Scanner` with its defaults. Kept rule for rule:
//!
//! * lines as `bufio.ScanLines` gives them: split at `\n`, one trailing `\r` dropped, a
//!   line longer than the scanner's 64 KiB buffer (`bufio.MaxScanTokenSize`) is an error;
//! * leading spaces and tabs of a line are ignored; blank lines and lines starting with
//!   `#` are skipped (outside a value);
//! * `NAME='value'`: no whitespace before `=` (an error); whitespace after `=` makes the
//!   value empty (and the rest of the line is not read, as in bash);
//! * the value is everything up to the next `'`, literally (no escapes), across lines
//!   (each line break kept as `\n`); after the closing quote only spaces, tabs and a
//!   `#` comment may follow;
//! * the first line whose name is the key wins; a key not in the file gives `""` (the
//!   kubelet's caller then treats the variable as missing, as it does an empty value).

/// Go's `bufio.MaxScanTokenSize`: the longest line (with its `\n`) the scanner reads.
const MAX_LINE: usize = 64 * 1024;

/// The lines of `content` as `bufio.ScanLines` yields them.
fn scan_lines(content: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut lines = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (line, taken) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        if taken > MAX_LINE {
            return Err("error reading environment variable file: token too long".to_owned());
        }
        lines.push(line.strip_suffix(b"\r").unwrap_or(line));
        rest = &rest[taken..];
    }
    Ok(lines)
}

fn trim_left(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &s[n..]
}

fn trim_right(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    &s[..s.len() - n]
}

/// The kubelet's `ParseEnv(file, key)` on the file's bytes: the value of `key`, `""` when
/// the file does not have it, or the error the kubelet would report.
pub fn parse_env(content: &[u8], key: &str) -> Result<String, String> {
    let lines = scan_lines(content)?;
    let mut i = 0;
    while i < lines.len() {
        let line_num = i + 1;
        let line = trim_left(lines[i]);
        i += 1;
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let Some(eq) = line.iter().position(|b| *b == b'=') else {
            return Err(format!("line {line_num}: missing '='"));
        };
        let name_part = &line[..eq];
        let name = trim_right(name_part);
        if name.is_empty() {
            return Err(format!("line {line_num}: empty variable name"));
        }
        if name != name_part {
            return Err(format!(
                "line {line_num}: whitespace before '=' is not allowed"
            ));
        }
        let value_part = &line[eq + 1..];
        let value = trim_left(value_part);
        if value != value_part {
            if name == key.as_bytes() {
                return Ok(String::new());
            }
            continue;
        }
        let Some(mut rest) = value.strip_prefix(b"'") else {
            return Err(format!(
                "line {line_num}: value must be enclosed in single quotes"
            ));
        };
        let mut found: Vec<u8> = Vec::new();
        loop {
            if let Some(close) = rest.iter().position(|b| *b == b'\'') {
                found.extend_from_slice(&rest[..close]);
                let after = trim_left(&rest[close + 1..]);
                if !after.is_empty() && !after.starts_with(b"#") {
                    return Err(format!(
                        "line {}: unexpected content after closing quote",
                        i
                    ));
                }
                if name == key.as_bytes() {
                    return String::from_utf8(found).map_err(|e| e.to_string());
                }
                break;
            }
            found.extend_from_slice(rest);
            found.push(b'\n');
            let Some(next) = lines.get(i) else {
                return Err(format!(
                    "starting at line {line_num}: unclosed single quote"
                ));
            };
            i += 1;
            rest = next;
        }
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    #[test]
    fn the_kubelets_rules() {
        let file = b"# comment\n\n  A='plain'\nB='multi\nline # not a comment'  # comment\nC= 'ignored'\nE='dos'\r\nF=''\nA='second'\n";
        let ok = |k: &str| parse_env(file, k).unwrap_or_else(|e| panic!("{k}: {e}"));
        assert_eq!(ok("A"), "plain");
        assert_eq!(ok("B"), "multi\nline # not a comment");
        assert_eq!(ok("C"), "");
        assert_eq!(ok("E"), "dos");
        assert_eq!(ok("F"), "");
        assert_eq!(ok("MISSING"), "");
        // A bad line before the key is an error for every key after it.
        for bad in [
            &b"X='it'\''s'\nK='v'\n"[..],
            b"X=plain\nK='v'\n",
            b"X ='v'\nK='v'\n",
            b"X\nK='v'\n",
            b"K='unclosed\n",
        ] {
            assert!(
                parse_env(bad, "K").is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("K='{}'\n", "x".repeat(64 * 1024));
        assert!(parse_env(long.as_bytes(), "K").is_err());
    }
}
