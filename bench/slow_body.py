#!/usr/bin/env python3
"""Slow-body clients against `ssm-injector webhook` (issue 16): each client declares
`Content-Length: 8000000` and then sends one byte per TLS record every few milliseconds.
Prints the webhook's RSS (VmRSS) idle and while the clients run, how many body bytes they
sent, and when the webhook closed each connection.

    .venv/bin/python bench/slow_body.py --binary target/release/ssm-injector
    .venv/bin/python bench/slow_body.py --binary /path/to/old/ssm-injector --clients 8 --seconds 20

Loopback only; the certificate is a throwaway self-signed one (openssl).
"""

import argparse
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_client():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def healthy(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with tls_client().wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def slow_client(port, every, seconds, result):
    start = time.monotonic()
    sent = 0
    closed = None
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=seconds + 5)
        s = tls_client().wrap_socket(raw, server_hostname="localhost")
        s.sendall(
            b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 8000000\r\n\r\n"
        )
        start = time.monotonic()
        s.setblocking(False)
        while time.monotonic() - start < seconds:
            try:
                if s.recv(4096) == b"":
                    closed = time.monotonic() - start
                    break
                closed = time.monotonic() - start  # an answer: the server refused
                break
            except ssl.SSLWantReadError:
                pass
            except OSError:
                closed = time.monotonic() - start
                break
            try:
                s.send(b" ")  # one TLS record per call
                sent += 1
            except (ssl.SSLWantWriteError, BlockingIOError):
                pass
            except OSError:
                closed = time.monotonic() - start
                break
            time.sleep(every)
        s.close()
    except OSError as e:
        result["error"] = str(e)
    result["sent"] = sent
    result["closed"] = closed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/ssm-injector")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--every", type=float, default=0.003, help="seconds between bytes")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--extra", default="", help="more webhook flags, space separated")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost"],
            check=True, capture_output=True,
        )
        port = free_port()
        cmd = [args.binary, "webhook", f"--cert={cert}", f"--key={key}",
               f"--listen=127.0.0.1:{port}"] + args.extra.split()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={"PATH": os.environ.get("PATH", "")})
        try:
            deadline = time.monotonic() + 20
            while not healthy(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"webhook did not start: {cmd}")
                time.sleep(0.05)
            idle = rss_kib(proc.pid)
            results = [{} for _ in range(args.clients)]
            threads = [threading.Thread(target=slow_client,
                                        args=(port, args.every, args.seconds, r))
                       for r in results]
            for t in threads:
                t.start()
            peak, samples = idle, []
            began = time.monotonic()
            while any(t.is_alive() for t in threads):
                kib = rss_kib(proc.pid)
                peak = max(peak, kib)
                samples.append((time.monotonic() - began, kib))
                time.sleep(0.25)
            for t in threads:
                t.join()
            end = rss_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    sent = sum(r.get("sent", 0) for r in results)
    closed = sorted(r["closed"] for r in results if r.get("closed") is not None)
    print(f"binary: {args.binary} {args.extra}".rstrip())
    print(f"clients: {args.clients}, one byte every {args.every * 1000:g} ms, "
          f"at most {args.seconds:g} s")
    print(f"webhook RSS: idle {idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
          f"after {end / 1024:.1f} MiB")
    print(f"body bytes sent: {sent} ({sent / 1024:.1f} KiB)")
    if closed:
        print(f"connections closed by the webhook: {len(closed)}/{args.clients}, "
              f"after {closed[0]:.2f}-{closed[-1]:.2f} s")
    else:
        print(f"connections closed by the webhook: 0/{args.clients} "
              f"(all held for the full {args.seconds:g} s)")
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        print(f"client errors: {errors[:3]}")


if __name__ == "__main__":
    main()
