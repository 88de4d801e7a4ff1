#!/usr/bin/env bash
# lgtm-proxy for real, in front of a local Prometheus that (like Grafana
# Cloud) demands basic auth: a Prometheus agent remote-writes through the
# proxy holding no credentials, and a query comes back through it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh prometheus:prometheus htpasswd:apache2-utils curl:curl

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url [curl args...]
  local url=$1; shift
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url")" = 200 ] && return 0
    sleep 0.1
  done
  echo "timed out waiting for $url" >&2; exit 1
}

user=2668285
token="glc_demo_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
prom_port=$(free_port); proxy_port=$(free_port); agent_port=$(free_port)

echo "==> building lgtm-proxy (release)"
cargo build --release --locked -q

echo "==> Prometheus on :$prom_port: remote-write receiver, basic auth required, answering under /api/prom"
printf 'basic_auth_users:\n  "%s": "%s"\n' "$user" "$(htpasswd -nbBC 10 "$user" "$token" | cut -d: -f2)" > "$work/web.yml"
printf 'global:\n  scrape_interval: 1h\n' > "$work/prom.yml"
prometheus --config.file="$work/prom.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" --web.config.file="$work/web.yml" \
  --web.enable-remote-write-receiver --web.route-prefix=/api/prom >"$work/prom.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$prom_port/api/prom/-/ready" -u "$user:$token"

echo "==> lgtm-proxy on :$proxy_port, credentials from env"
printf '%s\n' "$token" > "$work/token"
LGTM_LISTEN="127.0.0.1:$proxy_port" \
LGTM_PROMETHEUS_URL="http://127.0.0.1:$prom_port" \
LGTM_PROMETHEUS_USER="$user" \
LGTM_TOKEN_FILE="$work/token" \
LGTM_LOG_FORMAT=text \
  target/release/lgtm-proxy >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$proxy_port/ready"

echo "==> Prometheus agent on :$agent_port scraping the proxy, remote_write -> http://127.0.0.1:$proxy_port/prometheus/api/v1/write (no credentials)"
cat > "$work/agent.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: lgtm-proxy
    static_configs: [{targets: ['127.0.0.1:$proxy_port']}]
remote_write:
  - url: http://127.0.0.1:$proxy_port/prometheus/api/v1/write
    queue_config: {batch_send_deadline: 1s}
YML
prometheus --enable-feature=agent --config.file="$work/agent.yml" --storage.agent.path="$work/agent" \
  --web.listen-address="127.0.0.1:$agent_port" >"$work/agent.log" 2>&1 &
pids+=($!)

query="http://127.0.0.1:$proxy_port/prometheus/api/v1/query?query=lgtm_proxy_build_info"
echo "==> querying through the proxy until the agent's samples arrive: GET $query"
for i in $(seq 1 120); do
  result=$(curl -s "$query")
  if echo "$result" | grep -q '"job":"lgtm-proxy"'; then
    echo "$result"
    break
  fi
  [ "$i" = 120 ] && { echo "no data arrived; logs in $work" >&2; cat "$work/proxy.log" >&2; exit 1; }
  sleep 0.5
done

echo "==> the same query straight to Prometheus without credentials:"
curl -s -o /dev/null -w 'HTTP %{http_code}\n' "http://127.0.0.1:$prom_port/api/prom/api/v1/query?query=up"

echo "==> what the proxy counted (/metrics):"
curl -s "http://127.0.0.1:$proxy_port/metrics" | grep -E '^lgtm_proxy_requests_total'

echo "==> last access-log lines:"
tail -n 3 "$work/proxy.log"
if grep -q "$token" "$work/proxy.log"; then echo "TOKEN LEAKED INTO LOGS" >&2; exit 1; fi
echo "==> done: remote write in, query out, credentials injected by lgtm-proxy only"
