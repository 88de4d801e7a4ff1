# Sourced by the load benches: one work directory removed on exit, the
# processes they start (append PIDs to `pids`) stopped on exit, free ports,
# readiness polls, lgtm-proxy's bench environment, and how much of the
# release code layout a build has.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http URL: poll (http or https, any certificate) until it answers.
wait_http() { for _ in $(seq 1 300); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 never answered" >&2; exit 1; }
# layout_found BINARY: how many of link-order.txt's names BINARY has.
layout_found() { nm "$1" | awk 'NR==FNR{want[$1]; next} $3 in want {print $3}' link-order.txt - | sort -u | wc -l; }
# The upstream identity and test token every bench proxy injects (not a
# real secret).
USER_ID=2668285; TOKEN=glc_bench_token
# lgtm_env PORT UPSTREAM_PORT: lgtm-proxy's environment for listening on
# PORT in front of the upstream, one worker, warnings only; for `env`.
lgtm_env() { echo "LGTM_LISTEN=127.0.0.1:$1 LGTM_PROMETHEUS_URL=http://127.0.0.1:$2 LGTM_PROMETHEUS_USER=$USER_ID LGTM_TOKEN=$TOKEN LGTM_LOG=warn TOKIO_WORKER_THREADS=1"; }
