# nebula_explorer_exporter: `make demo` runs it against the simulated
# Explorer; `make test` runs every test (what CI runs, via .ci/run).

# The Go toolchain every build and test uses, whatever Go the machine has:
# the go command downloads it once (~76 MB) from the module proxy. It is the
# toolchain the release is built and vulnerability-checked with; go.mod's
# `go` line stays at the lowest version the code needs (see README). Keep it
# equal to .ci/run, deploy/build-image.sh and the Dockerfile's GO_IMAGE
# (TestToolchainIsPinnedEverywhere checks).
export GOTOOLCHAIN := go1.27.3

GO          ?= go
BIN         := .build/bin

# Tools of the checks, pinned here, built with $(GOTOOLCHAIN) (a linter or
# govulncheck built with an older Go cannot load this toolchain's standard
# library) and kept per toolchain and version under .build/tools.
TOOLS               := .build/tools/$(GOTOOLCHAIN)
STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
STATICCHECK         := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
GOVULNCHECK         := $(TOOLS)/govulncheck-$(GOVULNCHECK_VERSION)/govulncheck

# The Go vulnerability database of the govulncheck gate: the
# golang.org/x/vulndb module at this version, from the module proxy, indexed
# locally (govulncheck's online database is not reachable from every machine,
# and a pinned one makes the gate reproducible). To take in newer
# vulnerabilities, set it to what `go list -m golang.org/x/vulndb@latest`
# prints (the module has no tags: its versions are pseudo-versions of the
# newest commit) and run `make vulncheck`.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB         := .build/vulndb/$(VULNDB_VERSION)
INDEXDB        := $(TOOLS)/indexdb-$(VULNDB_VERSION)/indexdb

.PHONY: all build demo test lint vet staticcheck vulncheck bench image clean check-go check-test-tools

all: build

# Stamped like the image (--version, build_info): deploy/version-ldflags.sh.
build:
	$(GO) build -ldflags "$$(deploy/version-ldflags.sh)" -o $(BIN)/nebula_explorer_exporter .
	$(GO) build -o $(BIN)/simulator ./deploy/simulator

# The simulator serves a live history on 127.0.0.1:7002; the exporter reads
# it with the sample config.yml and serves http://127.0.0.1:9064/metrics.
# Ctrl-C stops both. Fails, naming it, when an address is taken; other
# addresses: make demo DEMO_EXPLORER=127.0.0.1:7102 DEMO_LISTEN=127.0.0.1:9164
DEMO_EXPLORER ?= 127.0.0.1:7002
DEMO_LISTEN   ?= 127.0.0.1:9064
demo: check-go build
	@BIN=$(BIN) EXPLORER_ADDR=$(DEMO_EXPLORER) LISTEN_ADDR=$(DEMO_LISTEN) deploy/demo.sh

test: check-test-tools lint vulncheck
	$(GO) test -race -count=1 -timeout 30m ./...

lint: vet staticcheck

# gofmt of $(GOTOOLCHAIN), not whatever gofmt is on PATH.
vet:
	@gofmt=$$($(GO) env GOROOT)/bin/gofmt; files=$$(git ls-files '*.go'); \
	test -z "$$($$gofmt -l $$files)" || { echo "gofmt needed:"; $$gofmt -l $$files; exit 1; }
	$(GO) vet ./...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

# What the two commands need, said plainly when missing (README "Try it").
# Any Go >= 1.21 switches to $(GOTOOLCHAIN), downloading it from the proxy.
check-go:
	@command -v $(GO) >/dev/null || { echo "make: Go is needed (any version >= 1.21, e.g. apt-get install golang-go, or go.dev/dl)"; exit 1; }
	@v=$$($(GO) env GOVERSION 2>&1); [ "$$v" = "$(GOTOOLCHAIN)" ] || { \
		echo "$$v"; echo "make: Go cannot run $(GOTOOLCHAIN): that needs Go >= 1.21 ($$(GOTOOLCHAIN=local $(GO) version)) and the Go module proxy (network)"; exit 1; }

# The Debian tools only skip their tests when missing (they fail in CI).
DEBIAN_TOOLS := prometheus:prometheus promtool:prometheus \
	prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager \
	yamllint:yamllint shellcheck:shellcheck podman:podman runc:runc docker-compose:docker-compose
check-test-tools: check-go
	@command -v git >/dev/null || { echo "make test needs git (gofmt check of the tracked files): apt-get install git"; exit 1; }
	@command -v gcc >/dev/null || { echo "make test needs gcc for go test -race: apt-get install gcc libc6-dev"; exit 1; }
	@echo 'int main(void){return 0;}' | gcc -x c -o /dev/null - 2>/dev/null || { echo "make test needs a working C toolchain for go test -race (gcc cannot link a C program): apt-get install libc6-dev"; exit 1; }
	@missing=; for tp in $(DEBIAN_TOOLS); do command -v $${tp%%:*} >/dev/null || missing="$$missing $$tp"; done; \
	if [ -n "$$missing" ]; then \
		pkgs=$$(for tp in $$missing; do echo $${tp#*:}; done | sort -u | tr '\n' ' '); \
		if [ -n "$$CI" ]; then what="FAIL (CI is set)"; else what="are skipped"; fi; \
		echo "make test: missing$$(for tp in $$missing; do printf ' %s' $${tp%%:*}; done): their tests $$what. Install: apt-get install $$pkgs"; \
		[ -z "$$CI" ]; \
	fi

# Fails on any vulnerability the code can reach (in a module or in the
# standard library of $(GOTOOLCHAIN)), naming their IDs. Vulnerabilities only
# in code the exporter never calls are listed by `govulncheck -show verbose`
# but pass.
vulncheck: $(GOVULNCHECK) $(VULNDB)/index/db.json
	@echo ">> govulncheck: $(GOTOOLCHAIN), golang.org/x/vulndb@$(VULNDB_VERSION)"
	@out=$$($(GOVULNCHECK) -db file://$(abspath $(VULNDB)) ./... 2>&1); rc=$$?; echo "$$out"; \
	if [ $$rc -ne 0 ]; then \
		ids=$$(echo "$$out" | sed -n 's/^Vulnerability #[0-9]*: //p' | tr '\n' ' '); \
		echo "vulncheck FAILED: $${ids:-govulncheck could not run (see above)}"; \
		echo "  fix: raise GOTOOLCHAIN (Makefile, .ci/run, deploy/build-image.sh, Dockerfile) or 'go get' the fixed module version"; \
		exit 1; \
	fi

# The vulnerability index, built from the pinned module into a temporary
# directory and renamed into place, so an interrupted build leaves nothing.
$(VULNDB)/index/db.json: | $(INDEXDB)
	@mkdir -p $(dir $(VULNDB))
	@osv=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	test -d "$$osv/data/osv" || { echo "vulncheck: golang.org/x/vulndb@$(VULNDB_VERSION) has no data/osv (download failed?)"; exit 1; }; \
	tmp=$$(mktemp -d $(VULNDB).tmp.XXXXXX) && \
	echo ">> indexing $$osv/data/osv" && \
	$(INDEXDB) -vulns "$$osv/data/osv" -out "$$tmp" && \
	rm -rf $(VULNDB) && mv "$$tmp" $(VULNDB)

# go install into a directory named after the tool and its version.
$(STATICCHECK):
	GOBIN=$(abspath $(@D)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(GOVULNCHECK):
	GOBIN=$(abspath $(@D)) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
$(INDEXDB):
	GOBIN=$(abspath $(@D)) $(GO) install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION)

# The performance targets of the closing notes (see README "Performance").
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./collector
	$(GO) test -run '^$$' -bench ExporterMemory -benchtime 1x .

# localhost/nebula_explorer_exporter:dev and its SBOM, .build/sbom.cdx.json
# (CycloneDX, cyclonedx-gomod): see deploy/build-image.sh.
image:
	deploy/build-image.sh

clean:
	rm -rf .build
