# phasekit: make build | test | lint | bench | demo | setup | image
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test lint bench demo setup image clean fuzz corpus

all: build

setup:
	bash .ci/setup

# image: the PostgreSQL image the docker sandbox and its tests run, built from
# Debian packages since no registry may be reachable (as root, about two
# minutes, then kept). Skipped with a notice without Docker or root, unless
# CI=true.
IMAGE ?= phasekit/postgres:15-bookworm
# The docker sandbox uses this image when it is present (make image).
export PHASEKIT_IMAGE ?= $(IMAGE)
image: setup
	@if docker image inspect $(IMAGE) >/dev/null 2>&1; then \
	  echo "image: $(IMAGE) present"; \
	elif docker info >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  $(GO) run ./cmd/phasekit image build --tag $(IMAGE); \
	elif [ "$$CI" = true ]; then \
	  echo "image: cannot build $(IMAGE): it needs a Docker daemon and root" >&2; exit 1; \
	else \
	  echo "image: skipping $(IMAGE) (needs a Docker daemon and root): docker sandbox tests will skip"; \
	fi

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/phasekit ./cmd/phasekit

test: setup image
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	PHASEKIT_IMAGE=$${PHASEKIT_IMAGE:-$(IMAGE)} $(GO) test -p 2 -timeout 20m $$($(GO) list ./... | grep -v '/plancheck$$')
	@# The plan check's tests (the fuzzer's 300 cases, the Kratos sample) keep
	@# both cores busy: alone, so the writers tests' latency bounds above
	@# measure phasekit, not a starved machine.
	$(GO) test -timeout 30m ./plancheck

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# bench: lint and plan throughput; phasekit lint against squawk on the shared
# lint corpus (all files and one file, medians of 7, with stage times); the plan check's cost
# (50 tables, Chinook, Pagila: docs/plan-check.md); then the backfill under a
# pgbench workload at each size in ROWS: baseline, naive UPDATE, phasekit with
# its defaults (latency guard on) and with the guard off, an I/O-only control,
# 3 repetitions, a sweep of other settings at the first size, issue 14's
# targets with PASS/FAIL and docs/backfill-tradeoff.svg (docs/BENCHMARKS.md:
# about 45 minutes; ROWS=1000000 for a quick look).
ROWS ?= 2000000,10000000
# LINT_BASELINE: another phasekit binary (say, main's) the lint bench times in
# the same runs, interleaved, for a before/after.
# SCALE: pgbench scale of the generated source the sandbox copy is timed on
# (68 is about 1 GB).
SCALE ?= 68
bench: setup build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./phases/ ./lint/
	$(GO) run ./bench/plancheck -reps 3
	$(GO) run ./bench/lint -phasekit bin/phasekit -gen ../shared/bench/lint/gen.py $(if $(LINT_BASELINE),-baseline $(LINT_BASELINE))
	$(GO) run ./bench/backfill -rows $(ROWS) -svg docs/backfill-tradeoff.svg
	$(GO) build -o bin/app ./examples/app
	$(GO) run ./bench/sandbox -scale $(SCALE) -phasekit bin/phasekit -app bin/app

# fuzz: the differential fuzzer (docs/plan-check.md) for as long as asked,
# from a new seed each run; minimized counterexamples are written into
# plancheck/testdata/counterexamples, which the test suite replays.
FOR ?= 10m
fuzz: setup
	$(GO) test -run '^TestDifferential$$' -timeout 0 -v ./plancheck -args -fuzz.for=$(FOR) -fuzz.seed=$$(date +%s)000 -fuzz.save=testdata/counterexamples

# corpus: replay the shared Ory Kratos history (346 PostgreSQL versions):
# plan and check every file against the schema the earlier ones built
# (docs/corpus.md). About 10 minutes.
KRATOS ?= ../shared/datasets/kratos-migrations
corpus: setup build
	@mkdir -p build
	bin/phasekit replay --dir $(KRATOS)/migrations --order $(KRATOS)/postgres-order.txt --out build/corpus-kratos.json --markdown build/corpus-kratos.md

demo: setup build
	$(GO) build -o bin/app ./examples/app
	$(GO) run ./examples/demo

clean:
	rm -rf bin build
