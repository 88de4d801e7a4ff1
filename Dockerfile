# syntax=docker/dockerfile:1
# Build stage: the same `cargo build --release --locked` as a local release build.
FROM rust:1-bookworm AS build
WORKDIR /src
# Only what the build reads: the manifest (which names the bench target, so
# its source must exist), build.rs and its code layout file, the sources.
COPY Cargo.toml Cargo.lock build.rs link-order.txt ./
COPY src ./src
COPY benches/hot_path.rs ./benches/hot_path.rs
RUN cargo build --release --locked

# Runtime: glibc, CA certificates, no shell, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/lgtm-proxy /lgtm-proxy
USER 65532:65532
EXPOSE 8085
EXPOSE 8086
ENTRYPOINT ["/lgtm-proxy"]
