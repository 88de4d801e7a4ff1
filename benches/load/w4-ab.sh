#!/usr/bin/env bash
# W4 alone, A/B: a 256 MiB download through each binary in turn, 4 rounds,
# each proxy on core 0 with one worker, curl and the upstream on core 1.
# run.sh measures W4 once per peer, in a fixed order; this alternates.
#   benches/load/w4-ab.sh BINARY...
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
. benches/load/upstream.sh
. benches/load/common.sh
UP=$(port); TLS=$(port)
tls_cert "$work"
truncate -s 256M "$work/big"; cat "$work/big" >/dev/null
upstream_conf "$work" "$UP" "$TLS"
chmod 755 "$work"; chmod 644 "$work/big"
taskset -c 1 nginx -c "$work/up.conf" -p "$work" 2>/dev/null & pids+=($!)
wait_http "http://127.0.0.1:$UP/"
declare -A P
for bin in "$@"; do
  p=$(port)
  env $(lgtm_env "$p" "$UP") LGTM_PROMETHEUS_URL="http://127.0.0.1:$UP" TOKIO_WORKER_THREADS=1 taskset -c 0 "$bin" >/dev/null 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$p/health"
  P[$bin]=$p
done
for round in 1 2 3 4; do
  for bin in "$@"; do
    s=$(taskset -c 1 curl -s -o /dev/null -H 'Authorization: Bearer client-token' -w '%{speed_download}' "http://127.0.0.1:${P[$bin]}/prometheus/big")
    echo "$(basename $bin) round $round: $(awk -v b="$s" 'BEGIN{printf "%.0f", b/1e6}') MB/s"
  done
done
