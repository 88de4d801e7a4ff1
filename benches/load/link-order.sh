#!/usr/bin/env bash
# Writes link-order.txt, the code layout release builds link
# with (see build.rs): every function a running proxy executes, as
# callgrind saw them in one run of the binary from its start, in two parts,
# each hottest first: start-up, /health, /ready, /metrics, W1-shaped GETs
# and W2-shaped 64 KiB pushes to a plain-HTTP upstream (nginx + Lua,
# benches/load/upstream.sh), the 401 and 404 answers; then what GETs and
# pushes to the same upstream over https (a CA of its own, ALPN h2)
# add.
#   benches/load/link-order.sh [BINARY]
# Run it again when Cargo.lock, the Rust toolchain or much of the request
# path changes: names the file lists that a build no longer has are skipped
# (their code keeps the linker's own place), so a stale file costs layout,
# not correctness. Prints how many of the listed names the binary has.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/load/upstream.sh
scripts/install-deps.sh nginx:nginx-light curl:curl valgrind:valgrind openssl:openssl
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || scripts/install-deps.sh __lua__:libnginx-mod-http-lua
bin=${1:-}
if [ -z "$bin" ]; then cargo build --release --locked -q; bin=target/release/lgtm-proxy; fi

. benches/load/common.sh

# The upstream, plain HTTP on UP and https (a CA of its own, ALPN h2) on TLS.
UP=$(port); TLS=$(port)
tls_cert "$work"
upstream_conf "$work" "$UP" "$TLS"
chmod 755 "$work"
nginx -c "$work/up.conf" -p "$work" 2>/dev/null & pids+=($!)
wait_http "http://127.0.0.1:$UP/"
wait_http "https://127.0.0.1:$TLS/"

p=$(port)
out="$work/order.callgrind"
# shellcheck disable=SC2046 # lgtm_env's words are the assignments
env $(lgtm_env "$p" "$UP") \
  LGTM_LOKI_URL=https://127.0.0.1:$TLS LGTM_LOKI_USER=1334 LGTM_LOKI_CA_FILE="$work/ca.pem" \
  valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
  --demangle=no --callgrind-out-file="$out" "$bin" >/dev/null 2>"$work/valgrind.err" & vg=$!; pids+=($vg)
wait_http "http://127.0.0.1:$p/health"
auth=(-H 'Authorization: Bearer client-token')
urls() { for _ in $(seq "$1"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$2"; done; }
batch() { # count url [curl args]: every answer must be a 200
  local n=$1 url=$2 codes; shift 2
  codes=$(urls "$n" "$url" | curl -s "${auth[@]}" "$@" -w '%{http_code}\n' -K - | sort | uniq -c | tr -s ' ')
  [ "$codes" = " $n 200" ] || { echo "$url: not $n answers of 200: $codes" >&2; exit 1; }
}
head -c 65536 /dev/urandom > "$work/push"
push=(-H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy' --data-binary "@$work/push")
# First what every proxy runs: start-up, own routes, the plain-HTTP path,
# errors; then what only an https upstream adds. The first part is laid
# out first, so a proxy without https upstreams touches fewer pages.
curl -s -o /dev/null "http://127.0.0.1:$p/ready"
batch 300 "http://127.0.0.1:$p/prometheus/api/v1/query?query=up"
batch 50 "http://127.0.0.1:$p/api/prom/push" "${push[@]}"
curl -s -o /dev/null "http://127.0.0.1:$p/nowhere"
curl -s -o /dev/null -H 'Authorization: Basic Og==' "http://127.0.0.1:$p/prometheus/api/v1/query"
curl -s -o /dev/null "http://127.0.0.1:$p/metrics"
callgrind_control -d "$vg" >/dev/null 2>&1
batch 100 "http://127.0.0.1:$p/loki/api/v1/query?query=%7Bjob%3D%22a%22%7D"
batch 20 "http://127.0.0.1:$p/loki/api/v1/push" "${push[@]}"
kill "$vg"; wait "$vg" 2>/dev/null || true

# Exclusive instructions per function of the binary itself, hottest first;
# names as the linker knows them (mangled), unnamed code left out.
python3 - "$(basename "$bin")" "$out".* "$out" > "$work/link-order.txt" <<'PY'
import collections, sys
binary, phases = sys.argv[1], sys.argv[2:]
names, seen = [], set()
for path in phases:
    cost = collections.Counter()
    ob = fn = None
    after_call = False
    for line in open(path):
        if line.startswith("ob="):
            ob = line[3:].strip()
        elif line.startswith("fn="):
            fn = line[3:].strip()
        elif line.startswith("calls="):
            after_call = True  # the next cost line is the callee's, inclusive
        elif line[:1].isdigit() or line.startswith(("+", "-", "*")):
            if after_call:
                after_call = False
                continue
            fields = line.split()
            if len(fields) > 1 and ob and ob.endswith("/" + binary):
                cost[fn] += int(fields[1])
    for f, _ in cost.most_common():
        if (f[:2] in ("_Z", "_R") or f == "main") and f not in seen:
            seen.add(f)
            names.append(f)
print("\n".join(names))
PY
[ -s "$work/link-order.txt" ] || { echo "callgrind saw no function of $bin" >&2; exit 1; }
mv "$work/link-order.txt" link-order.txt
listed=$(wc -l < link-order.txt)
have=$(layout_found "$bin")
echo "link-order.txt: $listed functions, $have of them in $bin"
