#!/usr/bin/env python3
"""What a watching sidecar makes KMS decrypt, counted at the emulator's proxy (what AWS
sees): decrypting calls (SSM reads with WithDecryption=true, GetSecretValue) and values
decrypted (SecureStrings returned by them), per idle poll and per rotation of one of --n
SecureStrings, in three modes:

  by-name  --param KEY=NAME for each of the N parameters
  by-path  --path over the N parameters
  hub      by name, following `ssm-injector hub` (--hub): the sidecar fetches only when
           the hub reports a change; "idle" is then per interval of the sidecar

Each binary given with --bin LABEL=PATH is measured in turn on the same moto (default:
target/release/ssm-injector or $SSM_INJECTOR_BIN), e.g. before and after:

  .venv/bin/python bench/decrypt_bench.py --bin before=/work/main/target/release/ssm-injector \\
      --bin after=target/release/ssm-injector
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import BIN, Emulator, Hub, aws_env, free_port, seconds, wait_for

POLLS = "ssm_injector_polls_total"


def metric(port: int, series: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(series + " ") or line.startswith(series + "{"))


def counted(emu: Emulator) -> tuple[int, int, int]:
    """(API calls, decrypting calls, values decrypted) since the last reset."""
    calls = sum(emu.call(cmd="calls").values())
    d = emu.call(cmd="decrypts")
    return calls, sum(d["calls"].values()), d["values"]


def measure(emu: Emulator, binary: str, mode: str, args, prefix: str) -> dict:
    tmp = tempfile.mkdtemp(prefix="decrypt-bench-")
    out = os.path.join(tmp, "app.env")
    port = free_port()
    hub = None
    child = None
    try:
        if mode == "by-path":
            spec = ["--path", f"{prefix}/"]
        else:
            spec = [a for i in range(args.n) for a in ("--param", f"P{i:03d}={prefix}/p{i:03d}")]
        extra = []
        if mode == "hub":
            hub = Hub(emu.proxy, tmp, ["--interval", args.interval])
            hub.wait_up_sync()
            extra = ["--hub", hub.url, "--hub-ca", hub.ca_file]
        env = aws_env(emu.proxy)
        child = subprocess.Popen([binary, "render", "--watch", "--interval", args.interval,
                                  "--listen", f"127.0.0.1:{port}", "--output", out, *spec,
                                  *extra],
                                 env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_for("the first render", lambda: os.path.exists(out))
        if mode == "hub":
            wait_for("the hub covering",
                     lambda: metric(port, "ssm_injector_hub_covering") >= 1, 30, 0.05)
        else:
            # Two polls after the first: the values are held.
            wait_for("a second poll", lambda: metric(port, POLLS) >= 2, 30, 0.05)

        # Idle.
        emu.call(cmd="reset_calls")
        if mode == "hub":
            time.sleep(seconds(args.interval) * args.idle_polls)  # a window, no sync
            polls = float(args.idle_polls)
        else:
            p0 = metric(port, POLLS)
            wait_for(f"{args.idle_polls} idle polls",
                     lambda: metric(port, POLLS) >= p0 + args.idle_polls, 120, 0.05)
            polls = metric(port, POLLS) - p0
        idle = counted(emu)

        # Rotations of one SecureString.
        emu.call(cmd="reset_calls")
        for r in range(1, args.rotations + 1):
            value = f"v7-{binary[-6:]}-{r}-{time.monotonic_ns()}"
            emu.aws("ssm", "put_parameter", Name=f"{prefix}/p007", Value=value,
                    Type="SecureString", Overwrite=True)
            needle = f"P007='{value}'"
            wait_for(f"rotation {r}", lambda: needle in open(out).read(), 60, 0.01)
        # The poll that saw the last rotation is over once the file shows it; a hub's
        # change is fetched once per sidecar.
        rot = counted(emu)
        return {"polls": polls, "idle": idle, "rotations": args.rotations, "rot": rot}
    finally:
        if child is not None:
            child.terminate()
            child.wait(10)
        if hub is not None:
            hub.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="SecureStrings watched")
    ap.add_argument("--interval", default="500ms")
    ap.add_argument("--idle-polls", type=int, default=10)
    ap.add_argument("--rotations", type=int, default=5)
    ap.add_argument("--modes", default="by-name,by-path,hub")
    ap.add_argument("--bin", action="append", default=[], metavar="LABEL=PATH")
    args = ap.parse_args()
    bins = [b.split("=", 1) for b in args.bin] or [["this", BIN]]
    for label, path in bins:
        if not os.path.exists(path):
            raise SystemExit(f"decrypt_bench: no binary {path} for {label}")
    emu = Emulator("decrypt_bench")
    try:
        print(f"{args.n} SecureStrings watched, --interval {args.interval}, moto via the "
              f"counting proxy; per idle poll ({args.idle_polls}) and per rotation of one "
              f"value ({args.rotations})")
        print(f"{'binary':<8} {'mode':<8} {'calls/poll':>10} {'decrypting':>10} "
              f"{'decrypted':>10} | {'calls/rot':>9} {'decrypting':>10} {'decrypted':>10}")
        for mode in args.modes.split(","):
            for label, path in bins:
                prefix = f"/db/{label}/{mode}"
                for i in range(args.n):
                    emu.aws("ssm", "put_parameter", Name=f"{prefix}/p{i:03d}",
                            Value=f"v{i}-0", Type="SecureString", Overwrite=True)
                m = measure(emu, path, mode, args, prefix)
                (ic, idc, idv), (rc, rdc, rdv) = m["idle"], m["rot"]
                p, r = m["polls"], m["rotations"]
                print(f"{label:<8} {mode:<8} {ic / p:>10.1f} {idc / p:>10.1f} {idv / p:>10.1f} "
                      f"| {rc / r:>9.1f} {rdc / r:>10.1f} {rdv / r:>10.1f}", flush=True)
    finally:
        emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
