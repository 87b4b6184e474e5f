#!/usr/bin/env python3
"""Sidecar (`render --watch`) figures on one moto, run with the venv's python:

  * idle RSS (VmRSS and peak VmHWM) with --n parameters after many idle polls;
  * CPU time per idle poll (utime + stime from /proc over the polls counted by /metrics);
  * API calls per poll, decrypting calls and values decrypted (WithDecryption=true, counted
    by the emulator's proxy) per idle poll and per rotation;
  * rotation-to-file latency p50 / p99 over --rotations rotations.

Usage: bench/watch_bench.py [--n 100] [--interval 250ms] [--idle-polls 20] [--rotations 100]
The binary is target/release/ssm-injector (or $SSM_INJECTOR_BIN).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import (BIN, Emulator, aws_env, cpu_seconds, free_port, proc_status,
                    require_binary, wait_for)


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--interval", default="250ms")
    ap.add_argument("--idle-polls", type=int, default=20)
    ap.add_argument("--rotations", type=int, default=100)
    args = ap.parse_args()
    require_binary("watch_bench")
    emu = Emulator("watch_bench")
    tmp = tempfile.mkdtemp(prefix="watch-bench-")
    out = os.path.join(tmp, "app.env")
    port = free_port()
    child = None
    try:
        for i in range(args.n):
            emu.aws("ssm", "put_parameter", Name=f"/wb/app/p{i:03d}", Value=f"v{i}-0",
                    Type="SecureString" if i % 2 else "String")
        env = aws_env(emu.proxy)
        names = [a for i in range(args.n) for a in ("--param", f"P{i:03d}=/wb/app/p{i:03d}")]
        child = subprocess.Popen([BIN, "render", "--watch", "--interval", args.interval,
                                  "--listen", f"127.0.0.1:{port}", "--output", out, *names],
                                 env=env, stderr=subprocess.DEVNULL)
        wait_for("the first render", lambda: os.path.exists(out))
        wait_for("/metrics", lambda: metric(port, "ssm_injector_polls_total") >= 1)

        # Idle: no rotation, count polls, API calls and CPU.
        emu.call(cmd="reset_calls")
        p0, c0 = metric(port, "ssm_injector_polls_total"), cpu_seconds(child.pid)
        wait_for(f"{args.idle_polls} idle polls",
                 lambda: metric(port, "ssm_injector_polls_total") >= p0 + args.idle_polls)
        p1, c1 = metric(port, "ssm_injector_polls_total"), cpu_seconds(child.pid)
        calls = sum(emu.call(cmd="calls").values())
        idle_decrypts = emu.call(cmd="decrypts")
        polls = p1 - p0
        rss, hwm = proc_status(child.pid, "VmRSS"), proc_status(child.pid, "VmHWM")

        # Rotations: put a new value, time until the file shows it.
        emu.call(cmd="reset_calls")
        lat = []
        for r in range(1, args.rotations + 1):
            value = f"v7-{r}"
            t0 = time.monotonic()
            emu.aws("ssm", "put_parameter", Name="/wb/app/p007", Value=value,
                    Type="SecureString", Overwrite=True)
            needle = f"P007='{value}'"
            wait_for(f"rotation {r}", lambda: needle in open(out).read())
            lat.append((time.monotonic() - t0) * 1000)
        rot_decrypts = emu.call(cmd="decrypts")
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"sidecar, {args.n} parameters by name, --interval {args.interval}, moto via proxy")
        print(f"  idle RSS            {rss / 1024:.1f} MiB (peak VmHWM {hwm / 1024:.1f} MiB)")
        print(f"  idle polls          {polls:.0f}: {calls / polls:.1f} API calls per poll, "
              f"{(c1 - c0) / polls * 1000:.2f} ms CPU per poll")
        print(f"  decrypting / poll   {sum(idle_decrypts['calls'].values()) / polls:.1f} calls, "
              f"{idle_decrypts['values'] / polls:.1f} values decrypted (idle)")
        print(f"  decrypting / rot.   {sum(rot_decrypts['calls'].values()) / len(lat):.1f} calls, "
              f"{rot_decrypts['values'] / len(lat):.1f} values decrypted (1 of {args.n} rotated; "
              f"includes idle polls meanwhile)")
        print(f"  rotation -> file    p50 {statistics.median(lat):.0f} ms, p99 {p99:.0f} ms "
              f"over {len(lat)} rotations (includes the put and up to one interval)")
    finally:
        if child is not None:
            child.terminate()
            child.wait(10)
        emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
