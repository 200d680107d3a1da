# syntax=docker/dockerfile:1
# The cimi-operator image: the release binary on a distroless base, running as a non-root user.
# Build: docker build -t cimi-operator:dev .

# --- build ----------------------------------------------------------------------------------------
FROM rust:1.91-slim-bookworm AS build
# make builds jemalloc, the operator's allocator (tikv-jemalloc-sys); the slim image has gcc but not make.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin && echo "fn main() {}" > src/bin/cimi-operator.rs && echo "" > src/lib.rs \
    && cargo fetch --locked
COPY src ./src
COPY crds ./crds
# Without the devenv feature: no local control plane, no vendored etcd in the image.
RUN cargo build --release --locked --no-default-features --bin cimi-operator \
    && install -D -m 0755 target/release/cimi-operator /out/cimi-operator

# --- run ------------------------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="cimi-operator" \
      org.opencontainers.image.description="A Kubernetes operator for IaaS resources of any DMTF CIMI provider" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/cimi-operator /usr/local/bin/cimi-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cimi-operator"]
CMD ["run"]
