#!/usr/bin/env bash
# Build the fuzz targets and run each on its committed corpus.
#   fuzz/run.sh [SECONDS] [TARGET...]   each target for SECONDS (default 20)
#                                       with a fixed seed (FUZZ_SEED, default
#                                       1) and a fresh scratch corpus: the
#                                       same inputs on every machine, so CI
#                                       replays what passed here
#   fuzz/run.sh --long [TARGET...]      each until 10 million executions or
#                                       30 minutes, whichever comes first,
#                                       random seed; new inputs are kept in
#                                       target/corpus/<target> for merging
# Stable toolchain, no sanitizer (the crate forbids unsafe code; see
# README.md). Installs cargo-fuzz when it is missing. Exits non-zero on
# the first target that finds a crash, a timeout or a leak of memory.
set -euo pipefail
cd "$(dirname "$0")"
limit=(-max_total_time=20 -seed="${FUZZ_SEED:-1}")
long=false
if [[ "${1:-}" == --long ]]; then
  limit=(-runs=10000000 -max_total_time=1800)
  long=true
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  limit=(-max_total_time="$1" -seed="${FUZZ_SEED:-1}")
  shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(request_target env_and_toml metricaccess rule_files alertmanager_config http_exchange)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
cargo fuzz build --sanitizer none
for t in "${targets[@]}"; do
  dict=()
  case "$t" in
    env_and_toml) dict=(-dict=dict/env.dict) ;;
    http_exchange | request_target) dict=(-dict=dict/http.dict) ;;
  esac
  echo "fuzz/run.sh: $t ${limit[*]}"
  # The committed corpus is read, new inputs go to a scratch directory.
  scratch="target/corpus/$t"
  if ! $long; then
    scratch="target/corpus-short/$t"
    rm -rf "$scratch"
  fi
  mkdir -p "$scratch"
  cargo fuzz run --sanitizer none "$t" "$scratch" "corpus/$t" -- \
    "${limit[@]}" "${dict[@]}" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1
done
