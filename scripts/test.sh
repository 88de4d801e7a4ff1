#!/usr/bin/env bash
# Install what the tests need on a fresh machine (Debian's prometheus,
# alertmanager with amtool, pushgateway and haproxy, the OpenTelemetry
# Python gRPC client, kubernetes-validate), then run the Dockerfile check, format, lint and
# every test.
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
# Real OpenTelemetry gRPC clients for tests/grpc.rs; Kubernetes' schemas
# (kubernetes-validate) for tests/deploy_manifests.rs.
python3 -c 'import opentelemetry.exporter.otlp.proto.grpc, kubernetes_validate' 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/peers/requirements.txt
bash scripts/check-dockerfile.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
