#!/usr/bin/env bash
# Side-by-side load bench: the SAME job through direct (no proxy), nginx,
# haproxy, the seed's Fastify service and lgtm-proxy, each proxy pinned to
# core 0 with one worker, load generator and upstream on core 1. W1-W4 go
# to a plain-HTTP upstream; W5 is W1 again with each proxy forwarding to
# the same upstream over https (as to Grafana Cloud).
#   benches/load/run.sh [--quick]
#   LGTM_BASE_BIN=<binary> benches/load/run.sh [--quick]
#     also measures that build (e.g. main's) as "lgtm-proxy-base" in the
#     same run, for a before/after; writes benches/results/<date>-ab.md.
#   LGTM_BENCH_OUT=<file> benches/load/run.sh   writes <file> instead.
# Writes benches/results/<date>.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
. benches/load/upstream.sh
quick=0; [ "${1:-}" = "--quick" ] && quick=1
dur=$([ $quick = 1 ] && echo 5s || echo 20s)
big_mb=$([ $quick = 1 ] && echo 256 || echo 1024)

scripts/install-deps.sh nginx:nginx-light haproxy:haproxy wrk:wrk curl:curl taskset:util-linux openssl:openssl
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { scripts/install-deps.sh __lua__:libnginx-mod-http-lua; }
cargo build --release --locked -q
fastify=0
if command -v npm >/dev/null && (cd benches/load/fastify && npm install --silent --no-audit --no-fund >/dev/null 2>&1); then fastify=1; fi

. benches/load/common.sh
wait_port() { for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "port $1 never answered" >&2; exit 1; }
BASIC="Basic $(printf '%s:%s' "$USER_ID" "$TOKEN" | base64 -w0)"
truncate -s "${big_mb}M" "$work/big"
# Read it once, so every peer's W3/W4 reads it from the page cache (the
# first reader of a new sparse file pays for the pages: direct, measured
# first, showed 400 MB/s instead of 1.7 GB/s).
cat "$work/big" > /dev/null
# The upstream nginx worker runs as nobody: let it read the download file.
chmod 755 "$work"; chmod 644 "$work/big"

# --- upstream: nginx + Lua on core 1; reads every body before answering.
# Plain HTTP on UP, the same over https (a CA of its own) on TLS.
UP=$(port); TLS=$(port)
tls_cert "$work"
upstream_conf "$work" "$UP" "$TLS"
taskset -c 1 nginx -c "$work/up.conf" -p "$work" 2>/dev/null & pids+=($!)
wait_port "$UP"
wait_http "https://127.0.0.1:$TLS/"
# Which upstream the proxies started next forward to: 0 plain, 1 https.
via_tls=0

# --- the proxies, each on core 0, one worker.
declare -A PORT PID
up_port() { if [ $via_tls = 1 ]; then echo "$TLS"; else echo "$UP"; fi; }
up_scheme() { if [ $via_tls = 1 ]; then echo https; else echo http; fi; }
start_nginx() {
  local p; p=$(port)
  cat > "$work/proxy.conf" <<NGX
worker_processes 1; daemon off; pid $work/px.pid; error_log $work/px.err;
events { worker_connections 8192; }
http {
  access_log off; client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;
  upstream up { server 127.0.0.1:$(up_port); keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$p; keepalive_requests 1000000;
    location /prometheus/ { proxy_pass $(up_scheme)://up/api/prom/; include $work/px-common.conf; }
    location /api/prom/ { proxy_pass $(up_scheme)://up/api/prom/; include $work/px-common.conf; }
  }
}
NGX
  cat > "$work/px-common.conf" <<NGX
proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host 127.0.0.1:$(up_port);
proxy_set_header Authorization "$BASIC"; proxy_set_header X-Scope-OrgID $USER_ID;
NGX
  if [ $via_tls = 1 ]; then cat >> "$work/px-common.conf" <<NGX
proxy_ssl_verify on; proxy_ssl_trusted_certificate $work/ca.pem; proxy_ssl_name 127.0.0.1; proxy_ssl_session_reuse on;
NGX
  fi
  taskset -c 0 nginx -c "$work/proxy.conf" -p "$work" 2>/dev/null & PID[nginx]=$!; PORT[nginx]=$p; pids+=($!)
}
start_haproxy() {
  local p; p=$(port)
  cat > "$work/haproxy.cfg" <<HA
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$p
  http-request replace-path ^/prometheus/(.*) /api/prom/\1
  http-request set-header Authorization "$BASIC"
  http-request set-header X-Scope-OrgID $USER_ID
  default_backend b
backend b
  server up 127.0.0.1:$(up_port) $([ $via_tls = 1 ] && echo "ssl verify required ca-file $work/ca.pem alpn h2,http/1.1")
HA
  taskset -c 0 haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>&1 & PID[haproxy]=$!; PORT[haproxy]=$p; pids+=($!)
}
start_fastify() {
  local p; p=$(port)
  # exec: the PID measured and killed is node's own, not a subshell's
  # (a killed subshell left node running, pinned to the proxies' core).
  (cd benches/load/fastify && UPSTREAM="$(up_scheme)://127.0.0.1:$(up_port)" NODE_EXTRA_CA_CERTS="$work/ca.pem" USER_ID=$USER_ID TOKEN=$TOKEN PORT=$p exec taskset -c 0 node server.js >/dev/null 2>&1) & PID[fastify]=$!; PORT[fastify]=$p; pids+=($!)
}
start_lgtm() { # name binary
  local p; p=$(port)
  # shellcheck disable=SC2046 # lgtm_env's words are the assignments
  env $(lgtm_env "$p" "$UP") LGTM_PROMETHEUS_URL="$(up_scheme)://127.0.0.1:$(up_port)" LGTM_PROMETHEUS_CA_FILE="$work/ca.pem" \
    taskset -c 0 "$2" >/dev/null 2>&1 & PID[$1]=$!; PORT[$1]=$p; pids+=($!)
}

tree() { local p=$1; echo "$p"; for c in $(pgrep -P "$p" 2>/dev/null); do tree "$c"; done; }
cpu_ticks() { local t=0; for p in $(tree "$1"); do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
mem_kib() { local k=0; for p in $(tree "$1"); do v=$(awk -v f="$2:" '$1==f{print $2}' /proc/$p/status 2>/dev/null); k=$((k + ${v:-0})); done; echo $k; }
hz=$(getconf CLK_TCK)

# W1/W2 through wrk on core 1: prints "rps p50 p99 requests".
run_wrk() { # url script
  taskset -c 1 wrk -t1 -c64 -d"$dur" --latency -s "$2" "$1" > "$work/wrk.out" 2>&1 || true
  awk '/Requests\/sec/{rps=$2} /^ +50%/{p50=$2} /^ +99%/{p99=$2} / requests in /{n=$1} END{print rps, p50, p99, n}' "$work/wrk.out"
}

results="$work/results.tsv"
tls_results="$work/tls.tsv"
# does_the_job NAME PORT: the upstream must see the rewritten path and the
# injected headers through the proxy on PORT.
does_the_job() {
  local seen; seen=$(curl -s -H 'Authorization: Bearer client-token' "http://127.0.0.1:$2/prometheus/echo")
  [ "$seen" = "/api/prom/echo $BASIC $USER_ID" ] || { echo "$1 does not do the job: $seen" >&2; return 1; }
}
# cpu_per_req TICKS REQUESTS: µs of CPU per request.
cpu_per_req() { awk -v d="$1" -v n="$2" -v hz="$hz" 'BEGIN{ if (n>0 && d>0) printf "%.1f", d/hz/n*1e6; else print "-" }'; }
measure() { # name port pid(or 0 for direct) prefix
  local name=$1 p=$2 pid=$3 prefix=$4 idle w1 w2 t0 t1 up_speed down_speed peak
  if [ "$pid" != 0 ]; then
    does_the_job "$name" "$p" || return 0
    idle=$(mem_kib "$pid" VmRSS)
  else idle=-; fi
  up_speed=$(taskset -c 1 curl -s -o /dev/null -w '%{speed_upload}' -T "$work/big" "http://127.0.0.1:$p$prefix/upload")
  down_speed=$(taskset -c 1 curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$p$prefix/big")
  peak=$([ "$pid" != 0 ] && mem_kib "$pid" VmHWM || echo -)
  t0=$([ "$pid" != 0 ] && cpu_ticks "$pid" || echo 0)
  w1=$(run_wrk "http://127.0.0.1:$p$prefix/api/v1/query?query=up" benches/load/get.lua)
  t1=$([ "$pid" != 0 ] && cpu_ticks "$pid" || echo 0)
  w2=$(run_wrk "http://127.0.0.1:$p/api/prom/push" benches/load/post64k.lua)
  local t2; t2=$([ "$pid" != 0 ] && cpu_ticks "$pid" || echo 0)
  read -r r1 p501 p991 n1 <<<"$w1"; read -r r2 p502 p992 n2 <<<"$w2"
  local c1 c2
  c1=$(cpu_per_req $((t1 - t0)) "$n1")
  c2=$(cpu_per_req $((t2 - t1)) "$n2")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$r1" "$p501" "$p991" "$c1" "$r2" "$p502" "$p992" "$c2" \
    "$(awk -v b="$up_speed" 'BEGIN{printf "%.0f", b/1e6}')" "$(awk -v b="$down_speed" 'BEGIN{printf "%.0f", b/1e6}')" "$peak/$idle" >> "$results"
}
# W5: W1 with the proxy forwarding to the https upstream (direct: wrk
# speaks https to the upstream itself).
measure_tls() { # name port pid(or 0 for direct)
  local name=$1 p=$2 pid=$3 url t0 t1 w5
  if [ "$pid" != 0 ]; then
    does_the_job "$name" "$p" || return 0
    url="http://127.0.0.1:$p/prometheus/api/v1/query?query=up"
  else url="https://127.0.0.1:$TLS/api/prom/api/v1/query?query=up"; fi
  t0=$([ "$pid" != 0 ] && cpu_ticks "$pid" || echo 0)
  w5=$(run_wrk "$url" benches/load/get.lua)
  t1=$([ "$pid" != 0 ] && cpu_ticks "$pid" || echo 0)
  read -r r5 p505 p995 n5 <<<"$w5"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$r5" "$p505" "$p995" "$(cpu_per_req $((t1 - t0)) "$n5")" >> "$tls_results"
}
# each_peer MEASURE: start each proxy, run MEASURE NAME PORT PID through it, stop it.
each_peer() {
  local m=$1
  start_nginx; wait_port "${PORT[nginx]}"; $m nginx "${PORT[nginx]}" "${PID[nginx]}" /prometheus; kill "${PID[nginx]}"
  start_haproxy; wait_port "${PORT[haproxy]}"; $m haproxy "${PORT[haproxy]}" "${PID[haproxy]}" /prometheus; kill "${PID[haproxy]}"
  if [ $fastify = 1 ]; then start_fastify; wait_port "${PORT[fastify]}"; $m fastify "${PORT[fastify]}" "${PID[fastify]}" /prometheus; kill "${PID[fastify]}"; fi
  if [ -n "${LGTM_BASE_BIN:-}" ]; then
    start_lgtm lgtm-proxy-base "$LGTM_BASE_BIN"; wait_port "${PORT[lgtm-proxy-base]}"
    $m lgtm-proxy-base "${PORT[lgtm-proxy-base]}" "${PID[lgtm-proxy-base]}" /prometheus; kill "${PID[lgtm-proxy-base]}"
  fi
  start_lgtm lgtm-proxy "$root/target/release/lgtm-proxy"; wait_port "${PORT[lgtm-proxy]}"
  $m lgtm-proxy "${PORT[lgtm-proxy]}" "${PID[lgtm-proxy]}" /prometheus; kill "${PID[lgtm-proxy]}"
}

: > "$results"; : > "$tls_results"
measure direct "$UP" 0 /api/prom
each_peer measure
via_tls=1
measure_tls direct "$TLS" 0
each_peer measure_tls

out=${LGTM_BENCH_OUT:-"benches/results/$(date +%F)${LGTM_BASE_BIN:+-ab}.md"}
# How much of the code layout (build.rs) this build still follows.
listed=0; laid=0
if [ -s link-order.txt ] && command -v nm >/dev/null; then
  listed=$(wc -l < link-order.txt)
  laid=$(layout_found target/release/lgtm-proxy)
fi
{
  echo "# Load bench $(date +%F) ($( [ $quick = 1 ] && echo quick || echo full ): wrk ${dur}, 64 connections; ${big_mb} MiB streams)"
  echo
  echo "Command: \`${LGTM_BASE_BIN:+LGTM_BASE_BIN=$LGTM_BASE_BIN }benches/load/run.sh$( [ $quick = 1 ] && echo ' --quick')\` on $(nproc) cores; each proxy pinned to core 0 with one worker, wrk/curl and the upstream on core 1."
  echo
  echo "Code layout: $laid of the $listed functions in link-order.txt are in this lgtm-proxy build (benches/load/link-order.sh rewrites the file)."
  echo
  echo "| peer | W1 req/s | W1 p50 | W1 p99 | W1 CPU µs/req | W2 req/s | W2 p50 | W2 p99 | W2 CPU µs/req | W3 up MB/s | W4 down MB/s | peak/idle RSS KiB | W1 CPU vs nginx | W2 CPU vs nginx |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  ng1=$(awk -F'\t' '$1=="nginx"{print $5}' "$results"); ng2=$(awk -F'\t' '$1=="nginx"{print $9}' "$results")
  awk -F'\t' -v a="$ng1" -v b="$ng2" '{ r1 = ($5+0>0 && a+0>0) ? sprintf("%.2fx", $5/a) : "-"; r2 = ($9+0>0 && b+0>0) ? sprintf("%.2fx", $9/b) : "-";
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,r1,r2 }' "$results"
  echo
  echo "W5: W1 again, each proxy forwarding to the same upstream over https (its own CA, verified; ALPN h2 and http/1.1 offered by the upstream; nginx speaks HTTP/1.1 to it, haproxy is offered h2,http/1.1 like lgtm-proxy; direct is wrk speaking https itself)."
  echo
  echo "| peer | W5 req/s | W5 p50 | W5 p99 | W5 CPU µs/req | W5 CPU vs nginx |"
  echo "|---|---|---|---|---|---|"
  ng5=$(awk -F'\t' '$1=="nginx"{print $5}' "$tls_results")
  awk -F'\t' -v a="$ng5" '{ r = ($5+0>0 && a+0>0) ? sprintf("%.2fx", $5/a) : "-"; printf "| %s | %s | %s | %s | %s | %s |\n", $1,$2,$3,$4,$5,r }' "$tls_results"
} > "$out"
cat "$out"
