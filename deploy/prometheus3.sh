#!/usr/bin/env bash
# Builds Prometheus 3 and its promtool from the github.com/prometheus/prometheus
# module at a pinned version with `go install` (about 7 minutes cold) into a
# cache directory keyed by the version, and prints that directory. A second
# run finds the binaries and builds nothing. The deploy tests run the rules
# and the stack on these binaries (see README, "Monitoring kit").
#
#   deploy/prometheus3.sh            # -> $(go env GOPATH)/prometheus3/v0.316.0
#   PROMETHEUS3_CACHE=/var/cache/p3 deploy/prometheus3.sh
set -euo pipefail

# The tests read this line to find the binaries: keep it `version=vX.Y.Z`.
version=v0.316.0

cache="${PROMETHEUS3_CACHE:-$(go env GOPATH)/prometheus3}"
dir="$cache/$version"
if [[ -x "$dir/prometheus" && -x "$dir/promtool" ]]; then
	echo "$dir"
	exit 0
fi

# Build into a temporary directory first, so that an interrupted build never
# leaves half a cache behind. Stamp the version the binaries report (module
# v0.316.0 is Prometheus 3.16.0).
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
release="3.${version#v0.3}"
echo ">> building Prometheus $release ($version) into $dir" >&2
GOBIN="$tmp" go install \
	-ldflags "-X github.com/prometheus/common/version.Version=$release" \
	"github.com/prometheus/prometheus/cmd/prometheus@$version" \
	"github.com/prometheus/prometheus/cmd/promtool@$version" >&2
chmod 755 "$tmp" # mktemp made it private
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
