#!/usr/bin/env bash
# No Docker engine here: check instead that the Dockerfile builds with the
# same command CI and scripts/demo.sh use, and copies the binary cargo
# produces (crate name from Cargo.toml) to the entrypoint it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(awk -F'"' '/^\[\[bin\]\]/{f=1} f&&/^name/{print $2; exit}' Cargo.toml)
fail() { echo "Dockerfile: $*" >&2; exit 1; }
grep -qE '^RUN cargo build --release --locked$' Dockerfile || fail "build step is not 'RUN cargo build --release --locked'"
grep -q 'cargo build --release --locked' scripts/demo.sh || fail "demo.sh builds differently"
grep -qE "^COPY --from=build /src/target/release/$bin /$bin\$" Dockerfile || fail "does not copy target/release/$bin"
grep -qE "^ENTRYPOINT \[\"/$bin\"\]\$" Dockerfile || fail "entrypoint is not /$bin"
grep -qE '^FROM gcr.io/distroless/cc-debian12:nonroot$' Dockerfile || fail "runtime image is not distroless cc nonroot"
grep -qE '^USER 65532:65532$' Dockerfile || fail "does not run as uid 65532"
grep -qE '^EXPOSE 8085$' Dockerfile || fail "does not expose 8085"
for p in $(awk '/^COPY [^-]/{for(i=2;i<NF;i++) print $i}' Dockerfile); do
  [ -e "$p" ] || fail "copies $p, which does not exist"
done
echo "Dockerfile: consistent with the build ($bin)"
