# Container image of nebula_explorer_exporter: a static binary on an empty
# (scratch) base, running as nobody (65534:65534), with CA certificates for
# HTTPS to Explorer. The config file is read from
# /etc/nebula_explorer_exporter/config.yml (mount it there); the exporter
# listens on :9064.
#
# Two ways to build the same image:
#
# 1. Default target "image" (last stage): no base image is pulled. It copies a
#    binary and a CA bundle that were built on the host into .build/image/.
#    `make image` (deploy/build-image.sh) does both steps, then runs
#      podman build --target image -t localhost/nebula_explorer_exporter:dev .
#    Works on machines that cannot reach any image registry.
#
# 2. Target "from-source": compiles inside golang:1.27.3 (the Makefile's GOTOOLCHAIN), for machines that can
#    pull images (BuildKit and podman/buildah skip the stages a target does
#    not need):
#      docker build --target from-source -t nebula_explorer_exporter .
#    deploy/docker-compose.yml builds this target, and "simulator" for the
#    demo Explorer.
#
# Run (as in the README; --network=host because the sample config reads
# Explorer at 127.0.0.1, which inside a container would be the container):
#   podman run --rm --network=host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
#     -v ./config.yml:/etc/nebula_explorer_exporter/config.yml:ro \
#     localhost/nebula_explorer_exporter:dev
# Arguments after the image name replace CMD, so repeat --config.file there.

ARG GO_IMAGE=golang:1.27.3

# ---- from-source builder (pulls GO_IMAGE) ----------------------------------
FROM ${GO_IMAGE} AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version stamp of deploy/version-ldflags.sh (no .git in the context:
# pass VERSION, REVISION and BRANCH as build arguments).
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w $(VERSION=${VERSION} REVISION=${REVISION} BRANCH=${BRANCH} BUILD_USER=docker BUILD_DATE=unknown sh deploy/version-ldflags.sh)" \
      -o /out/nebula_explorer_exporter . \
 && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

# The demo Explorer (deploy/simulator), used by deploy/docker-compose.yml.
FROM builder AS simulator-builder
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
      -o /out/simulator ./deploy/simulator

FROM scratch AS simulator
COPY --from=simulator-builder /out/simulator /bin/simulator
USER 65534:65534
EXPOSE 7002
ENTRYPOINT ["/bin/simulator"]
CMD ["--web.listen-address=0.0.0.0:7002"]

# ---- common runtime settings of both exporter images ------------------------
FROM scratch AS base
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="nebula_explorer_exporter" \
      org.opencontainers.image.description="Prometheus exporter for NebulaGraph Explorer workflow jobs" \
      org.opencontainers.image.source="https://github.com/nebula-contrib/nebula_explorer_exporter" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
USER 65534:65534
EXPOSE 9064
ENTRYPOINT ["/bin/nebula_explorer_exporter"]
CMD ["--config.file=/etc/nebula_explorer_exporter/config.yml"]

# ---- target from-source -------------------------------------------------------
FROM base AS from-source
COPY --from=builder /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/nebula_explorer_exporter /bin/nebula_explorer_exporter

# ---- target image (default): binary built on the host ------------------------
# deploy/build-image.sh fills .build/image/ (CGO_ENABLED=0, -trimpath,
# -ldflags "-s -w -X ...version...") and copies the host's CA bundle there.
FROM base AS image
COPY .build/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY .build/image/nebula_explorer_exporter /bin/nebula_explorer_exporter
