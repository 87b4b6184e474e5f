#!/usr/bin/env python3
"""AWS emulator for ssm-injector's tests, demo and bench: moto + a fault-injecting proxy.

Run:  .venv/bin/python tests/support/emulator.py      (venv from scripts/setup-venv)

Starts, all on 127.0.0.1 with OS-chosen ports:
  * moto's server (werkzeug, in-process; same app as moto.server.ThreadedMotoServer), and
  * a call-counting, fault-injecting HTTP/1.1 reverse proxy in front of it.
Then prints ONE line to stdout:
    {"moto": "http://127.0.0.1:PORT", "proxy": "http://127.0.0.1:PORT2"}
and reads commands, one JSON object per stdin line; each gets exactly one JSON line back:
    {"ok": true, "result": ...}   or   {"ok": false, "error": "text", "code": "AwsCodeOrNull"}
(if the command has an "id", it is echoed back). stdout carries only the protocol: fd 1 is
re-pointed at stderr at start-up, so stray prints and logs cannot corrupt it. EOF on stdin
(or SIGTERM/SIGINT) shuts everything down and exits 0, so a dying parent cleans us up.
EMULATOR_VERBOSE=1 logs every request of moto and the proxy to stderr.

Commands
  {"cmd": "aws", "service": "ssm", "op": "put_parameter", "args": {...}}
      boto3 client (us-east-1, creds testing/testing, endpoint = moto directly, NOT the
      proxy, so these calls are not counted; one cached client per service, no retries).
      op may be snake_case or the API name (PutParameter). Result: the response made
      JSON-safe (datetime -> ISO 8601 string, bytes -> base64, no ResponseMetadata).
      AWS errors -> ok false, error "Code: message", code "Code".
  {"cmd": "stop"}   stop moto: listening socket closed and open keep-alive connections
                    shut, so the port refuses connections. Data survives (moto's backends
                    are module globals). Answers once the port really refuses.
  {"cmd": "start"}  start moto again on the SAME port (SO_REUSEADDR, retries ~10 s).
                    Answers once it accepts connections.
  {"cmd": "faults", "rules": [rule, ...]}  replace the fault rules ([] clears); without
                    "rules" it returns the current rules with their counters. A rule:
        op        required; operation name (GetParameters) or "*"
        match     substring of the request body, or null (any)
        status    HTTP status of the fault; null -> no fault, only the delay (forwarded)
        code      error code, default "InternalFailure"; message default = code
        times     apply only to the next N matching requests (null: no limit)
        every     apply only to every Nth matching request (N, 2N, ...; null: each)
        delay_ms  sleep before answering / forwarding (default 0)
        close     true: drop the connection without any response (network failure)
      Fault response: status, Content-Type: application/x-amz-json-1.1,
      x-amzn-ErrorType: CODE, body {"__type": "CODE", "message": "..."}.
      Evaluation per request, rules in list order: every rule whose op/match fits counts
      the request ("matched"); a fitting rule fires if (every is null or matched % every
      == 0) and (times is null or applied < times). Firing delay-only rules all apply
      (their delays add up); of the firing status/close rules only the FIRST is applied
      (later ones are not consumed). Deterministic, no randomness.
  {"cmd": "calls"}        -> {"GetParameters": 3, ...} requests seen at the proxy by
                             operation (faulted ones included). X-Amz-Target's part after
                             the last dot, else the query protocol's Action, else "Unknown".
  {"cmd": "requests"}     -> [{"op": "GetParameters", "t": 1764000000.123, "body": "..."}]
                             every request seen at the proxy, in arrival order: wall-clock
                             arrival time (Unix seconds, before any delay) and the request
                             body as text (first 4 KiB), to tell callers apart by the names
                             they ask for.
  {"cmd": "decrypts"}     -> {"calls": {"GetParameters": 2, ...}, "values": 3} what KMS would
                             be asked: calls that decrypt (SSM reads with
                             WithDecryption=true, Secrets Manager GetSecretValue; faulted
                             ones included) and values decrypted (SecureStrings returned by
                             those SSM reads, including Secrets Manager references, plus one
                             per answered GetSecretValue). Each "requests" entry also has
                             "decrypt": true/false.
  {"cmd": "reset_calls"}  zero the counters and forget the requests.
  {"cmd": "reset"}        wipe moto's state (all services), like POST /moto-api/reset.
  {"cmd": "ping"}, {"cmd": "info"}  liveness / the URLs and whether moto is running.

moto 5.2.1 behaviour, verified through this emulator (tests must cope with it; the Rust
code must not depend on it). Account 123456789012, region us-east-1, boto3 1.44.8:
  * Secrets Manager reference: GetParameters Names=["/aws/reference/secretsmanager/demo/stripe"]
    (secret made with secretsmanager CreateSecret), WithDecryption=True -> one Parameter:
    Name "demo/stripe" (prefix DROPPED), Type "SecureString", Value = the SecretString
    (AWSCURRENT), Version 0 (always, also after PutSecretValue), ARN
    "arn:aws:ssm:us-east-1:123456789012:parameter/demo/stripe" (also without the prefix),
    DataType "text", and SourceResult = a JSON *string* of the secret's DescribeSecret
    data ({"ARN", "Name", "LastChangedDate": epoch secs, ..., "VersionIdsToStages":
    {"<uuid>": ["AWSCURRENT"], ...}}) -> rotation is visible as a new AWSCURRENT version id
    there (or by value digest). "NAME:AWSPREVIOUS" works as a selector (old value, same
    Name "demo/stripe"). GetParameters WITHOUT WithDecryption does not fail: Value comes
    back as "kms:alias/aws/ssm:<secret>"; GetParameter without it -> ValidationException
    "WithDecryption flag must be True for retrieving a Secret Manager secret.".
    A MISSING secret makes the WHOLE GetParameters call fail with HTTP 400
    ParameterNotFound ("An error occurred (ParameterNotFound) when referencing Secrets
    Manager: Secret /aws/reference/secretsmanager/nope not found.") - not InvalidParameters.
  * Selectors: GetParameters Names=["/p:stable", "/p:2", "/p"] -> three Parameters with
    the right Value/Version each, but every Name is the plain "/p", there is NO "Selector"
    key at all (absent, not null) and the ARN is the plain name's. Real AWS returns
    Selector ":stable"/":2". ORDER: Parameters come in Python set order of the requested
    names, i.e. random per moto process (hash randomisation), NOT request order - map by
    (Name, Version), never by position. GetParameter "/p:stable" works the same way.
    Missing label/version in GetParameters -> InvalidParameters ["/p:nolabel", "/p:9"];
    in GetParameter -> ParameterNotFound (label) / ParameterVersionNotFound (version).
  * ARN: GetParameters Names=["arn:aws:ssm:us-east-1:123456789012:parameter/app/x"] is
    NOT supported: Parameters [], InvalidParameters [the ARN] (moto checks
    name.split(":")[0] == "arn"). GetParameter with the same ARN (also with ":label" /
    ":1") works and returns Name "/app/x" (the plain name, not the requested ARN).
    Another account's ARN -> invalid / not found.
  * GetParametersByPath: 10 parameters per page (MaxResults default 10; > 10 ->
    ValidationException "Member must have value less than or equal to 10"), NextToken
    (a stringified offset, "10", "20", ...) whenever a page is FULL, so a multiple of 10
    ends with one extra, empty page (100 parameters -> 11 calls, 1,000 -> 101); no
    NextToken key on the last page. Each page re-reads every matching parameter (O(n) per
    page: paging 1,000 costs moto ~15 ms a page on 2 cores). Path with or without a
    trailing "/" is the same; Recursive=False -> direct children only.
  * InvalidParameters: every requested string that was not found, verbatim (selector/ARN
    kept), in request order, duplicates repeated (["/m", "/m"]), HTTP 200. Found
    duplicates are answered once. Names that break AWS's naming rules ("bad name!") are
    simply invalid, no ValidationException. > 10 names -> ValidationException "... Member
    must have length less than or equal to 10.".
  * SecureString without WithDecryption: Value "kms:alias/aws/ssm:<plaintext>".
  * DescribeParameters (the hub's version reads): ParameterFilters Name/Equals with up to
    50 Values (51 -> ValidationException "Member must have length less than or equal
    to 50"), Path with Recursive/OneLevel (trailing "/" or not, same result) all work
    and return Name and Version (no value). moto IGNORES MaxResults: pages are always
    10, with a NextToken whenever a page is full (so 20 names take 3 calls, 50 take 6,
    a path of 100 takes 11; AWS takes up to 50 per page). A Path filter value starting
    with /aws or /ssm -> ValidationException (AWS refuses it too); an ARN or an
    /aws/reference/secretsmanager/ name in a Name filter matches nothing. Both filters
    in one call are ANDed.
  * GetParameters WithDecryption=False with NAME:label / NAME:3 returns the version the
    selector resolves to (Name plain, no Selector, as above); the label moves with
    LabelParameterVersion.
  * Secrets Manager DescribeSecret: VersionIdsToStages {"<uuid>": ["AWSCURRENT"]}; after
    PutSecretValue the new id is AWSCURRENT and the old one AWSPREVIOUS. A missing secret
    -> ResourceNotFoundException.
"""

from __future__ import annotations

import os
import sys

# --- stdout is the protocol channel only ------------------------------------------
# Keep a private copy of fd 1 for the protocol, then point fd 1 (and sys.stdout) at
# stderr so nothing else (moto, werkzeug, boto3, print) can write to the protocol.
_PROTO = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

# Do not let the parent's AWS profile/config leak into the boto3 clients below.
for _k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM",
           "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE"):
    os.environ.pop(_k, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import base64  # noqa: E402
import datetime as _dt  # noqa: E402
import errno  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import uuid  # noqa: E402
from decimal import Decimal  # noqa: E402
from email.utils import formatdate  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

VERBOSE = os.environ.get("EMULATOR_VERBOSE", "") not in ("", "0")
HOST = "127.0.0.1"
REGION = "us-east-1"

logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                    format="emulator: %(name)s: %(message)s")
logging.getLogger("werkzeug").setLevel(logging.INFO if VERBOSE else logging.ERROR)
for _name in ("moto", "botocore", "boto3", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING if VERBOSE else logging.ERROR)

import boto3  # noqa: E402
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402
from botocore import xform_name  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app  # noqa: E402
from werkzeug.serving import ThreadedWSGIServer  # noqa: E402


def log(msg: str) -> None:
    print(f"emulator: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------
# moto
# ----------------------------------------------------------------------------------
class _TrackingWSGIServer(ThreadedWSGIServer):
    """werkzeug's threaded server that remembers its open client connections, so stop()
    can cut keep-alive connections too (otherwise they would keep being served)."""

    def __init__(self, *a, **kw):
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*a, **kw)

    def get_request(self):
        sock, addr = super().get_request()
        with self._conns_lock:
            self._conns.add(sock)
        return sock, addr

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _listen(port: int, deadline: float) -> socket.socket:
    """A listening socket on HOST:port (0 = any free port), retrying EADDRINUSE."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((HOST, port))
            s.listen(128)
            return s
        except OSError as e:
            s.close()
            if e.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _port_state(port: int) -> bool:
    """True if something accepts connections on HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class Moto:
    def __init__(self) -> None:
        self.app = DomainDispatcherApplication(create_backend_app)
        self.port = 0
        self.server: _TrackingWSGIServer | None = None
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.server is not None

    def start(self) -> str:
        with self.lock:
            if self.server is not None:
                return "already running"
            sock = _listen(self.port, time.monotonic() + 10.0)
            try:
                # werkzeug dups the fd; it binds nothing itself in fd mode.
                server = _TrackingWSGIServer(HOST, self.port, self.app, fd=sock.fileno())
            finally:
                sock.close()
            self.port = server.server_address[1]
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                 name="moto", daemon=True)
            t.start()
            self.server, self.thread = server, t
            deadline = time.monotonic() + 10.0
            while not _port_state(self.port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto does not accept connections on port {self.port}")
                time.sleep(0.02)
            return "started"

    def stop(self) -> str:
        with self.lock:
            if self.server is None:
                return "already stopped"
            server, self.server = self.server, None
            server.shutdown()          # serve_forever returns
            server.server_close()      # listening socket closed
            server.close_connections()  # cut keep-alive connections
            if self.thread is not None:
                self.thread.join(5)
            deadline = time.monotonic() + 10.0
            while _port_state(self.port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {self.port} still accepts connections")
                time.sleep(0.02)
            return "stopped"

    def reset(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            conn.request("POST", "/moto-api/reset", body=b"")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"moto reset: HTTP {resp.status}")
        finally:
            conn.close()


# ----------------------------------------------------------------------------------
# Fault rules and call counts
# ----------------------------------------------------------------------------------
_RULE_KEYS = {"op", "match", "status", "code", "message", "times", "every", "delay_ms", "close"}


class Rule:
    def __init__(self, d: dict) -> None:
        if not isinstance(d, dict):
            raise ValueError("each rule must be a JSON object")
        unknown = set(d) - _RULE_KEYS
        if unknown:
            raise ValueError(f"unknown rule key(s): {', '.join(sorted(unknown))}")
        self.op = d.get("op")
        if not isinstance(self.op, str) or not self.op:
            raise ValueError('rule needs "op" (an operation name or "*")')
        self.match = d.get("match")
        if self.match is not None and not isinstance(self.match, str):
            raise ValueError('"match" must be a string or null')
        self.status = d.get("status")
        if self.status is not None and (not _is_int(self.status) or not 100 <= self.status <= 599):
            raise ValueError('"status" must be an HTTP status (100-599) or null')
        self.code = d.get("code") or "InternalFailure"
        self.message = d.get("message") or self.code
        if not isinstance(self.code, str) or not isinstance(self.message, str):
            raise ValueError('"code" and "message" must be strings')
        self.times = d.get("times")
        self.every = d.get("every")
        for k in ("times", "every"):
            v = getattr(self, k)
            if v is not None and (not _is_int(v) or v < 1):
                raise ValueError(f'"{k}" must be a positive integer or null')
        self.delay_ms = d.get("delay_ms") or 0
        if not isinstance(self.delay_ms, (int, float)) or isinstance(self.delay_ms, bool) \
                or self.delay_ms < 0:
            raise ValueError('"delay_ms" must be a non-negative number')
        self.close = d.get("close") or False
        if not isinstance(self.close, bool):
            raise ValueError('"close" must be a boolean')
        self.spec = dict(d)
        self.matched = 0
        self.applied = 0

    def fits(self, op: str, body: bytes) -> bool:
        if self.op != "*" and self.op != op:
            return False
        return self.match is None or self.match.encode() in body

    def would_fire(self) -> bool:  # after self.matched was incremented
        return (self.every is None or self.matched % self.every == 0) and \
               (self.times is None or self.applied < self.times)

    def to_json(self) -> dict:
        return {**self.spec, "matched": self.matched, "applied": self.applied}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.decrypting: dict[str, int] = {}
        self.decrypted = 0
        self.requests: list[dict] = []
        self.rules: list[Rule] = []

    def on_request(self, op: str, body: bytes) -> tuple[float, Rule | None, dict]:
        """Count the call; return (delay seconds, fault rule or None, its request entry)."""
        decrypt = _decrypts(op, body)
        entry = {"op": op, "t": time.time(), "decrypt": decrypt, "decrypted": 0,
                 "body": body[:4096].decode("utf-8", "replace")}
        with self.lock:
            self.calls[op] = self.calls.get(op, 0) + 1
            if decrypt:
                self.decrypting[op] = self.decrypting.get(op, 0) + 1
            self.requests.append(entry)
            delay, fault = 0.0, None
            for r in self.rules:
                if not r.fits(op, body):
                    continue
                r.matched += 1
                if not r.would_fire():
                    continue
                if r.status is None and not r.close:
                    r.applied += 1
                    delay += r.delay_ms / 1000.0
                elif fault is None:
                    r.applied += 1
                    fault = r
                    delay += r.delay_ms / 1000.0
            return delay, fault, entry


_SSM_READS = ("GetParameter", "GetParameters", "GetParametersByPath")


def _decrypts(op: str, body: bytes) -> bool:
    """Whether a request asks for decrypted values (what KMS is asked for)."""
    if op == "GetSecretValue":
        return True
    if op not in _SSM_READS:
        return False
    try:
        return json.loads(body or b"{}").get("WithDecryption") is True
    except (ValueError, AttributeError):
        return False


def _decrypted_values(op: str, data: bytes) -> int:
    """SecureStrings (or secrets) in a decrypting call's successful answer."""
    if op == "GetSecretValue":
        return 1
    try:
        out = json.loads(data or b"{}")
    except ValueError:
        return 0
    params = out.get("Parameters") or ([out["Parameter"]] if out.get("Parameter") else [])
    return sum(1 for p in params if p.get("Type") == "SecureString")


# ----------------------------------------------------------------------------------
# Proxy
# ----------------------------------------------------------------------------------
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "content-length", "expect", "proxy-authorization", "proxy-authenticate"}


def _operation(headers, path: str, body: bytes) -> str:
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    ctype = (headers.get("Content-Type") or "").lower()
    if "x-www-form-urlencoded" in ctype and body:
        try:
            action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
            if action:
                return action[0]
        except ValueError:
            pass
    query = urllib.parse.urlsplit(path).query
    action = urllib.parse.parse_qs(query).get("Action")
    return action[0] if action else "Unknown"


def _read_chunked(rfile) -> bytes:
    out = bytearray()
    while True:
        line = rfile.readline(65537)
        if not line:
            raise ConnectionError("EOF in chunked body")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        out += rfile.read(size)
        rfile.readline(65537)  # CRLF after the chunk


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ssm-injector-emulator-proxy"
    sys_version = ""
    # set on the class by Proxy
    moto: Moto
    state: State

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args) -> None:
        if VERBOSE:
            log("proxy: " + (fmt % args))

    def _proxy(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = _read_chunked(self.rfile)
        else:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n > 0 else b""
        op = _operation(self.headers, self.path, body)
        delay, fault, entry = self.state.on_request(op, body)
        if delay > 0:
            time.sleep(delay)
        if fault is not None:
            if fault.close:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._send_error(fault.status, fault.code, fault.message)
            return
        try:
            status, reason, headers, data = self._forward(body)
        except (OSError, http.client.HTTPException) as e:
            self._send_error(502, "BadGateway", f"moto at {self.moto.url} is not reachable: {e}")
            return
        if status == 200 and _decrypts(op, body):
            n = _decrypted_values(op, data)
            with self.state.lock:
                self.state.decrypted += n
                entry["decrypted"] = n
        self.send_response_only(status, reason)
        for k, v in headers:
            if k.lower() not in _HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _forward(self, body: bytes):
        for attempt in (0, 1):
            reused = self._upstream is not None
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(HOST, self.moto.port, timeout=120)
            conn = self._upstream
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() not in _HOP:
                        conn.putheader(k, v)
                if body or self.command in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    conn.close()
                    self._upstream = None
                return resp.status, resp.reason, resp.getheaders(), data
            except (OSError, http.client.HTTPException):
                conn.close()
                self._upstream = None
                # A kept-alive upstream connection may have gone stale (moto restarted):
                # retry once on a fresh one; a fresh one failing means moto is down.
                if not reused or attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _send_error(self, status: int, code: str, message: str) -> None:
        data = json.dumps({"__type": code, "message": message}).encode()
        self.send_response_only(status)
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-ErrorType", code)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _proxy


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Proxy:
    def __init__(self, moto: Moto, state: State) -> None:
        handler = type("BoundProxyHandler", (ProxyHandler,), {"moto": moto, "state": state})
        self.server = _ProxyServer((HOST, 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, name="proxy", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------
class CommandError(Exception):
    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def json_safe(v):
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items() if k != "ResponseMetadata"}
    if isinstance(v, (list, tuple, set)):
        return [json_safe(x) for x in v]
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if hasattr(v, "read"):  # streaming body
        return base64.b64encode(v.read()).decode("ascii")
    return str(v)


class Emulator:
    def __init__(self) -> None:
        self.moto = Moto()
        self.state = State()
        self.moto.start()
        self.proxy = Proxy(self.moto, self.state)
        self.session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        self.clients: dict[str, object] = {}
        self.client_config = botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5, read_timeout=120)

    def client(self, service: str):
        c = self.clients.get(service)
        if c is None:
            try:
                c = self.session.client(service, endpoint_url=self.moto.url,
                                        config=self.client_config)
            except botocore.exceptions.UnknownServiceError:
                raise CommandError(f"unknown service {service!r} (a boto3 service name such as "
                                   "ssm, secretsmanager, kms, sts)", "UnknownService") from None
            self.clients[service] = c
        return c

    def handle(self, msg) -> object:
        if not isinstance(msg, dict):
            raise CommandError("a command must be a JSON object")
        cmd = msg.get("cmd")
        if cmd == "aws":
            return self.cmd_aws(msg)
        if cmd == "stop":
            return self.moto.stop()
        if cmd == "start":
            return self.moto.start()
        if cmd == "faults":
            return self.cmd_faults(msg)
        if cmd == "calls":
            with self.state.lock:
                return dict(sorted(self.state.calls.items()))
        if cmd == "requests":
            with self.state.lock:
                return list(self.state.requests)
        if cmd == "decrypts":
            with self.state.lock:
                return {"calls": dict(sorted(self.state.decrypting.items())),
                        "values": self.state.decrypted}
        if cmd == "reset_calls":
            with self.state.lock:
                self.state.calls.clear()
                self.state.decrypting.clear()
                self.state.decrypted = 0
                self.state.requests.clear()
            return None
        if cmd == "reset":
            if not self.moto.running:
                raise CommandError("moto is stopped")
            self.moto.reset()
            return None
        if cmd == "ping":
            return "pong"
        if cmd == "info":
            return {"moto": self.moto.url, "proxy": self.proxy.url, "moto_running": self.moto.running}
        raise CommandError(f"unknown cmd {cmd!r} (aws, stop, start, faults, calls, decrypts, requests, "
                           "reset_calls, reset, ping, info)")

    def cmd_aws(self, msg: dict):
        service, op, args = msg.get("service"), msg.get("op"), msg.get("args", {})
        if not isinstance(service, str) or not service:
            raise CommandError('"service" must be a string such as "ssm"')
        if not isinstance(op, str) or not op:
            raise CommandError('"op" must be a string such as "put_parameter"')
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise CommandError('"args" must be a JSON object')
        client = self.client(service)
        name = op if "_" in op or op.islower() else xform_name(op)
        fn = getattr(client, name, None)
        if name.startswith("_") or fn is None or name not in client.meta.method_to_api_mapping:
            raise CommandError(f"{service} has no operation {op!r}")
        try:
            return json_safe(fn(**args))
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            code = err.get("Code") or "ClientError"
            raise CommandError(f"{code}: {err.get('Message', '')}", code) from None
        except botocore.exceptions.BotoCoreError as e:
            raise CommandError(f"{type(e).__name__}: {e}", type(e).__name__) from None

    def cmd_faults(self, msg: dict):
        if "rules" not in msg:
            with self.state.lock:
                return [r.to_json() for r in self.state.rules]
        rules = msg["rules"]
        if rules is None:
            rules = []
        if not isinstance(rules, list):
            raise CommandError('"rules" must be a list')
        try:
            parsed = [Rule(r) for r in rules]
        except ValueError as e:
            raise CommandError(str(e)) from None
        with self.state.lock:
            self.state.rules = parsed
        return len(parsed)

    def close(self) -> None:
        try:
            self.proxy.close()
        except Exception as e:  # noqa: BLE001
            log(f"proxy shutdown: {e}")
        try:
            self.moto.stop()
        except Exception as e:  # noqa: BLE001
            log(f"moto shutdown: {e}")


def _send(obj) -> None:
    _PROTO.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
    _PROTO.flush()


def main() -> int:
    def on_signal(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        emu = Emulator()
    except BaseException as e:  # noqa: BLE001
        log(f"start-up failed: {type(e).__name__}: {e}")
        os._exit(1)
    try:
        _send({"moto": emu.moto.url, "proxy": emu.proxy.url})
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            reply: dict
            msg = None
            try:
                msg = json.loads(line)
                reply = {"ok": True, "result": emu.handle(msg)}
            except json.JSONDecodeError as e:
                reply = {"ok": False, "error": f"bad JSON: {e}", "code": None}
            except CommandError as e:
                reply = {"ok": False, "error": str(e), "code": e.code}
            except Exception as e:  # noqa: BLE001 - never die on a command
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}", "code": None}
            if isinstance(msg, dict) and "id" in msg:
                reply["id"] = msg["id"]
            _send(reply)
    except (BrokenPipeError, SystemExit, KeyboardInterrupt):
        pass
    finally:
        emu.close()
        try:
            _PROTO.flush()
        except OSError:
            pass
    # Daemon threads (moto/proxy handlers) must not delay the exit.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
