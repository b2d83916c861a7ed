#!/bin/sh
# Prints the -ldflags arguments that stamp a binary with its version, shown
# by --version and nebula_explorer_exporter_build_info. The one definition
# used by `make build`/`make demo`, deploy/build-image.sh and the Dockerfile.
#
# Environment (all optional; defaults from git, or dev/unknown without it):
#   VERSION REVISION BRANCH BUILD_USER BUILD_DATE
# Values must not contain spaces.
set -eu
cd "$(dirname "$0")/.."

git_or() {
	fallback=$1
	shift
	git "$@" 2>/dev/null || echo "$fallback"
}
VERSION=${VERSION:-$(git_or dev describe --tags --always --dirty)}
VERSION=${VERSION#v}
REVISION=${REVISION:-$(git_or unknown rev-parse HEAD)}
BRANCH=${BRANCH:-$(git_or unknown rev-parse --abbrev-ref HEAD)}
BUILD_USER=${BUILD_USER:-$(id -un 2>/dev/null || echo unknown)@$(hostname 2>/dev/null || echo unknown)}
BUILD_DATE=${BUILD_DATE:-$(date -u +%Y%m%d-%H:%M:%S)}

v=github.com/prometheus/common/version
echo "-X $v.Version=$VERSION -X $v.Revision=$REVISION -X $v.Branch=$BRANCH -X $v.BuildUser=$BUILD_USER -X $v.BuildDate=$BUILD_DATE"
