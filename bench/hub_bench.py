#!/usr/bin/env python3
"""Benchmark of `ssm-injector hub` against moto (through the counting proxy).

    .venv/bin/python bench/hub_bench.py            # all three tables (about 3 minutes)
    .venv/bin/python bench/hub_bench.py --calls-only
    .venv/bin/python bench/hub_bench.py --memory-only --held 2000,10000

1. AWS calls per poll for 20 names, 1,000 names and one path of 100 parameters (one
   client, after the first read): the calls at the proxy over 4 polls, divided by 4.
2. AWS calls/s with 1, 100 and 1,000 clients long-polling the same 20 names (goal: flat),
   with the hub's RSS (VmRSS, and the peak VmHWM) and CPU (utime + stime from /proc) while
   they wait (--window seconds after every client is held and one poll has passed), and
   the CPU time it spent taking the clients (TLS handshakes and first answers).

3. Memory per held client: the hub's VmRSS with no client held, then with 2,000 and 10,000
   clients held in long polls (--held), each row with its own hub; KiB per client is
   (held RSS - idle RSS) / clients. Clients start in batches of --batch, each batch once the
   hub holds every client before it, and a client whose connection is refused or reset, or
   that is answered 503, tries again after a short pause: the figure is what the hub holds
   for a waiting client, not an artefact of a burst of handshakes.

Clients are asyncio tasks, one HTTP/1.1 TLS connection each (the certificate is not
checked: this measures the hub, not PKI). Uses the binary the image ships when it is
built (static glibc, as the Dockerfile builds it):

    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
      cargo build --release --locked --target x86_64-unknown-linux-gnu

that is target/x86_64-unknown-linux-gnu/release/ssm-injector, else
target/release/ssm-injector; $SSM_INJECTOR_BIN overrides both. The binary is printed
first. Rotation-to-file latency through the hub: bench/hub_latency.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import ssl
import tempfile
import time

import common
from common import Emulator, Hub, proc_status, require_binary

# The static build the image ships, when there is one (see the module documentation).
SHIPPED = os.path.join(common.REPO, "target", "x86_64-unknown-linux-gnu", "release",
                       "ssm-injector")
if not os.environ.get("SSM_INJECTOR_BIN") and os.path.exists(SHIPPED):
    common.BIN = SHIPPED

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


async def held_memory(emu: Emulator, directory: str, clients: int, batch: int) -> dict:
    """The hub's RSS idle and with `clients` long polls held (see the module documentation)."""
    names = [f"/hb/n/p{i:04d}" for i in range(20)]
    hub = Hub(emu.proxy, directory, HUB_ARGS + ["--max-connections", str(clients + 1000)])
    try:
        await hub.wait_up()
        first = await hub.watch({"names": names})
        held = {"names": names, "known": first["versions"], "wait_seconds": 55}
        await polls_after(hub, 1)
        idle_kib = proc_status(hub.proc.pid, "VmRSS")
        retries = 0

        async def client() -> None:
            nonlocal retries
            while True:
                try:
                    answer = await hub.watch(held)
                    held["known"] = answer["versions"]
                except (OSError, ssl.SSLError, RuntimeError, IndexError, ValueError):
                    # Refused, reset or 503 while the hub is busy taking others: again.
                    retries += 1
                    await asyncio.sleep(0.05)

        async def waiting() -> float:
            # The metrics request is one more connection: retried like the clients.
            while True:
                try:
                    return await hub.metric("ssm_injector_hub_waiting_clients")
                except (OSError, ssl.SSLError, IndexError, ValueError):
                    await asyncio.sleep(0.05)

        tasks: list[asyncio.Task] = []
        started = time.monotonic()
        while len(tasks) < clients:
            n = min(batch, clients - len(tasks))
            tasks += [asyncio.create_task(client()) for _ in range(n)]
            deadline = time.monotonic() + 120
            while await waiting() < len(tasks):
                if time.monotonic() > deadline:
                    raise SystemExit(f"hub_bench: {len(tasks)} clients not held within 120 s")
                await asyncio.sleep(0.05)
        took = time.monotonic() - started
        # Let the held connections settle (buffers of the handshakes and first answers
        # released), then read the figures.
        await asyncio.sleep(2)
        held_now = await waiting()
        held_kib = proc_status(hub.proc.pid, "VmRSS")
        hwm_kib = proc_status(hub.proc.pid, "VmHWM")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {"clients": clients, "waiting": held_now, "idle_mib": idle_kib / 1024,
                "held_mib": held_kib / 1024, "hwm_mib": hwm_kib / 1024,
                "kib_per_client": (held_kib - idle_kib) / clients, "retries": retries,
                "took_s": took}
    finally:
        hub.close()


async def memory_rows(emu: Emulator, directory: str, rows: list[int], batch: int) -> list[dict]:
    return [await held_memory(emu, directory, n, batch) for n in rows]


def memory_table(rows: list[dict]) -> None:
    print(f"\n{'held clients':>12} {'waiting':>8} {'idle RSS MiB':>13} {'held RSS MiB':>13} "
          f"{'peak MiB':>9} {'KiB/client':>11} {'retries':>8} {'s to hold':>10}")
    for r in rows:
        print(f"{r['clients']:>12} {r['waiting']:>8.0f} {r['idle_mib']:>13.1f} "
              f"{r['held_mib']:>13.1f} {r['hwm_mib']:>9.1f} {r['kib_per_client']:>11.2f} "
              f"{r['retries']:>8} {r['took_s']:>10.1f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls-only", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per row")
    parser.add_argument("--held", default="2000,10000",
                        help="clients held per row of the memory table (comma-separated)")
    parser.add_argument("--batch", type=int, default=250, help="clients started at once")
    args = parser.parse_args()
    held_rows = [int(n) for n in args.held.split(",") if n]
    # One file descriptor per held client, here and in the hub (which inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(held_rows, default=0) * 2 + 1024)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    require_binary("hub_bench")
    print(f"binary: {common.BIN}")
    emu = Emulator("hub_bench")
    try:
        for i in range(1000):
            emu.aws("ssm", "put_parameter", Name=f"/hb/n/p{i:04d}", Value="v", Type="SecureString")
        for i in range(100):
            emu.aws("ssm", "put_parameter", Name=f"/hb/path/q{i:03d}", Value="v", Type="String")
        with tempfile.TemporaryDirectory() as d:
            print(f"hub interval {INTERVAL_S:g} s, moto 5.2.1 through the counting proxy\n")
            if args.memory_only:
                memory_table(await memory_rows(emu, d, held_rows, args.batch))
                return
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
            memory_table(await memory_rows(emu, d, held_rows, args.batch))
    finally:
        emu.close()


if __name__ == "__main__":
    asyncio.run(main())
