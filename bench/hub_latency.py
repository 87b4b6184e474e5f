#!/usr/bin/env python3
"""Rotation-to-file latency through the version hub: real sidecars following one hub on moto.

    .venv/bin/python bench/hub_latency.py                      # 4 rows, about 5 minutes
    .venv/bin/python bench/hub_latency.py --sidecars 50 --rotations 20 --poll-interval 5s \\
        --modes push,poll --budgets 20,10000

Starts one `ssm-injector hub` and --sidecars release sidecars (`render --watch --hub URL
--hub-ca FILE --interval 1h`, so they never poll AWS themselves while the hub answers),
each writing the same parameter to its own file in one temporary directory. Then it
rotates the parameter --rotations times with boto3 `put_parameter` (straight to moto) and
times, for every sidecar and rotation, the span from `put_parameter` returning to the new
value being in that sidecar's file. The files are watched with inotify (a rename into
place or a close after writing wakes the benchmark; the file is then read), not polled.

Rows (one hub and one fleet each):
  * push: hub `--interval 1h --queue-url <moto SQS queue>`; after each put the benchmark
    sends the EventBridge "Parameter Store Change" message to the queue (its span is part
    of the latency, as EventBridge's delivery would be);
  * poll: hub `--interval --poll-interval`, no queue. Each put comes after a random delay
    in [0, interval), so rotations land at random points of the hub's poll cycle.
and each with every --client-budget of --budgets. The hub answers each woken client
`spread_ms = watchers x ceil(names/10) / client_budget` and the client re-fetches at a
random point within it: with the default budget (20) and 50 sidecars of 1 name that is
2.5 s, so a high budget shows the hub's own path.

Columns: spread_ms as the sidecars logged it; p50 / p99 / max over every (sidecar,
rotation); "first" = the median over rotations of the fastest sidecar (the hub's path
without the spread); AWS calls per rotation seen at the counting proxy (sidecars and hub;
the benchmark's own puts and sends go straight to moto and are not counted).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import re
import secrets
import select
import shutil
import statistics
import struct
import subprocess
import tempfile
import time

import boto3

from common import (BIN, Emulator, Hub, aws_env, percentile, require_binary, seconds,
                    wait_for)

NAME = "/hl/app/rotated"
WAITING = "ssm_injector_hub_waiting_clients"


class DirWatch:
    """inotify on one directory: names renamed into it or closed after writing."""

    IN_CLOSE_WRITE, IN_MOVED_TO = 0x8, 0x80

    def __init__(self, directory: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, directory.encode(),
                                  self.IN_CLOSE_WRITE | self.IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")

    def wait(self, timeout: float) -> tuple[float, set[str]]:
        """(monotonic time when the events were read, the names), or no names after
        `timeout` seconds."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        now = time.monotonic()
        if not ready:
            return now, set()
        data, names, i = os.read(self.fd, 1 << 16), set(), 0
        while i < len(data):
            _, _, _, length = struct.unpack_from("iIII", data, i)
            names.add(data[i + 16:i + 16 + length].rstrip(b"\0").decode())
            i += 16 + length
        return now, names

    def drain(self) -> None:
        while self.wait(0)[1]:
            pass

    def close(self) -> None:
        os.close(self.fd)


def parameter_event(name: str) -> str:
    """A `Parameter Store Change` event as EventBridge delivers it to SQS."""
    return json.dumps({
        "version": "0", "id": secrets.token_hex(16), "detail-type": "Parameter Store Change",
        "source": "aws.ssm", "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": "us-east-1",
        "resources": [f"arn:aws:ssm:us-east-1:123456789012:parameter{name}"],
        "detail": {"operation": "Update", "name": name, "type": "String"}})


def contains(path: str, value: str) -> bool:
    try:
        with open(path) as f:
            return value in f.read()
    except FileNotFoundError:
        return False


def run_row(emu: Emulator, aws: dict, args, mode: str, budget: float) -> dict:
    interval = "1h" if mode == "push" else args.poll_interval
    hub_args = ["--interval", interval, "--client-budget", f"{budget:g}"]
    queue_url = None
    if mode == "push":
        # A queue of its own: a receive the previous row's hub left waiting in moto would
        # take this row's first message and hide it for the visibility timeout (30 s).
        queue_url = aws["sqs"].create_queue(
            QueueName=f"ssm-injector-hub-latency-{secrets.token_hex(4)}")["QueueUrl"]
        hub_args += ["--queue-url", queue_url]
    rng = random.Random(args.seed)
    d = tempfile.mkdtemp(prefix="hub-latency-")
    try:
        files, logs = os.path.join(d, "files"), os.path.join(d, "logs")
        os.mkdir(files)
        os.mkdir(logs)
        hub = Hub(emu.proxy, d, hub_args, log=os.path.join(logs, "hub.log"))
        sidecars: list[subprocess.Popen] = []
        watch = None
        try:
            hub.wait_up_sync()
            # Answered after the hub's first read of the name: a rotation cannot race it.
            hub.watch_sync({"names": [NAME], "wait_seconds": 0})
            for i in range(args.sidecars):
                with open(os.path.join(logs, f"{i}.log"), "wb") as log:
                    sidecars.append(subprocess.Popen(
                        [BIN, "render", "--watch", "--hub", hub.url, "--hub-ca", hub.ca_file,
                         "--interval", "1h", "--listen", "off", "--instance-id", f"pod-{i}",
                         "--param", f"V={NAME}", "--output", os.path.join(files, f"{i}.env")],
                        env=aws_env(emu.proxy), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=log))
            paths = [os.path.join(files, f"{i}.env") for i in range(args.sidecars)]

            def all_held() -> bool:
                for c in sidecars:
                    if c.poll() is not None:
                        raise SystemExit(f"hub_latency: a sidecar exited with {c.returncode}")
                return hub.metric_sync(WAITING) >= args.sidecars

            wait_for("every sidecar's first file", lambda: all(map(os.path.exists, paths)))
            wait_for(f"{args.sidecars} sidecars held by the hub", all_held, 60, 0.02)
            watch = DirWatch(files)
            emu.call(cmd="reset_calls")
            limit = seconds(interval if mode == "poll" else "0s") + 60.0
            latencies: list[list[float]] = []
            missed = 0
            for _ in range(args.rotations):
                if mode == "poll":
                    # A random phase of the hub's poll cycle (not synchronisation).
                    time.sleep(rng.uniform(0, seconds(interval)))
                value = f"rot-{secrets.token_hex(8)}"
                watch.drain()
                aws["ssm"].put_parameter(Name=NAME, Value=value, Type="String", Overwrite=True)
                t0 = time.monotonic()
                if mode == "push":
                    aws["sqs"].send_message(QueueUrl=queue_url, MessageBody=parameter_event(NAME))
                pending = {f"{i}.env": i for i in range(args.sidecars)}
                lat = [0.0] * args.sidecars
                while pending:
                    now, names = watch.wait(min(0.5, t0 + limit - time.monotonic()))
                    for name in names & pending.keys():
                        if contains(os.path.join(files, name), value):
                            lat[pending.pop(name)] = now - t0
                    if not names:
                        # A safety net: an event inotify did not deliver shows up here.
                        for name in list(pending):
                            if contains(os.path.join(files, name), value):
                                lat[pending.pop(name)] = now - t0
                                missed += 1
                        if pending and now > t0 + limit:
                            raise SystemExit(f"hub_latency: {len(pending)} files still lack "
                                             f"the rotation after {limit:.0f} s ({d})")
                latencies.append(lat)
                wait_for("every sidecar held again", all_held, 60, 0.005)
            calls = emu.call(cmd="calls")
        finally:
            if watch is not None:
                watch.close()
            for c in sidecars:
                c.terminate()
            for c in sidecars:
                try:
                    c.wait(10)
                except subprocess.TimeoutExpired:
                    c.kill()
                    c.wait()
            hub.close()
            if queue_url:
                aws["sqs"].delete_queue(QueueUrl=queue_url)
        spreads = []
        for i in range(args.sidecars):
            with open(os.path.join(logs, f"{i}.log"), errors="replace") as f:
                spreads += [int(m) for m in re.findall(r"spread_ms[=\":\s]+(\d+)", f.read())]
    finally:
        if args.keep:
            print(f"      (files and logs kept in {d})")
        else:
            shutil.rmtree(d, ignore_errors=True)
    flat = [x * 1000 for lat in latencies for x in lat]
    return {"mode": mode, "interval": interval, "budget": budget,
            "spread_ms": statistics.median(spreads) if spreads else float("nan"),
            "samples": len(flat), "p50": percentile(flat, 50), "p99": percentile(flat, 99),
            "max": max(flat), "first": statistics.median(min(lat) * 1000 for lat in latencies),
            "calls": {op: n / args.rotations for op, n in sorted(calls.items())},
            "missed": missed, "latencies_ms": [[x * 1000 for x in lat] for lat in latencies]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sidecars", type=int, default=50)
    ap.add_argument("--rotations", type=int, default=20)
    ap.add_argument("--poll-interval", default="5s", help="the hub's --interval in poll rows")
    ap.add_argument("--modes", default="push,poll")
    ap.add_argument("--budgets", default="20,10000", help="the hub's --client-budget values")
    ap.add_argument("--seed", type=int, default=1, help="of the random phases of poll rows")
    ap.add_argument("--json", help="also write the rows (with every latency) to this file")
    ap.add_argument("--keep", action="store_true", help="keep the files and logs")
    args = ap.parse_args()
    require_binary("hub_latency")
    emu = Emulator("hub_latency")
    try:
        aws = {s: boto3.client(s, endpoint_url=emu.moto, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
               for s in ("ssm", "sqs")}
        aws["ssm"].put_parameter(Name=NAME, Value="rot-initial", Type="String")
        print(f"hub latency: {args.sidecars} sidecars following one hub, 1 name each, "
              f"{args.rotations} rotations per row, moto 5.2.1 (calls through the counting "
              f"proxy)\n")
        print(f"{'mode':<5} {'hub --interval':<15} {'--client-budget':>15} {'spread_ms':>9} "
              f"{'samples':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'first ms':>8}  "
              f"AWS calls per rotation")
        rows = []
        for mode in args.modes.split(","):
            for budget in (float(b) for b in args.budgets.split(",")):
                r = run_row(emu, aws, args, mode, budget)
                rows.append(r)
                shown = f"{r['interval']} + SQS" if mode == "push" else r["interval"]
                label = f"{budget:g}" + (" (default)" if budget == 20 else "")
                calls = ", ".join(f"{op} {n:g}" for op, n in r["calls"].items())
                print(f"{mode:<5} {shown:<15} {label:>15} {r['spread_ms']:>9g} "
                      f"{r['samples']:>7} {r['p50']:>7.0f} {r['p99']:>7.0f} {r['max']:>7.0f} "
                      f"{r['first']:>8.0f}  {calls}", flush=True)
                if r["missed"]:
                    print(f"      ({r['missed']} writes were found by the fallback check, "
                          "not by inotify)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    finally:
        emu.close()


if __name__ == "__main__":
    main()
