#!/usr/bin/env bash
# Install what the tests need on a fresh machine, then run format, lint and
# every test (unit, integration, real Prometheus peers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh prometheus:prometheus curl:curl
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
