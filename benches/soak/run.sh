#!/usr/bin/env bash
# Soak the release build: tests/soak.rs for N minutes (default 60), its
# samples into benches/results/soak-<date>.csv and a plot beside it (PNG,
# gnuplot). Prints the figures benches/README.md quotes.
#   benches/soak/run.sh [--minutes N]
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=60
if [[ "${1:-}" == --minutes ]]; then minutes="$2"; fi
scripts/install-deps.sh prometheus:prometheus gnuplot:gnuplot-nox
out="benches/results/soak-$(date -u +%F)-${minutes}min"
LGTM_SOAK_MINUTES="$minutes" LGTM_SOAK_CSV="$out.csv" \
  cargo test --release --locked --test soak -- --nocapture
gnuplot -e "csv='$out.csv'; png='$out.png'; title='lgtm-proxy soak, $minutes min ($(nproc) cores)'" \
  benches/soak/plot.gp
awk -F, 'NR > 1 { n++; rss[n] = $2; fds[n] = $3; p99[n] = $6; req += $7; fail += $8; stale = $9 }
  END {
    ref = (n > 30) ? 30 : int(n / 3); if (ref < 1) ref = 1
    minr = maxr = rss[ref]; minf = maxf = fds[ref]; maxp = 0
    for (i = ref; i <= n; i++) {
      if (rss[i] < minr) minr = rss[i]; if (rss[i] > maxr) maxr = rss[i]
      if (fds[i] < minf) minf = fds[i]; if (fds[i] > maxf) maxf = fds[i]
    }
    for (i = 1; i <= n; i++) if (p99[i] > maxp) maxp = p99[i]
    printf "samples %d, requests %d, failed %d, stale %d\n", n, req, fail, stale
    printf "RSS from sample %d on: %d..%d KiB (reference %d)\n", ref, minr, maxr, rss[ref]
    printf "fds from sample %d on: %d..%d (reference %d)\n", ref, minf, maxf, fds[ref]
    printf "worst 10 s window p99: %.1f ms\n", maxp
  }' "$out.csv"
echo "wrote $out.csv and $out.png"
