#!/usr/bin/env python3
"""ssm-injector demo against a local AWS emulator (moto). Run it through scripts/demo.

Starts tests/support/emulator.py, seeds a few SSM parameters and a Secrets Manager secret
with boto3 (the emulator's "aws" command), renders them with
`ssm-injector render ... --format shell`, shows the command, its exit code and the file,
checks the values by sourcing the file with bash, and cleans up.
Exit status: the render's exit code, or 1 if it exited 0 but the file is wrong.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from emulator_client import Emulator  # noqa: E402
BIN = os.path.abspath(os.environ.get("SSM_INJECTOR_BIN") or os.path.join(REPO, "target", "release", "ssm-injector"))

DB_PASSWORD = "pa$$ w0rd 'quoted' \"double\" #not-a-comment"
API_KEY_V1 = "ak-v1-7f3c9a"
API_KEY_V2 = "ak-v2-e81b44"
STRIPE = {"key": "sk_test_123", "webhook": "whsec_456"}




def seed(emu: Emulator) -> None:
    ssm = lambda **a: emu.aws("ssm", "put_parameter", **a)  # noqa: E731
    ssm(Name="/demo/prod/db/host", Value="db.prod.internal", Type="String")
    ssm(Name="/demo/prod/db/password", Value=DB_PASSWORD, Type="SecureString")
    ssm(Name="/demo/prod/api-key", Value=API_KEY_V1, Type="SecureString")
    ssm(Name="/demo/prod/api-key", Value=API_KEY_V2, Type="SecureString", Overwrite=True)
    emu.aws("ssm", "label_parameter_version", Name="/demo/prod/api-key", ParameterVersion=1,
            Labels=["stable"])
    emu.aws("secretsmanager", "create_secret", Name="demo/stripe", SecretString=json.dumps(STRIPE))
    print("seeded: /demo/prod/db/host (String), /demo/prod/db/password (SecureString),")
    print("        /demo/prod/api-key (SecureString, v1 labelled 'stable', v2 current),")
    print("        Secrets Manager secret demo/stripe (JSON: key, webhook)")


def sourced(path: str) -> dict[str, str] | str:
    """The variables the file defines when sourced by bash with `set -a`, or an error."""
    script = 'set -a; . "$1" || exit 97; exec env -0'
    r = subprocess.run(["bash", "-c", script, "_", path], env={"PATH": "/usr/bin:/bin"},
                       capture_output=True)
    if r.returncode != 0:
        return f"bash could not source it (exit {r.returncode}): {r.stderr.decode(errors='replace').strip()}"
    out = {}
    for item in r.stdout.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            out[k.decode()] = v.decode(errors="replace")
    return out


def main() -> int:
    if not os.access(BIN, os.X_OK):
        print(f"demo: no ssm-injector binary at {BIN} (cargo build --release, or set "
              "SSM_INJECTOR_BIN)", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="ssm-injector-demo-")
    emu = None
    try:
        emu = Emulator("demo")
        print(f"emulator: moto at {emu.urls['moto']}")
        seed(emu)
        out = os.path.join(tmp, "app.env")
        aws_env = {
            "AWS_ENDPOINT_URL": emu.urls["moto"],
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        # The shell's own AWS_* / SSM_INJECTOR_* settings must not leak into the demo.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "SSM_INJECTOR_"))}
        env.update(aws_env)
        argv = [BIN, "render",
                "--path", "/demo/prod/",
                "--param", "API_KEY_STABLE=/demo/prod/api-key:stable",
                "--param", "API_KEY_V2=/demo/prod/api-key:2",
                "--param", "STRIPE_KEY=/aws/reference/secretsmanager/demo/stripe#key",
                "--format", "shell",
                "--output", out]
        shown = os.path.relpath(BIN, REPO) if BIN.startswith(REPO + os.sep) else BIN
        lines = [" ".join(f"{k}={shlex.quote(v)}" for k, v in aws_env.items()),
                 f"  {shlex.quote(shown)} render"]
        lines += [f"    {argv[i]} {shlex.quote(argv[i + 1])}" for i in range(2, len(argv), 2)]
        print()
        print("$ " + " \\\n".join(lines))
        sys.stdout.flush()
        t0 = time.perf_counter()
        code = subprocess.run(argv, env=env, cwd=tmp).returncode
        ms = (time.perf_counter() - t0) * 1000
        print(f"exit code: {code}  ({ms:.0f} ms)")
        if not os.path.exists(out):
            print(f"no output file {out}")
            return code or 1
        ls = subprocess.run(["ls", "-l", out], capture_output=True, text=True).stdout.strip()
        print(ls)
        print(f"--- {out}")
        with open(out, encoding="utf-8", errors="replace") as f:
            text = f.read()
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        print("---")
        return check(out, code)
    finally:
        if emu is not None:
            emu.close()
        shutil.rmtree(tmp, ignore_errors=True)


def check(path: str, code: int) -> int:
    expected = {
        "DB_HOST": "db.prod.internal",
        "DB_PASSWORD": DB_PASSWORD,
        "API_KEY": API_KEY_V2,
        "API_KEY_STABLE": API_KEY_V1,
        "API_KEY_V2": API_KEY_V2,
        "STRIPE_KEY": STRIPE["key"],
    }
    got = sourced(path)
    if isinstance(got, str):
        print(f"check: {got}")
        return code or 1
    bad = [k for k, v in expected.items() if got.get(k) != v]
    for k in bad:
        print(f"check: {k}: expected {expected[k]!r}, sourced {got.get(k)!r}")
    print(f"check (bash `set -a; . file`): {len(expected) - len(bad)}/{len(expected)} values as expected")
    return code or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
