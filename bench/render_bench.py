#!/usr/bin/env python3
"""Bench: `ssm-injector render` vs boto3, Powertools, the node SDK v3 and the AWS CLI
against moto, and against the bare round trips of the same calls.

Run through bench/run (venv, node packages, release build). One emulator
(tests/support/emulator.py) for the whole run; seeds
  /bench/p1000/...    1,000 parameters, String and SecureString, 1-3 levels deep
  /bench/p100/...       100 parameters, same shape
  /bench/names/nNNN     100 parameters for the by-name scenario
  /bench/names10/nNNN    10 parameters for the small by-name scenario
and for each scenario (by path 100, by path 1,000, by name 100, by name 10) runs each tool
--runs times (default 5; runs interleaved tool by tool, after one untimed warm-up run
whose output is checked) with AWS_ENDPOINT_URL = moto directly, then once more through
the emulator's counting proxy to count the API calls.

Bare round trips (the "bare" row, in the same interleaved runs): the API calls a render
needs, made one after the other from this process on one new kept-alive HTTP connection
(http.client, a JSON body, no SDK, no signing: moto does not check signatures), timed
from before the connect to the last answer. By path that is every page in order (each
needs the previous page's NextToken); by name one GetParameters per 10 names, in
sequence. No process start, no credential or config resolution, no file write: the
floor a tool's wall time is compared with ("x bare"). Goals (issue 18), checked at the
end: ssm-injector at or under 1.0x bare for 1,000 by path and faster than every peer
there; 1.1x for 100 by path or by name; 1.3x for 10 by name.

Tools
  ssm-injector  target/release/ssm-injector (or $SSM_INJECTOR_BIN) render --path P
                --format shell --output F; by name: 100 --param KEY=NAME flags
  boto3         bench/boto3_render.py: get_parameters_by_path following NextToken, or
                one get_parameter per name; writes the same kind of dotenv file
  powertools    bench/powertools_render.py: Powertools for AWS Lambda (Python),
                parameters.get_parameters (by path) / get_parameters_by_name (10 a call)
  node-sdk-v3   node bench/node/render.mjs: @aws-sdk/client-ssm, the paginator by path,
                GetParameters of 10 names in parallel by name (scripts/setup-node bench/node)
  ssm-inj-base  with --baseline FILE: that build of ssm-injector, in the same runs
                (before/after a change)
  aws-cli       .venv/bin/aws ssm get-parameters-by-path --path P --recursive
                --with-decryption (it paginates itself); by name: aws ssm get-parameters
                --names (10 per call), 10 calls in sequence
  sdk-floor     bench/sdk_floor.rs --render: the AWS SDK for Rust alone with
                ssm-injector's SDK configuration, the same calls in sequence, the values
                written as Vn='value' lines: the floor of any tool built on the SDK
                (cargo build --release --example sdk_floor)

Wall time and peak RSS come from bench/rss_launch.c (fork, exec, wait4 with a tiny
parent, so ru_maxrss is the tool's own peak: a child of this Python process would inherit
its ~14 MiB as a floor). For boto3 and the CLI the RSS is the Python interpreter's; for
the by-name CLI row wall = sum of the 10 calls and RSS = the largest of them.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from emulator_client import Emulator  # noqa: E402
BIN = os.path.abspath(os.environ.get("SSM_INJECTOR_BIN") or os.path.join(REPO, "target", "release", "ssm-injector"))
VENV_BIN = os.path.dirname(sys.executable)
AWS_CLI = os.path.join(VENV_BIN, "aws")
NODE_DIR = os.path.join(BENCH, "node")
TOOLS = ["ssm-injector", "boto3", "powertools", "node-sdk-v3", "aws-cli", "sdk-floor"]
SDK_FLOOR = os.path.join(REPO, "target", "release", "examples", "sdk_floor")
BARE = "bare"
RUN_TIMEOUT = 180.0
# Goals of issue 18: the most ssm-injector's median may be, in bare round trips.
GOALS = {"path-1000": 1.0, "path-100": 1.1, "names-100": 1.1, "names-10": 1.3}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------
# Emulator
# ----------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+="
_SPECIAL = [" ", "$", "'", '"', "#", "\\", "`", "!", "=", "é", "${HOME}", "$(id)"]


def make_value(rng: random.Random, i: int) -> str:
    s = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(16, 64)))
    if i % 5 == 0:  # every 5th value needs real shell quoting
        pos = rng.randint(0, len(s))
        s = s[:pos] + rng.choice(_SPECIAL) + s[pos:]
    return f"v{i}-{s}"


def tree_names(prefix: str, n: int) -> list[str]:
    names = []
    for i in range(n):
        depth = i % 3
        if depth == 0:
            names.append(f"{prefix}k{i:04d}")
        elif depth == 1:
            names.append(f"{prefix}svc{i % 8}/k{i:04d}")
        else:
            names.append(f"{prefix}svc{i % 8}/grp{i % 5}/k{i:04d}")
    return names


class Scenario:
    def __init__(self, sid: str, title: str, kind: str, names: list[str], path: str | None) -> None:
        self.id, self.title, self.kind, self.names, self.path = sid, title, kind, names, path
        self.values: dict[str, str] = {}


def build_scenarios() -> list[Scenario]:
    return [
        Scenario("path-100", "by path, 100", "path", tree_names("/bench/p100/", 100), "/bench/p100/"),
        Scenario("path-1000", "by path, 1,000", "path", tree_names("/bench/p1000/", 1000), "/bench/p1000/"),
        Scenario("names-100", "by name, 100", "names", [f"/bench/names/n{i:03d}" for i in range(100)], None),
        Scenario("names-10", "by name, 10", "names", [f"/bench/names10/n{i:03d}" for i in range(10)], None),
    ]


def seed(emu: Emulator, scenarios: list[Scenario]) -> None:
    rng = random.Random(20240601)
    t0 = time.perf_counter()
    n = 0
    for sc in scenarios:
        for i, name in enumerate(sc.names):
            value = make_value(rng, i)
            emu.call(cmd="aws", service="ssm", op="put_parameter",
                     args={"Name": name, "Value": value,
                           "Type": "SecureString" if i % 2 == 0 else "String"})
            sc.values[name] = value
            n += 1
    log(f"seeded {n} parameters in {time.perf_counter() - t0:.1f} s")


# ----------------------------------------------------------------------------------
# Tools
# ----------------------------------------------------------------------------------
def name_key(name: str) -> str:
    return name.rsplit("/", 1)[1].upper()  # /bench/names/n007 -> N007


# --baseline FILE: another build of ssm-injector measured in the same runs (before/after).
BASELINE = "ssm-inj-base"
BINS = {"ssm-injector": BIN}


def steps_for(tool: str, sc: Scenario, out: str) -> list[tuple[list[str], bool]]:
    """[(argv, stdout_to_out)] run in sequence for one measured run."""
    if tool in BINS:
        if sc.kind == "path":
            spec = ["--path", sc.path]
        else:
            spec = [a for n in sc.names for a in ("--param", f"{name_key(n)}={n}")]
        return [([BINS[tool], "render", *spec, "--format", "shell", "--output", out], False)]
    if tool == "boto3":
        script = os.path.join(BENCH, "boto3_render.py")
        if sc.kind == "path":
            spec = ["--path", sc.path]
        else:
            spec = [a for n in sc.names for a in ("--param", f"{name_key(n)}={n}")]
        return [([sys.executable, script, *spec, "--output", out], False)]
    if tool in ("powertools", "node-sdk-v3"):
        if sc.kind == "path":
            spec = ["--path", sc.path]
        else:
            spec = [a for n in sc.names for a in ("--param", f"{name_key(n)}={n}")]
        cmd = ([sys.executable, os.path.join(BENCH, "powertools_render.py")] if tool == "powertools"
               else ["node", os.path.join(NODE_DIR, "render.mjs")])
        return [([*cmd, *spec, "--output", out], False)]
    if tool == "sdk-floor":
        spec = ["--path", sc.path] if sc.kind == "path" else ["--names", *sc.names]
        return [([SDK_FLOOR, "--render", out, *spec], False)]
    if tool == "aws-cli":
        if sc.kind == "path":
            return [([AWS_CLI, "ssm", "get-parameters-by-path", "--path", sc.path,
                      "--recursive", "--with-decryption"], True)]
        return [([AWS_CLI, "ssm", "get-parameters", "--with-decryption", "--names",
                  *sc.names[i:i + 10]], True) for i in range(0, len(sc.names), 10)]
    raise ValueError(tool)


def tool_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SSM_INJECTOR_", "RUST_LOG", "PYTHONHOME"))}
    env.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
        "AWS_DEFAULT_OUTPUT": "json",
    })
    return env


class Launcher:
    """Runs a command under rss-launch (or, if it cannot be built, directly)."""

    def __init__(self, workdir: str) -> None:
        self.result = os.path.join(workdir, "rss-result")
        self.path = self._build()

    @staticmethod
    def _build() -> str | None:
        src = os.path.join(BENCH, "rss_launch.c")
        out_dir = os.path.join(REPO, "target", "bench-tools")
        exe = os.path.join(out_dir, "rss-launch")
        try:
            if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(src):
                return exe
            os.makedirs(out_dir, exist_ok=True)
            cc = os.environ.get("CC", "cc")
            subprocess.run([cc, "-O2", "-o", exe, src], check=True, capture_output=True)
            return exe
        except (OSError, subprocess.CalledProcessError) as e:
            detail = e.stderr.decode(errors="replace") if isinstance(e, subprocess.CalledProcessError) else e
            log(f"cannot build {src} ({detail}); peak RSS will include this process's RSS as a floor")
            return None

    def run(self, argv: list[str], env: dict[str, str], stdout, stderr) -> tuple[float, int, int]:
        """-> (wall seconds, peak RSS KiB, exit code)"""
        if self.path is None:
            return self._run_direct(argv, env, stdout, stderr)
        try:
            os.unlink(self.result)
        except FileNotFoundError:
            pass
        code = self._wait([self.path, self.result, *argv], env, stdout, stderr)[0]
        try:
            with open(self.result) as f:
                ns, rss, code = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            return 0.0, 0, code if code else 125
        return ns / 1e9, rss, code

    def _run_direct(self, argv, env, stdout, stderr):
        t0 = time.perf_counter()
        code, rss = self._wait(argv, env, stdout, stderr)
        return time.perf_counter() - t0, rss, code

    @staticmethod
    def _wait(argv, env, stdout, stderr) -> tuple[int, int]:
        try:
            p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                 stderr=stderr, start_new_session=True)
        except OSError as e:
            stderr.write(f"cannot run {argv[0]}: {e}\n".encode())
            return 127, 0
        def kill() -> None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
                stderr.write(f"killed after {RUN_TIMEOUT:.0f} s\n".encode())
            except OSError:
                pass

        timer = threading.Timer(RUN_TIMEOUT, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        code = p.returncode if p.returncode >= 0 else 128 - p.returncode
        return code, ru.ru_maxrss


class RunError(Exception):
    pass


def bare_round_trips(sc: Scenario, endpoint: str) -> float:
    """The scenario's API calls in sequence on one new connection: -> wall seconds.
    RunError if the answers do not hold every parameter."""
    host, _, port = endpoint.removeprefix("http://").rstrip("/").partition(":")
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        # moto reads the account from the access key; the signature is not checked.
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    }
    got = 0
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=60)
    try:
        def call(op: str, body: dict) -> dict:
            conn.request("POST", "/", json.dumps(body), {**headers, "X-Amz-Target": f"AmazonSSM.{op}"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise RunError(f"{op}: HTTP {r.status}: {data[:200]!r}")
            return json.loads(data)

        if sc.kind == "path":
            body = {"Path": sc.path, "Recursive": True, "WithDecryption": True}
            while True:
                page = call("GetParametersByPath", body)
                got += len(page.get("Parameters", []))
                if not page.get("NextToken"):
                    break
                body["NextToken"] = page["NextToken"]
        else:
            for i in range(0, len(sc.names), 10):
                got += len(call("GetParameters", {"Names": sc.names[i:i + 10],
                                                  "WithDecryption": True}).get("Parameters", []))
    finally:
        conn.close()
    wall = time.perf_counter() - t0
    if got != len(sc.names):
        raise RunError(f"bare round trips: {got} parameters, {len(sc.names)} expected")
    return wall


def run_tool(launcher: Launcher, tool: str, sc: Scenario, endpoint: str, out: str,
             workdir: str) -> tuple[float, int]:
    """One measured run: -> (wall s, peak RSS KiB); RunError with the reason on failure."""
    if tool in BINS and not os.access(BINS[tool], os.X_OK):
        raise RunError(f"no binary at {BINS[tool]} (cargo build --release, or set SSM_INJECTOR_BIN)")
    if tool == "sdk-floor" and not os.access(SDK_FLOOR, os.X_OK):
        raise RunError(f"no {SDK_FLOOR}: cargo build --release --example sdk_floor")
    if tool == "node-sdk-v3" and not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@aws-sdk")):
        raise RunError(f"no {NODE_DIR}/node_modules: run scripts/setup-node bench/node")
    for p in (out,):
        if os.path.exists(p):
            os.chmod(p, 0o600)
            os.unlink(p)
    env = tool_env(endpoint)
    wall, peak = 0.0, 0
    errpath = os.path.join(workdir, "stderr")
    for argv, to_out in steps_for(tool, sc, out):
        with open(errpath, "w+b") as err, \
                (open(out, "ab") if to_out else open(os.devnull, "wb")) as so:
            w, rss, code = launcher.run(argv, env, so, err)
            if code != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
                raise RunError(f"exit {code}: " + (" | ".join(tail) or "(no stderr)"))
        wall += w
        peak = max(peak, rss)
    return wall, peak


# ----------------------------------------------------------------------------------
# Output check
# ----------------------------------------------------------------------------------
def check_output(tool: str, sc: Scenario, out: str) -> str | None:
    """None if the output holds exactly the scenario's values, else what is wrong."""
    if not os.path.exists(out):
        return "exit 0 but no output file"
    want = sorted(sc.values[n] for n in sc.names)
    if tool == "aws-cli":
        with open(out, encoding="utf-8") as f:
            text = f.read()
        dec, pos, got, invalid = json.JSONDecoder(), 0, [], []
        while pos < len(text):
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                break
            doc, pos = dec.raw_decode(text, pos)
            got += [p["Value"] for p in doc.get("Parameters", [])]
            invalid += doc.get("InvalidParameters", [])
        if invalid:
            return f"InvalidParameters: {invalid[:3]}"
    else:
        r = subprocess.run(["bash", "-c", 'set -a; . "$1" || exit 97; exec env -0', "_", out],
                           env={"PATH": "/usr/bin:/bin"}, capture_output=True)
        if r.returncode != 0:
            return f"bash cannot source the shell env file: {r.stderr.decode(errors='replace').strip()[:200]}"
        got = []
        for item in r.stdout.split(b"\0"):
            k, sep, v = item.partition(b"=")
            if sep and k not in (b"PATH", b"PWD", b"SHLVL", b"_", b"OLDPWD"):
                got.append(v.decode("utf-8", "replace"))
    got.sort()
    if got == want:
        return None
    missing = len(set(want) - set(got))
    extra = len(set(got) - set(want))
    return f"values differ: {len(got)} read, {len(want)} expected, {missing} missing, {extra} unexpected"


# ----------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------
def fmt_calls(calls: dict | None) -> str:
    if not calls:
        return "-"
    return " ".join(f"{k}={v}" for k, v in sorted(calls.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description="ssm-injector render vs its peers on moto")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per tool and scenario (default 5)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma list of {', '.join(TOOLS)}")
    ap.add_argument("--baseline", metavar="FILE",
                    help=f"another ssm-injector binary, measured in the same runs as {BASELINE}")
    ap.add_argument("--scenarios", default="path-100,path-1000,names-100,names-10",
                    help="comma list of path-100, path-1000, names-100, names-10")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    tools = [t for t in args.tools.split(",") if t]
    if unknown := set(tools) - set(TOOLS):
        ap.error(f"unknown tool(s): {', '.join(sorted(unknown))}")
    if args.baseline:
        BINS[BASELINE] = os.path.abspath(args.baseline)
        tools.insert(tools.index("ssm-injector") + 1 if "ssm-injector" in tools else 0, BASELINE)
    wanted = [s for s in args.scenarios.split(",") if s]
    scenarios_all = build_scenarios()
    if unknown := set(wanted) - {s.id for s in scenarios_all}:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    started = time.time()
    workdir = tempfile.mkdtemp(prefix="ssm-injector-bench-")
    emu = Emulator("bench")
    results = []
    try:
        launcher = Launcher(workdir)
        log(f"moto {emu.moto}, proxy {emu.proxy}; {args.runs} runs per tool and scenario")
        seed(emu, scenarios_all)  # always all: the data set does not depend on the filter
        scenarios = [s for s in scenarios_all if s.id in wanted]
        for sc in scenarios:
            rows = {t: {"scenario": sc.id, "title": sc.title, "tool": t, "ok": True, "error": None,
                        "wall_ms": [], "peak_rss_kib": [], "calls": None} for t in [BARE, *tools]}
            outs = {t: os.path.join(workdir, f"{sc.id}.{t}.out") for t in tools}

            def attempt(t: str, endpoint: str):
                try:
                    return run_tool(launcher, t, sc, endpoint, outs[t], workdir)
                except RunError as e:
                    rows[t]["ok"], rows[t]["error"] = False, str(e)
                    log(f"{sc.id} {t}: FAILED: {e}")
                    return None

            def bare() -> None:
                try:
                    rows[BARE]["wall_ms"].append(bare_round_trips(sc, emu.moto) * 1000)
                except (RunError, OSError) as e:
                    rows[BARE]["ok"], rows[BARE]["error"] = False, str(e)
                    log(f"{sc.id} bare: FAILED: {e}")

            # warm-up (page cache, __pycache__, moto's code paths) + output check
            bare()
            rows[BARE]["wall_ms"].clear()
            for t in tools:
                if attempt(t, emu.moto) is not None:
                    problem = check_output(t, sc, outs[t])
                    if problem:
                        rows[t]["ok"], rows[t]["error"] = False, problem
                        log(f"{sc.id} {t}: FAILED: {problem}")
            for i in range(args.runs):
                if rows[BARE]["ok"]:
                    bare()
                for t in tools:
                    if rows[t]["ok"]:
                        r = attempt(t, emu.moto)
                        if r is not None:
                            rows[t]["wall_ms"].append(r[0] * 1000)
                            rows[t]["peak_rss_kib"].append(r[1])
                log(f"{sc.id}: run {i + 1}/{args.runs} done")
            for t in tools:
                if rows[t]["ok"]:
                    emu.call(cmd="reset_calls")
                    if attempt(t, emu.proxy) is not None:
                        rows[t]["calls"] = emu.call(cmd="calls")
            base, floor = rows.get("ssm-injector"), rows[BARE]
            for t in [BARE, *tools]:
                row = rows[t]
                if row["ok"] and row["wall_ms"]:
                    row["median_ms"] = statistics.median(row["wall_ms"])
                    row["min_ms"] = min(row["wall_ms"])
                    row["peak_rss_mib"] = max(row["peak_rss_kib"]) / 1024 if row["peak_rss_kib"] else None
                row["x_ssm_injector"] = row["x_bare"] = None
                if t != "ssm-injector" and base and base.get("median_ms") and row.get("median_ms"):
                    row["x_ssm_injector"] = row["median_ms"] / base["median_ms"]
                if t != BARE and floor.get("median_ms") and row.get("median_ms"):
                    row["x_bare"] = row["median_ms"] / floor["median_ms"]
                results.append(row)
    finally:
        emu.close()
        shutil.rmtree(workdir, ignore_errors=True)

    # ------------------------------------------------------------------ report
    size = os.path.getsize(BIN) if os.path.exists(BIN) else None
    print()
    print(f"ssm-injector render vs its peers on moto: {args.runs} timed runs each, "
          f"AWS_ENDPOINT_URL = moto directly;")
    print("API calls from one extra run through the emulator's counting proxy. "
          f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}.")
    rel = os.path.relpath(BIN, REPO) if BIN.startswith(REPO + os.sep) else BIN
    print(f"binary: {rel}: " + (f"{size / 1048576:.2f} MiB ({size} bytes)" if size is not None else "MISSING"))
    print()
    hdr = (f"{'scenario':<15} {'tool':<13} {'median ms':>10} {'min ms':>9} {'peak RSS MiB':>13} "
           f"{'x ssm-inj':>10} {'x bare':>7}  API calls")
    print(hdr)
    print("-" * len(hdr))
    last = None
    for row in results:
        title = row["title"] if row["title"] != last else ""
        last = row["title"]
        if row.get("median_ms") is None:
            print(f"{title:<15} {row['tool']:<13} FAILED: {row['error']}")
            continue
        x = f"{row['x_ssm_injector']:.2f}x" if row["x_ssm_injector"] else "-"
        xb = f"{row['x_bare']:.2f}x" if row["x_bare"] else "-"
        rss = f"{row['peak_rss_mib']:.1f}" if row.get("peak_rss_mib") else "-"
        print(f"{title:<15} {row['tool']:<13} {row['median_ms']:>10.1f} {row['min_ms']:>9.1f} "
              f"{rss:>13} {x:>10} {xb:>7}  {fmt_calls(row['calls'])}")
    print()
    print("x ssm-inj = that tool's median wall time / ssm-injector's; x bare = / the bare round "
          f"trips' (in this process, no start-up).  Total bench time {time.time() - started:.0f} s.")
    print()
    for sc_id, goal in GOALS.items():
        mine = next((r for r in results if r["scenario"] == sc_id and r["tool"] == "ssm-injector"), None)
        if mine is None or not mine.get("x_bare"):
            continue
        peers = [r for r in results
                 if r["scenario"] == sc_id and r["tool"] not in ("ssm-injector", BASELINE, BARE, "sdk-floor")]
        slower = [r["tool"] for r in peers if r.get("median_ms") and r["median_ms"] <= mine["median_ms"]]
        verdict = "met" if mine["x_bare"] <= goal and not (sc_id == "path-1000" and slower) else "MISSED"
        beaten = f"; not faster than {', '.join(slower)}" if slower else ""
        sdk = next((r for r in results if r["scenario"] == sc_id and r["tool"] == "sdk-floor"), None)
        alone = f"; the SDK alone {sdk['x_bare']:.2f}x" if sdk and sdk.get("x_bare") else ""
        print(f"goal {sc_id:<10} ssm-injector {mine['x_bare']:.2f}x bare (goal <= {goal}x){beaten}{alone}: {verdict}")

    if args.json:
        def ver(pkg):
            try:
                return importlib.metadata.version(pkg)
            except importlib.metadata.PackageNotFoundError:
                return None
        meta = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "runs": args.runs, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": {p: ver(p) for p in ("moto", "boto3", "botocore", "awscli", "aws-lambda-powertools")},
            "binary": BIN, "binary_size_bytes": size, "baseline": BINS.get(BASELINE),
            "endpoint": "moto directly for timing; the counting proxy for API calls",
            "rss_method": "rss-launch (fork/exec/wait4 from a small C parent)"
                          if launcher.path else "os.wait4 from the bench process (has a floor)",
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)
            f.write("\n")
        print(f"results written to {args.json}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
