#!/usr/bin/env python3
"""The local endpoint (`render --watch --serve`) on moto, run with the venv's python:

  * cached-read latency with keep-alive: h2load over HTTP/1.1, one connection, one read in
    flight, --reads reads of a watched SecureString (GET /systemsmanager/parameters/get with
    the token header); p50 / p99 / max from h2load's per-request log (microseconds);
  * reads/s on one core: the sidecar pinned to CPU 0 (taskset), h2load to CPU 1, 8
    keep-alive connections; the sidecar's CPU per read from /proc;
  * AWS calls per read of a watched name: `ssm_injector_api_calls_total` before and after
    (with --interval 1h nothing else calls AWS meanwhile);
  * staleness after a rotation: from `put_parameter` returning until a read answers the new
    value, p50 / p99 over --rotations rotations, with --interval 1s polls (the extension and
    the AWS Secrets Manager Agent serve the old value up to their TTL, 300 s by default);
  * RSS: the sidecar idle with the endpoint on, after the load, against the same sidecar
    without --serve, measured in the same run.

With the AWS Secrets Manager Agent built (scripts/setup-sm-agent, into .tools/sm-agent), the
same latency and throughput runs read a secret (/secretsmanager/get) from ssm-injector and
from it, alternated over --rounds rounds so that the machine's drift hits both alike; the
medians and their ratios are printed. (tests/serve.rs compares their answers.)

Usage: bench/serve_bench.py [--reads 20000] [--seconds 10] [--rotations 20] [--rounds 3]
The binary is target/release/ssm-injector (or $SSM_INJECTOR_BIN; the static build the
image ships: target/x86_64-unknown-linux-gnu/release/ssm-injector when it exists).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import common
from common import (Emulator, aws_env, cpu_seconds, free_port, parse_metric, percentile,
                    proc_status, ready, require_binary, wait_for)

SHIPPED = os.path.join(common.REPO, "target", "x86_64-unknown-linux-gnu", "release",
                       "ssm-injector")
if not os.environ.get("SSM_INJECTOR_BIN") and os.path.exists(SHIPPED):
    common.BIN = SHIPPED
AGENT = os.path.join(common.REPO, ".tools", "sm-agent", "bin", "aws_secretsmanager_agent")
TOKEN = "bench-token"
HEADER = "X-Aws-Parameters-Secrets-Token"


def sidecar(emu, directory, port, admin, serve: bool, interval: str, secret: str):
    args = [common.BIN, "render", "--watch", "--interval", interval, "--jitter", "0",
            "--output", os.path.join(directory, f"app-{port}.env"),
            "--param", "DB=/bench/serve/db", "--path", "/bench/serve/config/",
            "--param", f"API=/aws/reference/secretsmanager/{secret}",
            "--listen", f"127.0.0.1:{admin}"]
    if serve:
        args += ["--serve", f"127.0.0.1:{port}"]
    env = aws_env(emu.moto) | {"AWS_SESSION_TOKEN": TOKEN, "RUST_LOG": "warn"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for("the sidecar ready", lambda: ready(admin), limit=60)
    return proc


def get(port: int, path: str, query: dict) -> tuple[int, dict | str]:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(query)}"
    req = urllib.request.Request(url, headers={HEADER: TOKEN})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # not listening yet
        return 0, str(e)


def api_calls(admin: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("ssm_injector_api_calls_total{"))


def h2load(url: str, directory: str, *extra: str, cpu: str | None = None) -> list[int]:
    """h2load --h1 against url with the token; the per-request times (µs) of 200 answers."""
    log = os.path.join(directory, "h2load.log")
    cmd = ["h2load", "--h1", "-t1", "-H", f"{HEADER}: {TOKEN}", f"--log-file={log}", *extra, url]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    times = []
    with open(log) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3 and cols[1] == "200":
                times.append(int(cols[2]))
    os.remove(log)
    return sorted(times)


def latency(label: str, url: str, directory: str, reads: int) -> tuple[float, float]:
    """p50 and p99 (µs) of `reads` keep-alive reads on one connection, after a warm-up."""
    h2load(url, directory, "-c1", "-m1", "-n", "2000")  # warm-up
    t = h2load(url, directory, "-c1", "-m1", "-n", str(reads))
    if not t:
        raise SystemExit(f"serve_bench: {label}: no read answered 200")
    p50, p99 = percentile(t, 50), percentile(t, 99)
    print(f"  {label:<34} keep-alive, 1 connection: p50 {p50:.0f} us  p99 {p99:.0f} us  "
          f"max {t[-1]} us  ({len(t)} reads)")
    return p50, p99


def throughput(label: str, url: str, directory: str, pid: int, secs: int) -> tuple[float, float]:
    """Reads/s and CPU µs per read, the server pinned to CPU 0 and h2load to CPU 1."""
    subprocess.run(["taskset", "-pc", "0", str(pid)], check=True, stdout=subprocess.DEVNULL)
    cpu0 = cpu_seconds(pid)
    t = h2load(url, directory, "-c8", "-m1", "-D", str(secs), cpu="1")
    cpu = cpu_seconds(pid) - cpu0
    rate, per_read = len(t) / secs, 1e6 * cpu / max(1, len(t))
    print(f"  {label:<34} one core (taskset), 8 connections: {rate:,.0f} reads/s, "
          f"{per_read:.1f} us CPU per read")
    return rate, per_read


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=20000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rotations", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3,
                    help="latency and throughput of ssm-injector and the agent, alternated")
    a = ap.parse_args()
    require_binary("serve_bench")
    if not shutil.which("h2load"):
        raise SystemExit("serve_bench: needs h2load (apt-get install nghttp2-client)")
    directory = tempfile.mkdtemp()
    emu = Emulator("serve_bench")
    try:
        put(emu, "/bench/serve/db", "db-0", "SecureString")
        for i in range(18):
            put(emu, f"/bench/serve/config/k{i}", f"v{i}", "String")
        secret = f"bench-serve-{os.getpid()}"
        emu.aws("secretsmanager", "create_secret", Name=secret, SecretString='{"k":"v"}')
        port, admin = free_port(), free_port()
        proc = sidecar(emu, directory, port, admin, True, "1h", secret)
        plain_admin = free_port()
        plain = sidecar(emu, directory, free_port(), plain_admin, False, "1h", secret)
        try:
            print(f"serve_bench: {os.path.basename(common.BIN)}, 20 watched values, "
                  f"load average {open('/proc/loadavg').read().split()[0]}")
            q = urllib.parse.urlencode({"name": "/bench/serve/db", "withDecryption": "true"})
            param_url = f"http://127.0.0.1:{port}/systemsmanager/parameters/get?{q}"
            secret_url = f"http://127.0.0.1:{port}/secretsmanager/get?secretId={secret}"
            agent = start_agent(emu, directory, secret)
            before = api_calls(admin)
            latency("ssm-injector parameter (watched)", param_url, directory, a.reads)
            # The secret route of both, alternated round by round: the machine's drift
            # (other load, frequency) hits both alike.
            ours, theirs = [], []
            for r in range(a.rounds):
                print(f"  round {r + 1} of {a.rounds}")
                ours.append(latency("ssm-injector secret (watched)", secret_url, directory,
                                    a.reads)
                            + throughput("ssm-injector secret (watched)", secret_url,
                                         directory, proc.pid, a.seconds))
                if agent:
                    theirs.append(latency("Secrets Manager Agent secret", agent[1], directory,
                                          a.reads)
                                  + throughput("Secrets Manager Agent secret", agent[1],
                                               directory, agent[0].pid, a.seconds))
            after = api_calls(admin)
            reads = (a.rounds + 1) * (a.reads + 2000)
            print(f"  AWS calls during {reads:,}+ watched reads (and the throughput runs): "
                  f"{after - before:.0f}")
            summary("ssm-injector", ours)
            if agent:
                summary("Secrets Manager Agent", theirs)
                print(f"  ssm-injector / agent, medians: p50 {median([o[0] for o in ours]) / median([t[0] for t in theirs]):.2f}x, "
                      f"CPU per read {median([o[3] for o in ours]) / median([t[3] for t in theirs]):.2f}x, "
                      f"reads/s {median([o[2] for o in ours]) / median([t[2] for t in theirs]):.2f}x")
                print(f"  Secrets Manager Agent RSS after the load: "
                      f"{proc_status(agent[0].pid, 'VmRSS') / 1024:.2f} MiB")
                agent[0].terminate()
                agent[0].wait()
            rss = proc_status(proc.pid, "VmRSS") / 1024
            rss_plain = proc_status(plain.pid, "VmRSS") / 1024
            print(f"  RSS after the load: {rss:.2f} MiB with --serve, {rss_plain:.2f} MiB "
                  f"without (same spec, idle): {rss - rss_plain:+.2f} MiB")
        finally:
            for p in (proc, plain):
                p.terminate()
                p.wait()
        staleness(emu, directory, secret, a.rotations)
    finally:
        emu.close()
    shutil.rmtree(directory, ignore_errors=True)
    return 0


def put(emu, name: str, value: str, kind: str) -> None:
    emu.aws("ssm", "put_parameter", Name=name, Value=value, Type=kind, Overwrite=True)


def staleness(emu, directory: str, secret: str, rotations: int) -> None:
    port, admin = free_port(), free_port()
    proc = sidecar(emu, directory, port, admin, True, "1s", secret)
    try:
        waits = []
        for i in range(1, rotations + 1):
            value = f"db-{i}"
            put(emu, "/bench/serve/db", value, "SecureString")
            start = time.monotonic()

            def seen():
                status, body = get(port, "/systemsmanager/parameters/get",
                                   {"name": "/bench/serve/db", "withDecryption": "true"})
                return status == 200 and body["Parameter"]["Value"] == value
            wait_for("the rotated value", seen, limit=30, step=0.01)
            waits.append(time.monotonic() - start)
        waits.sort()
        print(f"  staleness after a rotation (--interval 1s polls, {rotations} rotations): "
              f"p50 {percentile(waits, 50):.2f} s  p99 {percentile(waits, 99):.2f} s; "
              f"the extension and the Secrets Manager Agent: up to their TTL (300 s by default)")
    finally:
        proc.terminate()
        proc.wait()


def start_agent(emu, directory: str, secret: str):
    """The AWS Secrets Manager Agent on the same moto and secret, if built: (process, URL of
    the secret), answering."""
    if not os.path.exists(AGENT):
        print("  AWS Secrets Manager Agent: not built (scripts/setup-sm-agent); not compared")
        return None
    port = free_port()
    config = os.path.join(directory, "agent.toml")
    with open(config, "w") as f:
        f.write(f'http_port = "{port}"\nlog_level = "WARN"\nlog_to_file = false\n'
                'validate_credentials = false\nregion = "us-east-1"\n')
    env = aws_env(emu.moto) | {"AWS_TOKEN": TOKEN}
    proc = subprocess.Popen([AGENT, "--config", config], env=env, cwd=directory,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for("the agent", lambda: get(port, "/secretsmanager/get",
                                      {"secretId": secret})[0] == 200, limit=30)
    return proc, f"http://127.0.0.1:{port}/secretsmanager/get?secretId={secret}"


def summary(label: str, rounds: list[tuple[float, float, float, float]]) -> None:
    """The medians over the rounds of (p50, p99, reads/s, CPU per read)."""
    p50, p99, rate, cpu = (median([r[i] for r in rounds]) for i in range(4))
    print(f"  {label:<22} medians of {len(rounds)} rounds, a secret: p50 {p50:.0f} us, "
          f"p99 {p99:.0f} us, {rate:,.0f} reads/s on one core, {cpu:.1f} us CPU per read")


if __name__ == "__main__":
    sys.exit(main())
