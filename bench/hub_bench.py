#!/usr/bin/env python3
"""Benchmark of `ssm-injector hub` against moto (through the counting proxy).

    .venv/bin/python bench/hub_bench.py            # both tables (about 1 minute)
    .venv/bin/python bench/hub_bench.py --calls-only

1. AWS calls per poll for 20 names, 1,000 names and one path of 100 parameters (one
   client, after the first read).
2. AWS calls/s with 1, 100 and 1,000 clients long-polling the same 20 names (goal: flat),
   with the hub's RSS and CPU while they wait.

Clients are asyncio tasks, one HTTP/1.1 TLS connection each (the certificate is not
checked: this measures the hub, not PKI). Uses target/release/ssm-injector.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from emulator_client import Emulator  # noqa: E402

BIN = os.path.join(REPO, "target", "release", "ssm-injector")
INTERVAL_S = 1.0


def self_signed(directory: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    c, k = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    with open(c, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(k, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return c, k


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, emu: Emulator, directory: str) -> None:
        cert, key = self_signed(directory)
        self.port = free_port()
        env = {"PATH": os.environ.get("PATH", ""), "AWS_ENDPOINT_URL": emu.proxy,
               "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        self.proc = subprocess.Popen(
            [BIN, "hub", "--listen", f"127.0.0.1:{self.port}", "--cert", cert, "--key", key,
             "--interval", f"{int(INTERVAL_S * 1000)}ms", "--max-tps", "1000", "--burst", "1000"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.ctx,
                                                       server_hostname="localhost")
        try:
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), rest

    async def watch(self, req: dict) -> dict:
        status, body = await self.request("POST", "/v1/watch", json.dumps(req).encode())
        if status != 200:
            raise RuntimeError(f"hub answered {status}: {body[:200]!r}")
        return json.loads(body)

    async def metric(self, series: str) -> float:
        _, body = await self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    async def wait_up(self) -> None:
        for _ in range(500):
            try:
                if (await self.request("GET", "/healthz"))[0] == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.02)
        raise SystemExit("the hub did not start")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


POLLS = "ssm_injector_hub_polls_total{kind=\"interval\",outcome=\"ok\"}"


async def polls_after(hub: Hub, n: int) -> None:
    start = await hub.metric(POLLS)
    while await hub.metric(POLLS) < start + n:
        await asyncio.sleep(0.05)


def per_poll(requests: list[dict], needle: str) -> list[int]:
    """Calls per whole poll: a poll starts with a request without NextToken."""
    groups: list[int] = []
    for r in requests:
        if needle not in r["body"]:
            continue
        if "NextToken" not in r["body"]:
            groups.append(1)
        elif groups:
            groups[-1] += 1
    return groups[:-1]


async def calls_per_poll(emu: Emulator, directory: str) -> list[tuple[str, int]]:
    rows = []
    cases = [
        ("20 names", {"names": [f"/hb/n/p{i:04d}" for i in range(20)]}, "/hb/n/"),
        ("1,000 names", {"names": [f"/hb/n/p{i:04d}" for i in range(1000)]}, "/hb/n/"),
        ("1 path of 100", {"paths": [{"path": "/hb/path/", "recursive": True}]}, "/hb/path"),
    ]
    for label, req, needle in cases:
        hub = Hub(emu, directory)
        try:
            await hub.wait_up()
            await hub.watch(req)
            await polls_after(hub, 1)
            emu.call(cmd="reset_calls")
            await polls_after(hub, 4)
            groups = per_poll(emu.call(cmd="requests"), needle)
            ops = sorted({r["op"] for r in emu.call(cmd="requests")})
            rows.append((label, groups[-1] if groups else 0, ",".join(ops)))
        finally:
            hub.close()
    return rows


async def fleet(emu: Emulator, directory: str, clients: int, window: float) -> dict:
    names = [f"/hb/n/p{i:04d}" for i in range(20)]
    hub = Hub(emu, directory)
    try:
        await hub.wait_up()
        first = await hub.watch({"names": names})
        held = {"names": names, "known": first["versions"], "wait_seconds": 55}

        async def client() -> None:
            while True:
                answer = await hub.watch(held)
                held["known"] = answer["versions"]

        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        while await hub.metric("ssm_injector_hub_waiting_clients") < clients:
            await asyncio.sleep(0.1)
        await polls_after(hub, 1)
        emu.call(cmd="reset_calls")
        cpu0, t0 = hub.cpu_s(), time.monotonic()
        await asyncio.sleep(window)
        cpu1, t1 = hub.cpu_s(), time.monotonic()
        calls = sum(emu.call(cmd="calls").values())
        result = {"clients": clients, "calls_per_s": calls / (t1 - t0),
                  "rss_mib": hub.rss_mib(), "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
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
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} is missing: cargo build --release")
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
                print(f"{label:<16} {n:>14}  {ops}")
            if args.calls_only:
                return
            print(f"\n{'clients':>8} {'AWS calls/s':>12} {'hub RSS MiB':>12} {'hub CPU %':>10}")
            for clients in (1, 100, 1000):
                r = await fleet(emu, d, clients, args.window)
                print(f"{r['clients']:>8} {r['calls_per_s']:>12.2f} {r['rss_mib']:>12.1f} "
                      f"{r['cpu_pct']:>10.1f}")
    finally:
        emu.close()


if __name__ == "__main__":
    asyncio.run(main())
