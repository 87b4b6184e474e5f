#!/usr/bin/env python3
"""Benchmark of `ssm-injector hub` against moto (through the counting proxy).

    .venv/bin/python bench/hub_bench.py            # both tables (about 1 minute)
    .venv/bin/python bench/hub_bench.py --calls-only

1. AWS calls per poll for 20 names, 1,000 names and one path of 100 parameters (one
   client, after the first read): the calls at the proxy over 4 polls, divided by 4.
2. AWS calls/s with 1, 100 and 1,000 clients long-polling the same 20 names (goal: flat),
   with the hub's RSS (VmRSS, and the peak VmHWM) and CPU (utime + stime from /proc) while
   they wait (--window seconds after every client is held and one poll has passed), and
   the CPU time it spent taking the clients (TLS handshakes and first answers).

Clients are asyncio tasks, one HTTP/1.1 TLS connection each (the certificate is not
checked: this measures the hub, not PKI). Uses target/release/ssm-injector (or
$SSM_INJECTOR_BIN). Rotation-to-file latency through the hub: bench/hub_latency.py.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from common import Emulator, Hub, require_binary

INTERVAL_S = 1.0
HUB_ARGS = ["--interval", f"{int(INTERVAL_S * 1000)}ms", "--max-tps", "1000", "--burst", "1000"]

POLLS_COUNTED = 4
POLLS = "ssm_injector_hub_polls_total{kind=\"interval\",outcome=\"ok\"}"


async def polls_after(hub: Hub, n: int) -> None:
    start = await hub.metric(POLLS)
    while await hub.metric(POLLS) < start + n:
        await asyncio.sleep(0.05)


async def calls_per_poll(emu: Emulator, directory: str) -> list[tuple[str, float, str]]:
    rows = []
    cases = [
        ("20 names", {"names": [f"/hb/n/p{i:04d}" for i in range(20)]}),
        ("1,000 names", {"names": [f"/hb/n/p{i:04d}" for i in range(1000)]}),
        ("1 path of 100", {"paths": [{"path": "/hb/path/", "recursive": True}]}),
    ]
    for label, req in cases:
        hub = Hub(emu.proxy, directory, HUB_ARGS)
        try:
            await hub.wait_up()
            await hub.watch(req)
            await polls_after(hub, 1)
            emu.call(cmd="reset_calls")
            await polls_after(hub, POLLS_COUNTED)
            calls = emu.call(cmd="calls")
            rows.append((label, sum(calls.values()) / POLLS_COUNTED, ",".join(sorted(calls))))
        finally:
            hub.close()
    return rows


async def fleet(emu: Emulator, directory: str, clients: int, window: float) -> dict:
    names = [f"/hb/n/p{i:04d}" for i in range(20)]
    hub = Hub(emu.proxy, directory, HUB_ARGS)
    try:
        await hub.wait_up()
        first = await hub.watch({"names": names})
        held = {"names": names, "known": first["versions"], "wait_seconds": 55}

        async def client() -> None:
            while True:
                answer = await hub.watch(held)
                held["known"] = answer["versions"]

        setup_cpu = hub.cpu_s()
        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        while await hub.metric("ssm_injector_hub_waiting_clients") < clients:
            await asyncio.sleep(0.1)
        setup_cpu = hub.cpu_s() - setup_cpu
        await polls_after(hub, 1)
        emu.call(cmd="reset_calls")
        cpu0, t0 = hub.cpu_s(), time.monotonic()
        await asyncio.sleep(window)
        cpu1, t1 = hub.cpu_s(), time.monotonic()
        calls = sum(emu.call(cmd="calls").values())
        result = {"clients": clients, "calls_per_s": calls / (t1 - t0),
                  "rss_mib": hub.rss_mib(), "hwm_mib": hub.hwm_mib(),
                  "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "setup_cpu_s": setup_cpu,
                  "waiting": await hub.metric("ssm_injector_hub_waiting_clients")}
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return result
    finally:
        hub.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls-only", action="store_true")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per row")
    args = parser.parse_args()
    require_binary("hub_bench")
    emu = Emulator("hub_bench")
    try:
        for i in range(1000):
            emu.aws("ssm", "put_parameter", Name=f"/hb/n/p{i:04d}", Value="v", Type="SecureString")
        for i in range(100):
            emu.aws("ssm", "put_parameter", Name=f"/hb/path/q{i:03d}", Value="v", Type="String")
        with tempfile.TemporaryDirectory() as d:
            print(f"hub interval {INTERVAL_S:g} s, moto 5.2.1 through the counting proxy\n")
            print(f"{'watched':<16} {'calls per poll':>14}  operations")
            for label, n, ops in await calls_per_poll(emu, d):
                print(f"{label:<16} {n:>14g}  {ops}")
            if args.calls_only:
                return
            print(f"\n{'clients':>8} {'held':>5} {'AWS calls/s':>12} {'hub RSS MiB':>12} "
                  f"{'peak MiB':>9} {'hub CPU %':>10} {'CPU s to take them':>19}")
            for clients in (1, 100, 1000):
                r = await fleet(emu, d, clients, args.window)
                print(f"{r['clients']:>8} {r['waiting']:>5.0f} {r['calls_per_s']:>12.2f} "
                      f"{r['rss_mib']:>12.1f} {r['hwm_mib']:>9.1f} {r['cpu_pct']:>10.1f} "
                      f"{r['setup_cpu_s']:>19.2f}")
    finally:
        emu.close()


if __name__ == "__main__":
    asyncio.run(main())
