#!/usr/bin/env python3
"""Baseline for bench/: render parameters to a dotenv file with plain boto3, the way
services commonly do it today.

  boto3_render.py --path /app/prod/ [--path ...] [--param KEY=NAME ...] --output FILE

--path: get_parameters_by_path(Path, Recursive=True, WithDecryption=True), following
        NextToken; key = name relative to the path in UPPER_SNAKE.
--param: one get_parameter(Name, WithDecryption=True) call per name (NAME, NAME:label,
        NAME:version, /aws/reference/secretsmanager/SECRET; "#field" picks one key of a
        JSON value).
Writes KEY='value' lines (shell-safe single quotes) to a temp file in the output's
directory, fsync, chmod 0400, rename. AWS settings come from the environment
(AWS_ENDPOINT_URL, AWS_REGION, credentials).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile

import boto3


def upper_snake(rel: str) -> str:
    key = re.sub(r"[^A-Za-z0-9]+", "_", rel).strip("_").upper()
    return "_" + key if key[:1].isdigit() else key


def quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def main() -> int:
    args = render_args(__doc__)

    # botocore reads AWS_DEFAULT_REGION, not AWS_REGION (the Rust SDK's variable).
    ssm = boto3.client("ssm", region_name=os.environ.get("AWS_REGION") or None)
    values: dict[str, str] = {}

    def put(key: str, value: str, source: str) -> None:
        if key in values:
            raise SystemExit(f"boto3_render: two parameters map to key {key} ({source})")
        values[key] = value

    for path in args.path:
        prefix = path.rstrip("/") + "/"
        kwargs = {"Path": path, "Recursive": True, "WithDecryption": True}
        while True:
            page = ssm.get_parameters_by_path(**kwargs)
            for p in page["Parameters"]:
                put(upper_snake(p["Name"][len(prefix):] if p["Name"].startswith(prefix)
                                else p["Name"]), p["Value"], p["Name"])
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token

    for spec in args.param:
        key, sep, name = spec.partition("=")
        if not sep or not key or not name:
            raise SystemExit(f"boto3_render: --param wants KEY=NAME, got {spec!r}")
        name, _, field = name.partition("#")
        value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        if field:
            value = json.loads(value)[field]
            if not isinstance(value, str):
                value = json.dumps(value)
        put(key, value, name)

    write_atomically(args.output, "".join(f"{k}={quote(values[k])}\n" for k in sorted(values)))
    return 0


def render_args(doc: str) -> argparse.Namespace:
    """--path (repeated), --param KEY=NAME (repeated), --output FILE."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--path", action="append", default=[])
    ap.add_argument("--param", action="append", default=[], metavar="KEY=NAME")
    ap.add_argument("--output", required=True)
    return ap.parse_args()


def write_atomically(output: str, text: str) -> None:
    """A temp file in the output's directory, fsync, chmod 0400, rename."""
    out = os.path.abspath(output)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(out))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o400)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    sys.exit(main())
