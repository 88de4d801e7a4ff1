#!/usr/bin/env bash
# Two builds under W1 (or W2), alternating, several rounds: CPU time per
# request split into user and sys, and requests/s. run.sh measures each
# build once, after the others; alternating rounds show whether a
# difference holds up against this machine's run-to-run noise, and whether
# a build has a slow mode that only some runs fall into.
#   benches/load/ab.sh BASE NEW [ROUNDS] [SECONDS]
#   LGTM_AB_WORKLOAD=w2 benches/load/ab.sh ...   (64 KiB pushes)
#   LGTM_AB_WORKLOAD=w5 benches/load/ab.sh ...   (W1 to the upstream over https)
# Each build runs pinned to core 0 with one worker; wrk (64 connections)
# and the nginx upstream run on core 1. 1 s of warm-up before each run.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n 2,10p "$0"; exit 2; }
. benches/load/upstream.sh
scripts/install-deps.sh nginx:nginx-light wrk:wrk curl:curl taskset:util-linux openssl:openssl
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || scripts/install-deps.sh __lua__:libnginx-mod-http-lua
. benches/load/common.sh

base=$1 new=$2 rounds=${3:-4} secs=${4:-6}
UP=$(port); TLS=$(port)
upstream=(LGTM_PROMETHEUS_URL="http://127.0.0.1:$UP")
case ${LGTM_AB_WORKLOAD:-w1} in
  w1) path="/prometheus/api/v1/query?query=up" script=benches/load/get.lua ;;
  w2) path="/api/prom/push" script=benches/load/post64k.lua ;;
  w5) path="/prometheus/api/v1/query?query=up" script=benches/load/get.lua
      upstream=(LGTM_PROMETHEUS_URL="https://127.0.0.1:$TLS" LGTM_PROMETHEUS_CA_FILE="$work/ca.pem") ;;
  *) echo "LGTM_AB_WORKLOAD is w1, w2 or w5" >&2; exit 2 ;;
esac

tls_cert "$work"
upstream_conf "$work" "$UP" "$TLS"
chmod 755 "$work"
taskset -c 1 nginx -c "$work/up.conf" -p "$work" 2>/dev/null & pids+=($!)
wait_http "http://127.0.0.1:$UP/"
wait_http "https://127.0.0.1:$TLS/"

ticks=$(getconf CLK_TCK)
# cpu PID: "user sys" clock ticks so far.
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }

echo "| round | build | req/s | CPU µs/req | user | sys |"
echo "|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  # Odd rounds run BASE first, even rounds NEW first: neither build always
  # gets the machine as the other leaves it.
  order=("$base" "$new"); [ $((round % 2)) = 0 ] && order=("$new" "$base")
  for bin in "${order[@]}"; do
    p=$(port)
    # shellcheck disable=SC2046 # lgtm_env's words are the assignments
    env $(lgtm_env "$p" "$UP") "${upstream[@]}" taskset -c 0 "$bin" >/dev/null 2>&1 & pid=$!; pids+=($pid)
    wait_http "http://127.0.0.1:$p/health"
    url="http://127.0.0.1:$p$path"
    taskset -c 1 wrk -t1 -c64 -d1s -s "$script" "$url" >/dev/null
    read -r u0 s0 < <(cpu "$pid")
    out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" -s "$script" "$url")
    read -r u1 s1 < <(cpu "$pid")
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    n=$(awk '/requests in/{print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    awk -v r="$round" -v b="$bin" -v rps="$rps" -v n="$n" -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v t="$ticks" \
      'BEGIN { f = 1e6 / t / n; printf "| %d | %s | %.0f | %.1f | %.1f | %.1f |\n", r, b, rps, (u + s) * f, u * f, s * f }'
  done
done
