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
STATICCHECK := staticcheck
STATICCHECK_VERSION := v0.8.2

.PHONY: all build demo test lint vet staticcheck bench image clean

all: build

build:
	$(GO) build -o $(BIN)/nebula_explorer_exporter .
	$(GO) build -o $(BIN)/simulator ./deploy/simulator

# The simulator serves a live history on 127.0.0.1:7002; the exporter reads
# it with the sample config.yml and serves http://127.0.0.1:9064/metrics.
# Ctrl-C stops both.
demo: build
	@$(BIN)/simulator --web.listen-address=127.0.0.1:7002 & sim=$$!; \
	$(BIN)/nebula_explorer_exporter --config.file=config.yml --web.listen-address=127.0.0.1:9064 & exporter=$$!; \
	trap 'kill $$sim $$exporter 2>/dev/null' INT TERM; \
	sleep 1; echo; echo ">> metrics: http://127.0.0.1:9064/metrics  (Ctrl-C stops the demo)"; echo; \
	wait

test: lint
	$(GO) test -race -count=1 -timeout 30m ./...

lint: vet staticcheck

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

staticcheck:
	@command -v $(STATICCHECK) >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" $(STATICCHECK) ./...

# The performance targets of the closing notes (see README "Performance").
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5x ./collector
	$(GO) test -run '^$$' -bench ExporterMemory -benchtime 1x .

image:
	deploy/build-image.sh

clean:
	rm -rf .build
