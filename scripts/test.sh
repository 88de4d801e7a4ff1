#!/usr/bin/env bash
# Install what the tests need on a fresh machine (Debian's prometheus,
# alertmanager with amtool, pushgateway and haproxy, the OpenTelemetry
# Python gRPC client), then run the Dockerfile check, format, lint and
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh prometheus:prometheus curl:curl haproxy:haproxy \
  prometheus-pushgateway:prometheus-pushgateway \
  prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager
# Real OpenTelemetry gRPC clients for tests/grpc.rs.
python3 -c 'import opentelemetry.exporter.otlp.proto.grpc' 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/peers/requirements.txt
bash scripts/check-dockerfile.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
