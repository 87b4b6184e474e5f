"""Readers of env files for tests/readers.rs: the real python-dotenv, and line-for-line
ports of the Go readers that cannot run here (no Go toolchain, no docker, no kubelet).

Usage: python readers.py READER[,READER...] FILE
Prints one JSON object: {READER: {"values": {KEY: VALUE}, "error": null | "message"}}.
"values" holds every variable the reader would set (for the kubelet, every key it would
find, the first of a repeated key, as ParseEnv returns the first match).

The ports, each beside its source (read for this port; keep them in step when the
upstream file changes):

- compose: compose-go v2.13.0 dotenv/parser.go (docker compose's `env_file` reader),
  https://github.com/compose-spec/compose-go/blob/v2.13.0/dotenv/parser.go. Variable
  interpolation (template.Substitute) is not ported: a value that would be interpolated
  is reported as an error, so the test can only pass when no `$` reaches it.
- docker: docker/cli pkg/kvfile/kvfile.go (`docker run --env-file`), commit
  00155964f781d6b8a93f8dd42c979bc649d2456f,
  https://github.com/docker/cli/blob/00155964f781d6b8a93f8dd42c979bc649d2456f/pkg/kvfile/kvfile.go
  (the version that strips one pair of matching quotes; older docker/cli opts/envfile.go
  does not, and the docker dialect refuses every value where that differs).
- kubelet: kubernetes pkg/kubelet/util/env/env_util.go ParseEnv, the strict single-quote
  parser of KEP-3721 (EnvFiles, beta in 1.35),
  https://github.com/kubernetes/kubernetes/blob/master/pkg/kubelet/util/env/env_util.go.

Go's bufio.Scanner (ScanLines, default 64 KiB buffer) is ported as go_scan_lines.
"""

import json
import re
import sys

# bufio.MaxScanTokenSize: the buffer must hold a line and its LF.
MAX_SCAN_TOKEN_SIZE = 64 * 1024

# Go's unicode.IsSpace.
GO_UNICODE_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
) + "\u2028\u2029\u202f\u205f\u3000"


class ReadError(Exception):
    pass


def go_scan_lines(data: bytes):
    """bufio.Scanner with ScanLines: split at LF, drop one CR before it, ErrTooLong when a
    line and its LF do not fit the 64 KiB buffer."""
    lines = []
    i = 0
    while i < len(data):
        j = data.find(b"\n", i)
        end = len(data) if j == -1 else j
        if end - i + 1 > MAX_SCAN_TOKEN_SIZE:
            raise ReadError("bufio.Scanner: token too long")
        line = data[i:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        lines.append(line)
        if j == -1:
            break
        i = j + 1
    return lines


# ---------------------------------------------------------------- python-dotenv (real)


def read_python_dotenv(path):
    from dotenv import dotenv_values

    return dict(dotenv_values(path))


# ---------------------------------------------------------------- compose-go (port)

COMPOSE_SPACE = "\t\v\f\r \x85\xa0"  # parser.go isSpace
_compose_escape = re.compile(r'(\\(?:[abcfnrtv$"\\]|0\d{0,3}))')
_go_re2_export = re.compile(r"export[\t\n\f\r ]+")  # RE2 \s is [\t\n\f\r ]
_go_simple_escapes = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"',
}


def _compose_expand_escapes(s):
    def one(m):
        match = m.group(0)
        if match == "\\$":
            return "$$"
        if match.startswith("\\0"):
            digits = match[2:]
            # strconv.UnquoteChar needs exactly three octal digits, at most 255.
            if len(digits) == 3 and all(c in "01234567" for c in digits) and int(digits, 8) < 256:
                return chr(int(digits, 8))
            return match
        return _go_simple_escapes.get(match[1], match)

    return _compose_escape.sub(one, s)


def _compose_expand_variables(value):
    if "$" in value:
        raise ReadError("compose would interpolate this value (not ported)")
    return value


def _compose_valid_key_rune(r):
    return r in "_.-[]" or r.isalpha() or r.isdigit()


def read_compose(path):
    src = open(path, "rb").read().decode("utf-8")
    src = src.removeprefix("\ufeff")
    out = {}
    cutset = src
    while True:
        # getStatementStart
        while True:
            pos = next((i for i, c in enumerate(cutset) if c not in GO_UNICODE_SPACE), -1)
            if pos == -1:
                cutset = ""
                break
            cutset = cutset[pos:]
            if cutset[0] != "#":
                break
            nl = cutset.find("\n")
            if nl == -1:
                cutset = ""
                break
            cutset = cutset[nl:]
        if cutset == "":
            break
        # locateKeyName
        s = cutset
        if _go_re2_export.match(s):
            s = s[len("export"):].lstrip(COMPOSE_SPACE)
        key, offset, inherited = "", 0, False
        for i, r in enumerate(s):
            if r in COMPOSE_SPACE:
                continue
            if r in "=:\n":
                key, offset, inherited = s[:i], i + 1, r == "\n"
                break
            if not _compose_valid_key_rune(r):
                raise ReadError(f"unexpected character {r!r} in variable name")
        if s == "":
            raise ReadError("zero length string")
        key = key.rstrip(GO_UNICODE_SPACE)
        rest = s[offset:].lstrip(COMPOSE_SPACE)
        if " " in key:
            raise ReadError("key cannot contain a space")
        if inherited:
            cutset = rest
            continue
        # extractVarValue
        quote = rest[:1]
        if quote not in ("'", '"'):
            value, _, rest = rest.partition("\n")
            value = value.split(" #", 1)[0].rstrip(GO_UNICODE_SPACE)
            out[key] = _compose_expand_variables(value)
            cutset = rest
            continue
        chars = []
        escaped = False
        for i in range(1, len(rest)):
            c = rest[i]
            if escaped:
                escaped = False
                if c != quote:
                    chars.append("\\")
                chars.append(c)
                continue
            if c == "\\":
                escaped = True
            elif c == quote:
                value = "".join(chars)
                cutset = rest[i + 1:]
                break
            else:
                chars.append(c)
        else:
            raise ReadError("unterminated quoted value")
        if quote == '"':
            value = _compose_expand_variables(_compose_expand_escapes(value))
        out[key] = value
    return out


# ---------------------------------------------------------------- docker (port)


def _docker_trim_quotes(value):
    if len(value) < 2:
        return value
    for q in ("'", '"'):
        if value[0] == q and value[-1] == q:
            return value[1:-1]
    return value


def read_docker(path):
    out = {}
    for n, raw in enumerate(go_scan_lines(open(path, "rb").read()), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ReadError(f"invalid utf8 bytes at line {n}")
        if n == 1:
            line = line.removeprefix("\ufeff")
        line = line.lstrip(GO_UNICODE_SPACE)
        if line == "" or line[0] == "#":
            continue
        key, has_value, value = line.partition("=")
        if key == "":
            raise ReadError(f"no variable name on line {n}")
        if " " in key or "\t" in key:
            raise ReadError(f"variable on line {n} contains whitespaces")
        if has_value:
            out[key] = _docker_trim_quotes(value)
    return out


# ---------------------------------------------------------------- kubelet (port)


def kubelet_statements(data: bytes):
    """ParseEnv's loop, yielding (name, value) for every statement in file order instead of
    returning at the wanted key; raises where ParseEnv would return an error."""
    lines = iter(enumerate(go_scan_lines(data), 1))
    for num, line in lines:
        line = line.lstrip(b" \t")
        if line == b"" or line.startswith(b"#"):
            continue
        eq = line.find(b"=")
        if eq == -1:
            raise ReadError(f"line {num}: missing '='")
        name_part = line[:eq]
        name = name_part.rstrip(b" \t")
        if name == b"":
            raise ReadError(f"line {num}: empty variable name")
        if name_part != name:
            raise ReadError(f"line {num}: whitespace before '=' is not allowed")
        value_part = line[eq + 1:]
        trimmed = value_part.lstrip(b" \t")
        if value_part != trimmed:
            yield name, b""
            continue
        if not trimmed.startswith(b"'"):
            raise ReadError(f"line {num}: value must be enclosed in single quotes")
        builder = b""
        rest = trimmed[1:]
        while True:
            closing = rest.find(b"'")
            if closing != -1:
                builder += rest[:closing]
                after = rest[closing + 1:].lstrip(b" \t")
                if after != b"" and not after.startswith(b"#"):
                    raise ReadError(f"line {num}: unexpected content after closing quote")
                yield name, builder
                break
            builder += rest + b"\n"
            nxt = next(lines, None)
            if nxt is None:
                raise ReadError("unclosed single quote")
            num, rest = nxt


def read_kubelet(path):
    out = {}
    for name, value in kubelet_statements(open(path, "rb").read()):
        # Go strings hold bytes; every value we write is UTF-8.
        out.setdefault(name.decode("utf-8"), value.decode("utf-8"))
    return out


READERS = {
    "python-dotenv": read_python_dotenv,
    "compose": read_compose,
    "docker": read_docker,
    "kubelet": read_kubelet,
}


def main():
    names, path = sys.argv[1].split(","), sys.argv[2]
    result = {}
    for name in names:
        try:
            result[name] = {"values": READERS[name](path), "error": None}
        except (ReadError, UnicodeDecodeError) as e:
            result[name] = {"values": {}, "error": str(e)}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
