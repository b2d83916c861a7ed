#!/usr/bin/env bash
# Builds the container image localhost/nebula_explorer_exporter:dev without a
# Docker daemon and without pulling any image (`make image` runs this script):
#   1. a static binary on the host: CGO_ENABLED=0, -trimpath,
#      -ldflags "-s -w" plus the version stamp of deploy/version-ldflags.sh;
#   2. the host's CA bundle next to it, in .build/image/ (or $OUT);
#   3. the binary's SBOM (CycloneDX JSON, cyclonedx-gomod bin): every module
#      linked into it with its version, and the Go standard library with the
#      toolchain's version, in .build/sbom.cdx.json;
#   4. podman build --target image (FROM scratch + COPY, see Dockerfile).
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
#   OUT                    where the binary and CA bundle go (default .build/image)
#   SBOM                   where the SBOM goes (default .build/sbom.cdx.json)
#   VERSION REVISION BRANCH BUILD_USER BUILD_DATE
#                          version metadata (default: from git, see version-ldflags.sh)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The toolchain of every build (the Makefile's; downloaded once by the go
# command if the machine has another Go).
export GOTOOLCHAIN=go1.27.3

IMAGE=${IMAGE:-localhost/nebula_explorer_exporter:dev}
PODMAN=${PODMAN:-podman}
GO=${GO:-go}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
out=${OUT:-.build/image}

SBOM=${SBOM:-.build/sbom.cdx.json}
CYCLONEDX_GOMOD_VERSION=v1.10.0
ldflags=$(deploy/version-ldflags.sh)
stamp() { sed -n "s/.*version\.$1=\([^ ]*\).*/\1/p" <<<"$ldflags"; }
version=$(stamp Version)
# The SBOM names the main module at the stamped version, as Go would (v1.2.3).
module_version=$version
if [[ $version == [0-9]* ]]; then
	module_version=v$version
fi

if [[ ! -r $CA_BUNDLE ]]; then
	echo "build-image.sh: no CA bundle at $CA_BUNDLE (install ca-certificates or set CA_BUNDLE)" >&2
	exit 1
fi

mkdir -p "$out"
echo ">> building static binary $out/nebula_explorer_exporter ($version, $("$GO" env GOVERSION))"
CGO_ENABLED=0 GOOS=linux "$GO" build -trimpath -ldflags "-s -w $ldflags" \
	-o "$out/nebula_explorer_exporter" .
install -m 0644 "$CA_BUNDLE" "$out/ca-certificates.crt"

echo ">> SBOM of the binary: $SBOM"
mkdir -p "$(dirname "$SBOM")"
"$GO" run "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$CYCLONEDX_GOMOD_VERSION" bin \
	-json -std -version "$module_version" -output "$SBOM" "$out/nebula_explorer_exporter"

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

# The build context: just what the image target copies, at the paths the
# Dockerfile names, so builds with different OUT never share files.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/.build/image"
cp "$out/nebula_explorer_exporter" "$out/ca-certificates.crt" "$context/.build/image/"

echo ">> building image $IMAGE"
"$PODMAN" "${podman_args[@]}" build --target image \
	--build-arg "VERSION=$version" \
	--build-arg "REVISION=$(stamp Revision)" \
	-t "$IMAGE" -f Dockerfile "$context"
