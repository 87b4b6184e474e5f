#!/usr/bin/env python3
"""A fleet of sidecars on one moto, behind the counting proxy: measured AWS calls/s next
to the capacity model's figure (`ssm-injector capacity`), and how evenly the calls spread.

Two fleets are started, each all at once (as after a node drain or a rollout):
  * "slots": every pod has its own identity (--instance-id pod-N), so it polls at its own
    slot of the interval (the default behaviour: the identity is the pod name);
  * "same slot": every pod has the SAME identity and no jitter: the worst case, a fleet
    polling in step, which is what per-pod slots prevent.
For each: calls/s over the window (after the start-up renders), the model's calls/s,
their ratio, the busiest second against the mean (1.0 = perfectly even), and the
decrypting calls in the window (the model's idle fleet decrypts nothing: polls read versions
with WithDecryption=false).

Usage: bench/fleet_bench.py [--pods 200] [--params 20] [--interval 20s] [--polls 3]
The binary is target/release/ssm-injector (or $SSM_INJECTOR_BIN). Run with the venv's
python (.venv/bin/python).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import tempfile
import time

from common import BIN, Emulator, aws_env, require_binary, seconds


def model_calls_per_second(pods: int, params: int, interval: str) -> float:
    out = subprocess.run([BIN, "capacity", "--pods", str(pods), "--params", str(params),
                          "--mode", "by-name", "--interval", interval, "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    est = json.loads(out)
    return float(est["steady_calls_per_second"])


def run_fleet(emu: Emulator, args, same_slot: bool) -> dict:
    tmp = tempfile.mkdtemp(prefix="fleet-bench-")
    env = aws_env(emu.proxy)
    names = [a for i in range(args.params) for a in ("--param", f"P{i:02d}=/fleet/app/p{i:02d}")]
    children = []
    try:
        emu.call(cmd="reset_calls")
        started = time.time()
        for n in range(args.pods):
            ident = "pod" if same_slot else f"app-7c9d8f6b5-{n:05d}"
            extra = ["--jitter", "0"] if same_slot else []
            children.append(subprocess.Popen(
                [BIN, "render", "--watch", "--interval", args.interval, "--listen", "off",
                 "--instance-id", ident, "--output", os.path.join(tmp, f"{n}.env"),
                 *extra, *names],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while sum(os.path.exists(os.path.join(tmp, f"{n}.env")) for n in range(args.pods)) \
                < args.pods:
            if time.monotonic() > deadline:
                raise SystemExit("fleet_bench: the fleet did not render within 120 s")
            for c in children:
                if c.poll() is not None:
                    raise SystemExit(f"fleet_bench: a sidecar exited with {c.returncode}")
            time.sleep(0.05)
        startup = time.time() - started
        # Measure from the first full interval after every pod rendered.
        window_start = time.time() + 1.0
        window = seconds(args.interval) * args.polls
        time.sleep(window + 1.0 + 1.0)
        requests = [r for r in emu.call(cmd="requests")
                    if window_start <= r["t"] < window_start + window
                    and r["op"].startswith("GetParameter")]
        alive = sum(c.poll() is None for c in children)
    finally:
        for c in children:
            c.kill()
        for c in children:
            c.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    per_second = collections.Counter(int(r["t"] - window_start) for r in requests)
    mean = len(requests) / window
    decrypting = sum(1 for r in requests if r.get("decrypt"))
    return {"calls": len(requests), "decrypting": decrypting, "window_s": window,
            "calls_per_s": mean,
            "peak_per_s": max(per_second.values(), default=0),
            "startup_s": startup, "alive": alive}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--params", type=int, default=20)
    ap.add_argument("--interval", default="20s")
    ap.add_argument("--polls", type=int, default=3, help="intervals measured")
    args = ap.parse_args()
    require_binary("fleet_bench")
    model = model_calls_per_second(args.pods, args.params, args.interval)
    emu = Emulator("fleet_bench")
    try:
        for i in range(args.params):
            emu.aws("ssm", "put_parameter", Name=f"/fleet/app/p{i:02d}", Value=f"v{i}",
                    Type="SecureString" if i % 2 else "String")
        print(f"fleet: {args.pods} sidecars x {args.params} names (by name), "
              f"--interval {args.interval}, {args.polls} intervals measured; "
              f"model: {model:.2f} calls/s")
        print(f"{'fleet':<10} {'calls':>6} {'calls/s':>8} {'model':>7} {'measured/model':>15} "
              f"{'busiest s':>10} {'busiest/mean':>13} {'start-up s':>11} {'decrypting':>10}")
        for same_slot in (False, True):
            r = run_fleet(emu, args, same_slot)
            if r["alive"] != args.pods:
                raise SystemExit(f"fleet_bench: only {r['alive']} of {args.pods} sidecars "
                                 "were still running")
            name = "same slot" if same_slot else "slots"
            print(f"{name:<10} {r['calls']:>6} {r['calls_per_s']:>8.2f} {model:>7.2f} "
                  f"{r['calls_per_s'] / model:>15.3f} {r['peak_per_s']:>10} "
                  f"{r['peak_per_s'] / r['calls_per_s']:>13.1f} {r['startup_s']:>11.1f} "
                  f"{r['decrypting']:>10}")
    finally:
        emu.close()


if __name__ == "__main__":
    main()
