#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: repeatable for the
# same binary and inputs whatever else the machine does, so small user-space
# changes show where wall-clock and CPU-time figures are noise.
#   benches/load/callgrind.sh [BINARY...]
# Each binary (default: target/release/lgtm-proxy, built) serves 3000
# W1-shaped GETs (/prometheus/api/v1/query?query=up, client Authorization
# replaced) on one keep-alive connection after 200 warm-up requests, in
# front of nginx answering ~100 bytes. Prints "<binary>: <Ir> instructions
# per request" and keeps the callgrind file for callgrind_annotate.
#   LGTM_CALLGRIND_CONNECTIONS=64 benches/load/callgrind.sh [BINARY...]
# counts under wrk with that many connections for 8 s instead (W1's
# shape; under valgrind the proxy is the bottleneck, so events batch more
# than at full speed, and the request count differs from run to run).
#   LGTM_CALLGRIND_TLS=1 benches/load/callgrind.sh [BINARY...]
# has the proxy forward to the same upstream over https (W5's shape:
# a CA of its own, ALPN h2), in either mode.
#   LGTM_CALLGRIND_WORKLOAD=w2 benches/load/callgrind.sh [BINARY...]
# sends W2's 64 KiB pushes (POST /api/prom/push) instead of the GETs, in
# either mode.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/load/upstream.sh
scripts/install-deps.sh nginx:nginx-light curl:curl valgrind:valgrind callgrind_annotate:valgrind openssl:openssl
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || scripts/install-deps.sh __lua__:libnginx-mod-http-lua
if [ $# -eq 0 ]; then cargo build --release --locked -q; set -- target/release/lgtm-proxy; fi

. benches/load/common.sh

conns=${LGTM_CALLGRIND_CONNECTIONS:-1}
[ "$conns" = 1 ] || scripts/install-deps.sh wrk:wrk

UP=$(port); TLS=$(port)
tls_cert "$work"
upstream_conf "$work" "$UP" "$TLS"
chmod 755 "$work"
nginx -c "$work/up.conf" -p "$work" 2>/dev/null & pids+=($!)
wait_http "http://127.0.0.1:$UP/"
wait_http "https://127.0.0.1:$TLS/"
upstream=(LGTM_PROMETHEUS_URL="http://127.0.0.1:$UP")
[ "${LGTM_CALLGRIND_TLS:-0}" = 1 ] && upstream=(LGTM_PROMETHEUS_URL="https://127.0.0.1:$TLS" LGTM_PROMETHEUS_CA_FILE="$work/ca.pem")

path=/prometheus/api/v1/query?query=up script=benches/load/get.lua body=()
case ${LGTM_CALLGRIND_WORKLOAD:-w1} in
  w1) ;;
  w2) path=/api/prom/push script=benches/load/post64k.lua
      head -c 65536 /dev/zero | tr '\0' x > "$work/push"
      body=(--data-binary "@$work/push" -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy') ;;
  *) echo "LGTM_CALLGRIND_WORKLOAD is w1 or w2" >&2; exit 2 ;;
esac

for bin in "$@"; do
  p=$(port)
  url="http://127.0.0.1:$p$path"
  for _ in $(seq 3200); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done > "$work/urls"
  out="$work/$(basename "$bin").callgrind"
  # shellcheck disable=SC2046 # lgtm_env's words are the assignments
  env $(lgtm_env "$p" "$UP") "${upstream[@]}" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out" "$bin" >/dev/null 2>"$work/valgrind.err" & vg=$!; pids+=($vg)
  wait_http "http://127.0.0.1:$p/health"
  curl_args=(-H 'Authorization: Bearer client-token' "${body[@]}")
  if [ "$conns" = 1 ]; then
    head -400 "$work/urls" | curl -s "${curl_args[@]}" -K - >/dev/null          # 200 warm-up requests
    callgrind_control -i on "$vg" >/dev/null 2>&1
    codes=$(tail -n +401 "$work/urls" | curl -s "${curl_args[@]}" -K - -w '%{http_code}\n' | sort | uniq -c | tr -s ' ')
    requests=3000
  else
    wrk -t1 -c"$conns" -d3s -s "$script" "$url" >/dev/null   # warm-up, pool filled
    callgrind_control -i on "$vg" >/dev/null 2>&1
    res=$(wrk -t1 -c"$conns" -d8s -s "$script" "$url")
    requests=$(awk '/requests in/{print $1}' <<<"$res")
    # wrk reports answers other than 2xx/3xx; none is expected.
    codes=$(grep -c "Non-2xx" <<<"$res" || true)
  fi
  callgrind_control -i off "$vg" >/dev/null 2>&1
  callgrind_control -d "$vg" >/dev/null 2>&1
  kill "$vg"; wait "$vg" 2>/dev/null || true
  if [ "$conns" = 1 ]; then
    [ "$codes" = " 3000 200" ] || { echo "$bin: not 3000 answers of 200: $codes" >&2; exit 1; }
  else
    [ "$codes" = 0 ] && [ "${requests:-0}" -gt 0 ] || { echo "$bin: wrk saw answers other than 200 or none: $res" >&2; exit 1; }
  fi
  dump=$(ls "$out".* | head -1)
  ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n++ {gsub(",","",$1); print $1}')
  mkdir -p target/callgrind && cp "$dump" "target/callgrind/$(basename "$bin").out"
  echo "$bin: $((ir / requests)) instructions per request over $requests requests on $conns connection(s) (callgrind_annotate target/callgrind/$(basename "$bin").out)"
done
