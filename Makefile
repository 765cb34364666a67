# phasekit: make build | test | lint | bench | demo | setup
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test lint bench demo setup clean

all: build

setup:
	bash .ci/setup

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/phasekit ./cmd/phasekit

test: setup
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test -p 2 -timeout 20m ./...

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# bench: lint and plan throughput, then the backfill against a naive UPDATE
# under a pgbench workload (ROWS=10000000 as in docs/BENCHMARKS.md; a few
# minutes; ROWS=1000000 for a quick look).
ROWS ?= 10000000
bench: setup build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./phases/ ./lint/
	$(GO) run ./bench/backfill -rows $(ROWS)

demo: setup build
	$(GO) run ./examples/demo

clean:
	rm -rf bin build
