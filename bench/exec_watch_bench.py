#!/usr/bin/env python3
"""`exec --watch` (the supervisor) on moto, run with the venv's python:

  * rotation -> the new child has the value: from `put_parameter` returning until the
    restarted command has written the new value to its file (the command writes
    `$KEY` and its start time at start), p50 / p99 over --rotations rotations; with
    --interval 250ms the poll wait is most of it;
  * the restart gap: from the old child's end (it writes the time on SIGTERM, then exits)
    to the new child's start (its first line), p50 / p99: what the supervisor itself adds;
  * the supervisor's idle RSS (VmRSS, RssAnon / RssFile) after --idle-seconds with the
    command running and nothing changing, and its CPU per idle poll.

Usage: bench/exec_watch_bench.py [--rotations 50] [--interval 250ms] [--idle-seconds 20]
The binary is target/release/ssm-injector (or $SSM_INJECTOR_BIN; the static build the
image ships: target/x86_64-unknown-linux-gnu/release/ssm-injector when it exists).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import common
from common import (Emulator, aws_env, cpu_seconds, evict_from_page_cache, free_port,
                    parse_metric, percentile, proc_status, require_binary, wait_for)

SHIPPED = os.path.join(common.REPO, "target", "x86_64-unknown-linux-gnu", "release",
                       "ssm-injector")
if not os.environ.get("SSM_INJECTOR_BIN") and os.path.exists(SHIPPED):
    common.BIN = SHIPPED

# The command: one line "start <time> <value>" at start, one "end <time>" on SIGTERM.
# The time comes from the kernel's clock (date +%s.%N), the same clock as time.time().
APP = r'''
echo "start $(date +%s.%N) $KEY" >> "$1"
trap 'echo "end $(date +%s.%N)" >> "$1"; exit 0' TERM
while :; do sleep 0.01; done
'''


def lines(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rotations", type=int, default=50)
    ap.add_argument("--interval", default="250ms")
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    args = ap.parse_args()
    require_binary("exec_watch_bench")
    emu = Emulator("exec_watch_bench")
    tmp = tempfile.mkdtemp(prefix="exec-watch-bench-")
    out = os.path.join(tmp, "seen")
    port = free_port()
    child = None
    try:
        emu.aws("ssm", "put_parameter", Name="/xwb/key", Value="r0", Type="SecureString")
        env = aws_env(emu.moto)
        # Read from disk, as on a node that has not cached it (see watch_bench.py).
        evict_from_page_cache(common.BIN)
        child = subprocess.Popen(
            [common.BIN, "exec", "--watch", "--interval", args.interval,
             "--reload-debounce", "0s", "--restart-grace", "5s",
             "--max-restarts-per-hour", str(args.rotations + 10),
             "--listen", f"127.0.0.1:{port}", "--param", "KEY=/xwb/key",
             "--", "sh", "-c", APP, "app", out],
            env=env, stderr=subprocess.DEVNULL)
        wait_for("the command's start", lambda: len(lines(out)) >= 1)

        # Idle: the command runs, nothing changes.
        c0 = cpu_seconds(child.pid)
        polls0 = poll_count(port)
        time.sleep(args.idle_seconds)  # the measured window itself, not a synchronisation
        c1 = cpu_seconds(child.pid)
        polls = poll_count(port) - polls0
        rss, anon, file = (proc_status(child.pid, k) for k in ("VmRSS", "RssAnon", "RssFile"))

        latency, gaps = [], []
        for r in range(1, args.rotations + 1):
            value = f"r{r}"
            t0 = time.time()
            emu.aws("ssm", "put_parameter", Name="/xwb/key", Value=value,
                    Type="SecureString", Overwrite=True)

            def started():
                got = lines(out)
                return got if got and got[-1][0] == "start" and got[-1][2] == value else None

            got = wait_for(f"rotation {r}", started)
            latency.append((time.time() - t0) * 1000)
            end, start = got[-2], got[-1]
            gaps.append((float(start[1]) - float(end[1])) * 1000)

        print(f"exec --watch, 1 SecureString, --interval {args.interval}, moto direct")
        print(f"  idle RSS          {rss / 1024:.2f} MiB (RssAnon {anon / 1024:.2f}, RssFile "
              f"{file / 1024:.2f}) after {args.idle_seconds:.0f} s with the command running")
        if polls > 0:
            print(f"  idle polls        {polls:.0f}: {(c1 - c0) / polls * 1000:.2f} ms CPU per poll")
        print(f"  rotation -> child p50 {percentile(latency, 50):.0f} ms, p99 "
              f"{percentile(latency, 99):.0f} ms over {len(latency)} rotations "
              f"(includes the put and up to one interval)")
        print(f"  restart gap       p50 {percentile(gaps, 50):.1f} ms, p99 "
              f"{percentile(gaps, 99):.1f} ms (old child's end -> new child's start)")
    finally:
        if child is not None:
            child.terminate()
            child.wait(10)
        emu.close()
    return 0


def poll_count(port: int) -> float:
    """The sidecar's good polls so far, read from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return parse_metric(r.read().decode(), 'ssm_injector_polls_total{outcome="ok"}')


if __name__ == "__main__":
    sys.exit(main())
