# syntax=docker/dockerfile:1
# Build stage: the same `cargo build --release --locked` as a local release build.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked

# Runtime: glibc, CA certificates, no shell, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/lgtm-proxy /lgtm-proxy
USER 65532:65532
EXPOSE 8085
EXPOSE 8086
ENTRYPOINT ["/lgtm-proxy"]
