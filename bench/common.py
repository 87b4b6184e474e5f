"""What the Python benchmarks share: the release binary, the environment of a process that
talks to the emulator, free ports, deadline polling, /proc figures, percentiles, a test
CA, and a running `ssm-injector hub` with an HTTPS client for it.

Run the benchmarks with the venv's python (.venv/bin/python, made by scripts/setup-venv).
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from emulator_client import Emulator  # noqa: E402,F401  (re-exported)

BIN = os.path.abspath(os.environ.get("SSM_INJECTOR_BIN")
                      or os.path.join(REPO, "target", "release", "ssm-injector"))
TICK = os.sysconf("SC_CLK_TCK")


def require_binary(who: str) -> None:
    if not os.path.exists(BIN):
        raise SystemExit(f"{who}: no binary at {BIN} (cargo build --release)")


def evict_from_page_cache(path: str) -> None:
    """Drop `path`'s clean pages from the page cache (nothing maps it yet), so the process
    about to start reads it from disk as on a node that has not cached it: the kernel then
    reads it in small folios and maps 64 KiB around each page touched. A file just written
    (a build, `cp`, an image pull) can sit in large folios, which Linux 6.18 maps whole:
    up to the binary's whole size in RssFile, whatever the code touches."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def aws_env(endpoint: str) -> dict[str, str]:
    """The whole environment of an ssm-injector process that reads AWS at `endpoint`
    (RUST_LOG is passed on, for debugging)."""
    env = {"RUST_LOG": os.environ["RUST_LOG"]} if "RUST_LOG" in os.environ else {}
    return env | {"PATH": os.environ.get("PATH", ""), "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def seconds(text: str) -> float:
    """A duration as the CLI takes it (250ms, 20s, 5m, 1h) in seconds."""
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port: int, timeout: float = 1.0) -> bool:
    """Whether the admin port answers /readyz with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def wait_for(what: str, check, limit: float = 60.0, step: float = 0.002):
    """Calls `check` until it returns something true (returned) or `limit` seconds pass."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        v = check()
        if v:
            return v
        time.sleep(step)
    raise SystemExit(f"{os.path.basename(sys.argv[0])}: timed out waiting for {what}")


def proc_status(pid: int, key: str, file: str = "status") -> int:
    """A line of /proc/PID/status in KiB (VmRSS, VmHWM, RssAnon), or of another file
    of that form (smaps_rollup: Pss_Anon, Pss_File)."""
    with open(f"/proc/{pid}/{file}") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`."""
    s = sorted(values)
    rank = max(1, -(-len(s) * q // 100))  # ceil
    return s[int(rank) - 1]


def test_pki(directory: str) -> tuple[str, str, str]:
    """A CA and a server certificate it signs for localhost and 127.0.0.1 (PEM files in
    `directory`): (ca file, certificate file, key file)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def cert(subject: str, key, issuer: str, signer, ca: bool):
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - day).not_valid_after(now + day)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("bench CA", ca_key, "bench CA", ca_key, True)
    server = cert("localhost", key, "bench CA", ca_key, False)
    paths = tuple(os.path.join(directory, n) for n in ("ca.crt", "tls.crt", "tls.key"))
    pem = serialization.Encoding.PEM
    for path, data in zip(paths, (ca.public_bytes(pem), server.public_bytes(pem),
                                  key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))):
        with open(path, "wb") as f:
            f.write(data)
    return paths


def parse_metric(text: str, series: str) -> float:
    """The value of one OpenMetrics series (name with its labels, as printed), else 0."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


class Hub:
    """`ssm-injector hub` on a free loopback port, reading AWS at `endpoint`, with `args`
    added (e.g. --interval). Clients of the benchmark do not check the certificate;
    sidecars get `ca_file`."""

    def __init__(self, endpoint: str, directory: str, args: list[str],
                 log: str | None = None) -> None:
        self.ca_file, cert, key = test_pki(directory)
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        stderr = open(log, "wb") if log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [BIN, "hub", "--listen", f"127.0.0.1:{self.port}", "--cert", cert, "--key", key,
                 *args],
                env=aws_env(endpoint), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr)
        finally:
            if log:
                stderr.close()
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # Asynchronous client: one HTTP/1.1 TLS connection per request, as sidecars make them.
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
        return parse_metric((await self.request("GET", "/metrics"))[1].decode(), series)

    async def wait_up(self) -> None:
        for _ in range(500):
            try:
                if (await self.request("GET", "/healthz"))[0] == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.02)
        raise SystemExit("the hub did not start")

    # Synchronous client, for benchmarks without an event loop.
    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def watch_sync(self, req: dict) -> dict:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=70)
        try:
            conn.request("POST", "/v1/watch", json.dumps(req),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"hub answered {resp.status}: {body[:200]!r}")
        return json.loads(body)

    def metric_sync(self, series: str) -> float:
        return parse_metric(self.get("/metrics")[1], series)

    def wait_up_sync(self) -> None:
        def up():
            if self.proc.poll() is not None:
                raise SystemExit(f"the hub exited with {self.proc.returncode}")
            try:
                return self.get("/healthz")[0] == 200
            except OSError:
                return False
        wait_for("the hub", up, 10.0, 0.02)

    def rss_mib(self) -> float:
        return proc_status(self.proc.pid, "VmRSS") / 1024

    def hwm_mib(self) -> float:
        return proc_status(self.proc.pid, "VmHWM") / 1024

    def cpu_s(self) -> float:
        return cpu_seconds(self.proc.pid)
