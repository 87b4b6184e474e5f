#!/usr/bin/env bash
# Webhook under load on loopback: reviews/s, latency percentiles, the webhook's CPU and RSS.
#   bench/webhook_bench.sh [SECONDS] [CONNECTIONS]
# needs: h2load (apt-get install nghttp2-client), openssl, python3; a release build.
# Every request is a real AdmissionReview of an annotated pod, answered with a JSONPatch.
#
# The load generator is h2load over HTTP/1.1 (--h1), one thread: an event loop in C that
# spends far less CPU per request than the webhook, so most of the 2 cores are left to the
# webhook. Each connection keeps one request in flight. A warm-up run (2,000 reviews) comes
# first and is not counted; the percentiles come from h2load's per-request log of the
# measured run (time from sending the request to the end of the answer), and the webhook's
# CPU time (utime + stime from /proc) is read around that run alone: CPU per review holds
# even on a machine shared with other work, where reviews/s and latency do not.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-10}"; conns="${2:-32}"
bin="${SSM_INJECTOR_BIN:-$repo/target/release/ssm-injector}"
command -v h2load >/dev/null || { echo "webhook_bench: needs h2load (apt-get install nghttp2-client)" >&2; exit 1; }
[[ -x "$bin" ]] || { echo "webhook_bench: no binary at $bin (cargo build --release)" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
RUST_LOG=warn "$bin" webhook --cert "$tmp/tls.crt" --key "$tmp/tls.key" --listen "127.0.0.1:$port" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
cat > "$tmp/review.json" <<'JSON'
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b0b0b0b0-0000-4000-8000-000000000001","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"apps","operation":"CREATE","userInfo":{"username":"bench"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-","namespace":"apps","annotations":{"ssm-injector.io/inject":"true","ssm-injector.io/path":"/apps/prod/","ssm-injector.io/param-STRIPE_KEY":"/aws/reference/secretsmanager/apps/stripe#key","ssm-injector.io/mode":"init+sidecar"}},"spec":{"securityContext":{"runAsUser":1000,"runAsGroup":1000},"containers":[{"name":"app","image":"nginx"},{"name":"log","image":"busybox"}]}},"dryRun":false}}
JSON
truncate -s -1 "$tmp/review.json"   # no trailing newline: the body is the JSON alone
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
echo "webhook: $(basename "$bin"), loopback TLS, $conns connections, ${secs}s, h2load --h1 -t1, $(nproc) cores shared with h2load; load average $(cut -d' ' -f1-3 /proc/loadavg)"
load() { h2load --h1 -t1 -c"$conns" -m1 -d "$tmp/review.json" -H 'content-type: application/json' "$@" \
  "https://127.0.0.1:$port/mutate"; }
load -n 2000 > /dev/null
cpu0="$(cpu)"
load -D"$secs" --log-file="$tmp/requests.log" > "$tmp/h2load.out"
cpu1="$(cpu)"
grep -E "^(finished|requests|status codes|traffic):" "$tmp/h2load.out" | sed 's/^/  /'
python3 - "$tmp/requests.log" "$secs" "$(( cpu1 - cpu0 ))" "$(getconf CLK_TCK)" <<'PY'
import os
import sys
log, secs, ticks, hz = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [line.split("\t") for line in open(log) if line.strip()]
ok = sorted(int(r[2]) for r in rows if r[1] == "200")
bad = sum(1 for r in rows if r[1] != "200")
if not ok:
    raise SystemExit("webhook_bench: no review answered 200")
def pct(q):
    return ok[max(0, -(-len(ok) * q // 100) - 1)] / 1000
print(f"reviews/s {len(ok) / secs:,.0f}  (200: {len(ok)}, other: {bad})")
print(f"latency ms  p50 {pct(50):.2f}  p90 {pct(90):.2f}  p99 {pct(99):.2f}  max {ok[-1] / 1000:.2f}")
cpu = ticks / hz
per_review = cpu / (len(ok) + bad)
print(f"webhook CPU {cpu:.2f} s ({100 * cpu / secs:.0f} % of one core), "
      f"{1e6 * per_review:.0f} us per review")
# What the webhook's CPU per review allows when it has the cores to itself (h2load here
# takes most of one of them): an upper bound, not a measured throughput.
cores = os.cpu_count() or 1
print(f"CPU-bound ceiling on {cores} cores of its own: {cores / per_review:,.0f} reviews/s")
PY
echo "RSS after load: $(awk '/^VmRSS/{printf "%.1f MiB", $2/1024}' /proc/$pid/status), peak $(awk '/^VmHWM/{printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
