#!/usr/bin/env bash
# Webhook under load on loopback: throughput, latency percentiles (wrk) and RSS.
#   bench/webhook_bench.sh [SECONDS] [CONNECTIONS]     (needs: wrk, openssl; release build)
# Every request is a real AdmissionReview of an annotated pod, answered with a JSONPatch.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-10}"; conns="${2:-32}"
bin="${SSM_INJECTOR_BIN:-$repo/target/release/ssm-injector}"
command -v wrk >/dev/null || { echo "webhook_bench: needs wrk (apt-get install wrk)" >&2; exit 1; }
[[ -x "$bin" ]] || { echo "webhook_bench: no binary at $bin (cargo build --release)" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
RUST_LOG=warn "$bin" webhook --cert "$tmp/tls.crt" --key "$tmp/tls.key" --listen "127.0.0.1:$port" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b0b0b0b0-0000-4000-8000-000000000001","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"apps","operation":"CREATE","userInfo":{"username":"bench"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-","namespace":"apps","annotations":{"ssm-injector.io/inject":"true","ssm-injector.io/path":"/apps/prod/","ssm-injector.io/param-STRIPE_KEY":"/aws/reference/secretsmanager/apps/stripe#key","ssm-injector.io/mode":"init+sidecar"}},"spec":{"securityContext":{"runAsUser":1000,"runAsGroup":1000},"containers":[{"name":"app","image":"nginx"},{"name":"log","image":"busybox"}]}},"dryRun":false}}]]
LUA
echo "webhook: $(basename "$bin"), loopback TLS, $conns connections, ${secs}s, 2 wrk threads, $(nproc) cores shared with wrk"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$tmp/post.lua" "https://127.0.0.1:$port/mutate" | sed -n '/Latency Distribution/,/Transfer/p;/Requests\/sec/p;/Non-2xx/p;/Socket errors/p'
echo "RSS after load: $(awk '/^VmRSS/{printf "%.1f MiB", $2/1024}' /proc/$pid/status), peak $(awk '/^VmHWM/{printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
