#!/usr/bin/env python3
"""Regenerate src/hot-functions.txt, the linker's symbol order for the shipped binary
(lld --symbol-ordering-file, see the Dockerfile): every function an idle sidecar runs
(most instructions first), then those an idle `exec --watch` supervisor adds, then every
function start-up and the first render run.
Placed together at the start of the text they fill few pages, so the pages an idle
sidecar keeps mapped after start-up (src/trim.rs gives the rest back) are few, and a
one-shot render faults in fewer pages.

The list is exact, not sampled: the sidecar runs under valgrind's callgrind (100
parameters by name on moto, --interval 250ms); its counters are dumped once after the
first render (start-up) and once after --seconds of idle polls (the loop), during which
/metrics, /healthz and /readyz are read every second, as Prometheus and the kubelet do.
Then the same for `exec --watch -- sleep 1000000` (20 of the parameters, a third as long).

Usage (venv's python; needs valgrind). The names carry hashes that depend on the release
profile (`strip` included), so the binary must be the shipped build with its symbols
kept: the Dockerfile's RUSTFLAGS and cargo profile, only the final link told not to strip
(`cargo rustc` flags reach the binary's link, not the profile):

  RUSTFLAGS="<the Dockerfile's>" cargo rustc --release --locked \
      --target x86_64-unknown-linux-gnu --bin ssm-injector -- -C strip=none
  .venv/bin/python bench/hot_functions.py target/x86_64-unknown-linux-gnu/release/ssm-injector

Then build the shipped binary again: `cargo clean -p ssm-injector --release --target
x86_64-unknown-linux-gnu` first, since cargo does not see the list's content change (the
RUSTFLAGS name only its path) and would keep the binary linked with the old order.

A stale list is harmless: names that no longer exist are skipped by the linker
(--no-warn-symbol-ordering); only the layout, and so the idle RSS, gets worse.
`bench/watch_bench.py` prints the idle RSS to compare.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import REPO, Emulator, aws_env, free_port, ready, wait_for

FN = re.compile(r"(c?fn)=\((\d+)\)(?: (.*))?")


def functions(path: str) -> tuple[collections.Counter, set[str]]:
    """A callgrind dump: (instructions per function run, every function named in it)."""
    names: dict[str, str] = {}
    cost: collections.Counter = collections.Counter()
    current = None
    with open(path, errors="replace") as f:
        for line in f:
            m = FN.match(line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3).strip()
                if m.group(1) == "fn":
                    current = m.group(2)
                continue
            parts = line.split()
            if current and len(parts) >= 2 and line[:1] in "0123456789+-*" and parts[1].isdigit():
                cost[current] += int(parts[1])
    by_name: collections.Counter = collections.Counter()
    for key, c in cost.items():
        if key in names:
            by_name[names[key]] += c
    return by_name, set(names.values())


def record(binary: str, emu, tmp: str, label: str, command: list[str], ready, port: int,
           seconds: float) -> tuple[collections.Counter, set[str], collections.Counter, set[str]]:
    """`binary COMMAND` (which listens on `port`) under callgrind: (start-up cost, start-up
    functions, idle cost, idle functions), the idle window `seconds` long with /metrics,
    /healthz and /readyz read every second."""
    child = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={tmp}/{label}.%p",
         binary, *command],
        env=aws_env(emu.proxy), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"{label}: the first fetch", ready, limit=300)
        time.sleep(3)  # the trim after the first poll, under valgrind; not a synchronisation
        subprocess.run(["callgrind_control", "--dump=start-up", str(child.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        end = time.monotonic() + seconds  # the recorded window itself
        while time.monotonic() < end:
            for path in ("/metrics", "/healthz", "/readyz"):
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30).read()
            time.sleep(1)  # the scrape interval, not a synchronisation
        subprocess.run(["callgrind_control", "--dump=idle", str(child.pid)], check=True,
                       stdout=subprocess.DEVNULL)
    finally:
        child.terminate()
        child.wait(60)
    dumps = sorted(glob.glob(os.path.join(tmp, f"{label}.*.*")),
                   key=lambda p: int(p.rsplit(".", 1)[1]))
    if len(dumps) < 2:
        raise SystemExit(f"hot_functions: {label}: expected two callgrind dumps, found {dumps}")
    return (*functions(dumps[0]), *functions(dumps[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=float, default=30.0, help="idle polls recorded this long")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    emu = Emulator("hot_functions")
    tmp = tempfile.mkdtemp(prefix="hot-functions-")
    try:
        for i in range(100):
            emu.aws("ssm", "put_parameter", Name=f"/hf/app/p{i:03d}", Value=f"v{i}",
                    Type="SecureString" if i % 2 else "String")
        out = os.path.join(tmp, "app.env")
        names = [a for i in range(100) for a in ("--param", f"P{i:03d}=/hf/app/p{i:03d}")]
        port = free_port()
        sidecar = record(binary, emu, tmp, "sidecar",
                         ["render", "--watch", "--interval", "250ms", "--output", out, *names,
                          "--listen", f"127.0.0.1:{port}"],
                         lambda: os.path.exists(out), port, args.seconds)
        # exec --watch: the supervisor's loop (its command, `sleep`, runs natively: valgrind
        # does not follow the exec).
        port = free_port()
        supervisor = record(binary, emu, tmp, "supervisor",
                            ["exec", "--watch", "--interval", "250ms", *names[:20],
                             "--listen", f"127.0.0.1:{port}", "--", "sleep", "1000000"],
                            lambda: ready(port, 30), port, args.seconds / 3)
    finally:
        emu.close()
    start_cost, start_all, idle_cost, idle_all = sidecar
    sv_start_cost, sv_start_all, sv_idle_cost, sv_idle_all = supervisor
    # The sidecar's idle loop first, then what only the supervisor's adds, then start-up.
    order = [n for n, _ in idle_cost.most_common()]
    order += sorted(idle_all - set(order))
    seen = set(order)
    order += [n for n, _ in sv_idle_cost.most_common() if n not in seen]
    seen = set(order)
    order += sorted(sv_idle_all - seen)
    seen = set(order)
    order += [n for n, _ in (start_cost + sv_start_cost).most_common() if n not in seen]
    seen = set(order)
    order += sorted((start_all | sv_start_all) - seen)
    target = os.path.join(REPO, "src", "hot-functions.txt")
    with open(target, "w") as f:
        f.write("\n".join(order) + "\n")
    print(f"{len(order)} functions ({len(idle_all)} in the sidecar's idle loop, "
          f"{len(sv_idle_all - idle_all)} more in the supervisor's) written to "
          f"{os.path.relpath(target, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
