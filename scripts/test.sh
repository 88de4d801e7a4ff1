#!/usr/bin/env bash
# Install what the tests need on a fresh machine (Debian's prometheus,
# alertmanager with amtool, pushgateway and haproxy, the OpenTelemetry
# Python gRPC client, the Pyroscope Python SDK, kubernetes-validate,
# cargo-fuzz), then run the
# Dockerfile check, format, lint, every test (the 3-minute soak beside the
# others) and each fuzz target for 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh prometheus:prometheus curl:curl haproxy:haproxy \
  prometheus-pushgateway:prometheus-pushgateway \
  prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager
# kubectl (with kustomize) renders deploy/ in tests/deploy_manifests.rs; it
# is part of the machine image and no package here provides it.
command -v kubectl >/dev/null || {
  echo "scripts/test.sh: kubectl not found: the deploy checks need kubectl >= 1.27 (kubectl kustomize)" >&2
  exit 1
}
# Real OpenTelemetry gRPC clients for tests/grpc.rs, the Pyroscope SDK for
# tests/profiles.rs; Kubernetes' schemas
# (kubernetes-validate) for tests/deploy_manifests.rs.
python3 -c 'import opentelemetry.exporter.otlp.proto.grpc, kubernetes_validate, pyroscope' 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/peers/requirements.txt
bash scripts/check-dockerfile.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# Build every test once; the soak (3 minutes, little CPU) runs beside the
# other tests, from its built binary.
soak=$(cargo test --locked --no-run 2>&1 | tee /dev/stderr | grep -o 'target/[^ )]*/deps/soak-[0-9a-f]*' | head -n1)
[[ -x "$soak" ]] || { echo "scripts/test.sh: the soak test binary was not built" >&2; exit 1; }
soak_log=$(mktemp)
"$soak" > "$soak_log" 2>&1 &
soak_pid=$!
cargo test --locked -- --skip soak_under_reloads_and_rotations
if ! wait "$soak_pid"; then
  cat "$soak_log" >&2
  echo "scripts/test.sh: the soak failed" >&2
  exit 1
fi
tail -n 3 "$soak_log"
# Each fuzz target for 20 s on its committed corpus (stable toolchain).
bash fuzz/run.sh 20
