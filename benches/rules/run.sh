#!/usr/bin/env bash
# Time one config load with a large rules directory: FILES PrometheusRule
# files of RULES alerting rules each, every expression parsed and checked
# (`lgtm-proxy check-config`, the same work as a reload).
# Usage: benches/rules/run.sh [FILES] [RULES] [BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
files=${1:-200}
rules=${2:-10}
bin=${3:-target/release/lgtm-proxy}
[ -x "$bin" ] || cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/rules"
for f in $(seq 1 "$files"); do
  {
    printf 'apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n'
    printf 'metadata: {name: r%s, namespace: ns, labels: {tenant: stage}}\n' "$f"
    printf 'spec:\n  groups:\n    - name: g\n      rules:\n'
    for r in $(seq 1 "$rules"); do
      printf '        - alert: A%s\n' "$r"
      printf '          expr: sum by (job) (rate(http_requests_total{code=~"5..",job="j%s"}[5m])) / sum by (job) (rate(http_requests_total[5m])) > 0.05\n' "$f"
      printf '          for: 5m\n          labels: {severity: warning}\n'
      printf '          annotations: {summary: "{{ $labels.job }} fails"}\n'
    done
  } > "$work/rules/r$f.yaml"
done
printf '[tenants.stage.upstreams.prometheus]\nurl = "https://stack.example"\nuser = "1"\ntoken = "t"\n[rules_sync]\ndir = "%s"\n' \
  "$work/rules" > "$work/lgtm-proxy.toml"
echo "$files files x $rules rules ($bin):"
/usr/bin/time -f "  %e s, %M KiB peak RSS" "$bin" --config "$work/lgtm-proxy.toml" check-config >/dev/null
