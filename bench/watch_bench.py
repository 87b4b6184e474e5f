#!/usr/bin/env python3
"""Sidecar (`render --watch`) figures on one moto, run with the venv's python:

  * idle RSS (VmRSS, peak VmHWM) with --n parameters after --idle-seconds of idle polls,
    and what it is: anonymous vs file-backed (RssAnon / RssFile of /proc/PID/status,
    Pss_Anon / Pss_File of /proc/PID/smaps_rollup). The binary is evicted from the page
    cache first (common.evict_from_page_cache: read from disk, as on a node that has not
    cached it), unless --keep-page-cache;
  * CPU time per idle poll: utime + stime from /proc/PID/stat over the idle window,
    divided by the polls made in it. Nothing talks to the sidecar during the window:
    /metrics is read once before and once after it (the polls are the difference), so
    the figure is the polls' own CPU, not the scrapes' (reading /metrics every 2 ms made
    it ~30 ms instead of ~7);
  * API calls per poll (counted by the emulator's proxy over the same window), and next to
    the CPU per poll the AWS SDK's own floor for as many calls: bench/sdk_floor.rs (the
    SDK with ssm-injector's SDK configuration and nothing else, the same GetParameters
    without decryption, sequential) on the same emulator, when it is built
    (`cargo build --release --example sdk_floor`; --floor-calls, 0: skip);
  * decrypting calls and values decrypted (WithDecryption=true, counted by the emulator's
    proxy) per idle poll and per rotation;
  * rotation-to-file latency p50 / p99 over --rotations rotations.

Usage: bench/watch_bench.py [--n 100] [--interval 250ms] [--idle-seconds 30] [--rotations 100]
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

from common import (BIN, Emulator, aws_env, cpu_seconds, evict_from_page_cache, free_port,
                    proc_status, require_binary, wait_for)


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


# The SDK-floor program (bench/sdk_floor.rs), built with `cargo build --release --example
# sdk_floor`.
SDK_FLOOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release",
                         "examples", "sdk_floor")


def sdk_floor(env: dict[str, str], names: list[str], calls: int) -> float | None:
    """The AWS SDK's own CPU milliseconds per GetParameters call (no decryption, up to 10
    of `names` each), or None if it is skipped or not built."""
    if calls <= 0:
        return None
    if not os.path.exists(SDK_FLOOR):
        print("watch_bench: no SDK floor (build it: cargo build --release --example sdk_floor)",
              file=sys.stderr)
        return None
    out = subprocess.run([SDK_FLOOR, str(calls), *names], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--interval", default="250ms")
    ap.add_argument("--idle-seconds", type=float, default=30.0,
                    help="the idle window: no rotation, no /metrics read (default 30)")
    ap.add_argument("--rotations", type=int, default=100)
    ap.add_argument("--floor-calls", type=int, default=300,
                    help="GetParameters calls timed by bench/sdk_floor.rs (0: skip it)")
    ap.add_argument("--keep-page-cache", action="store_true",
                    help="start the binary from the page cache as it is (default: evict it first)")
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
        if not args.keep_page_cache:
            evict_from_page_cache(BIN)
        child = subprocess.Popen([BIN, "render", "--watch", "--interval", args.interval,
                                  "--listen", f"127.0.0.1:{port}", "--output", out, *names],
                                 env=env, stderr=subprocess.DEVNULL)
        wait_for("the first render", lambda: os.path.exists(out))
        wait_for("/metrics", lambda: metric(port, "ssm_injector_polls_total") >= 1)

        # Idle: no rotation and nothing that talks to the sidecar; /metrics is read just
        # before the window and just after it, and the CPU inside it.
        p0 = metric(port, "ssm_injector_polls_total")
        emu.call(cmd="reset_calls")
        c0 = cpu_seconds(child.pid)
        time.sleep(args.idle_seconds)  # the measured window itself, not a synchronisation
        c1 = cpu_seconds(child.pid)
        calls = sum(emu.call(cmd="calls").values())
        idle_decrypts = emu.call(cmd="decrypts")
        rss, hwm = proc_status(child.pid, "VmRSS"), proc_status(child.pid, "VmHWM")
        anon, file = proc_status(child.pid, "RssAnon"), proc_status(child.pid, "RssFile")
        pss_anon = proc_status(child.pid, "Pss_Anon", "smaps_rollup")
        pss_file = proc_status(child.pid, "Pss_File", "smaps_rollup")
        polls = metric(port, "ssm_injector_polls_total") - p0
        if polls < 1:
            raise SystemExit(f"watch_bench: no poll in {args.idle_seconds} s")

        floor = sdk_floor(env, [f"/wb/app/p{i:03d}" for i in range(args.n)], args.floor_calls)

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
        print(f"  idle RSS            {rss / 1024:.2f} MiB after {args.idle_seconds:.0f} s idle "
              f"(peak VmHWM {hwm / 1024:.2f} MiB)")
        print(f"    RssAnon {anon / 1024:.2f} MiB, RssFile {file / 1024:.2f} MiB; "
              f"Pss_Anon {pss_anon / 1024:.2f} MiB, Pss_File {pss_file / 1024:.2f} MiB")
        print(f"  idle polls          {polls:.0f} in {args.idle_seconds:.0f} s: {calls / polls:.1f} API calls "
              f"per poll, {(c1 - c0) / polls * 1000:.2f} ms CPU per poll (/proc utime+stime, no scrape in the window)")
        per_poll = (c1 - c0) / polls * 1000
        if floor is not None:
            print(f"  SDK floor           {floor:.3f} ms CPU per call (bench/sdk_floor.rs, same calls): "
                  f"{floor * calls / polls:.2f} ms for {calls / polls:.1f} calls; "
                  f"the sidecar's poll is {per_poll / (floor * calls / polls):.2f}x that")
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
