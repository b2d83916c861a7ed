#!/usr/bin/env bash
# Builds the container image localhost/nebula_explorer_exporter:dev without a
# Docker daemon and without pulling any image (`make image` runs this script):
#   1. a static binary on the host: CGO_ENABLED=0, -trimpath,
#      -ldflags "-s -w -X github.com/prometheus/common/version.*=...";
#   2. the host's CA bundle next to it, in .build/image/;
#   3. podman build --target image (FROM scratch + COPY, see Dockerfile).
#
# Environment (all optional):
#   IMAGE                  image name (default localhost/nebula_explorer_exporter:dev)
#   PODMAN                 podman binary (default podman)
#   PODMAN_ROOT            podman --root (storage), e.g. a temporary directory
#   PODMAN_RUNROOT         podman --runroot
#   PODMAN_STORAGE_DRIVER  podman --storage-driver (e.g. vfs)
#   GO                     go binary (default go)
#   GOARCH                 target architecture (default: the host's)
#   CA_BUNDLE              CA certificates to copy (default /etc/ssl/certs/ca-certificates.crt)
#   VERSION REVISION BRANCH  version metadata (default: from git)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The toolchain of every build (the Makefile's; downloaded once by the go
# command if the machine has another Go).
export GOTOOLCHAIN=go1.27.3

IMAGE=${IMAGE:-localhost/nebula_explorer_exporter:dev}
PODMAN=${PODMAN:-podman}
GO=${GO:-go}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
out=.build/image

git_or() {
	local fallback=$1
	shift
	git "$@" 2>/dev/null || echo "$fallback"
}
VERSION=${VERSION:-$(git_or dev describe --tags --always --dirty)}
VERSION=${VERSION#v}
REVISION=${REVISION:-$(git_or unknown rev-parse HEAD)}
BRANCH=${BRANCH:-$(git_or unknown rev-parse --abbrev-ref HEAD)}
BUILD_USER=${BUILD_USER:-$(id -un 2>/dev/null || echo unknown)@$(hostname 2>/dev/null || echo unknown)}
BUILD_DATE=${BUILD_DATE:-$(date -u +%Y%m%d-%H:%M:%S)}

if [[ ! -r $CA_BUNDLE ]]; then
	echo "build-image.sh: no CA bundle at $CA_BUNDLE (install ca-certificates or set CA_BUNDLE)" >&2
	exit 1
fi

mkdir -p "$out"
v=github.com/prometheus/common/version
echo ">> building static binary $out/nebula_explorer_exporter ($VERSION, $REVISION)"
CGO_ENABLED=0 GOOS=linux "$GO" build -trimpath \
	-ldflags "-s -w -X $v.Version=$VERSION -X $v.Revision=$REVISION -X $v.Branch=$BRANCH -X $v.BuildUser=$BUILD_USER -X $v.BuildDate=$BUILD_DATE" \
	-o "$out/nebula_explorer_exporter" .
install -m 0644 "$CA_BUNDLE" "$out/ca-certificates.crt"

podman_args=()
if [[ -n ${PODMAN_ROOT:-} ]]; then
	podman_args+=(--root "$PODMAN_ROOT")
fi
if [[ -n ${PODMAN_RUNROOT:-} ]]; then
	podman_args+=(--runroot "$PODMAN_RUNROOT")
fi
if [[ -n ${PODMAN_STORAGE_DRIVER:-} ]]; then
	podman_args+=(--storage-driver "$PODMAN_STORAGE_DRIVER")
fi

echo ">> building image $IMAGE"
"$PODMAN" "${podman_args[@]}" build --target image \
	--build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
	-t "$IMAGE" -f Dockerfile .
