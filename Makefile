# fhircast-hub: the two commands a newcomer needs are `make run` and `make test`.
# Each installs what it needs on a fresh Debian machine (see `make deps`).

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
LISTEN ?= 127.0.0.1:8080

.PHONY: help run test lint fmt deps build-test conformance

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

run: deps ## start the embedded hub with the dev issuer on $(LISTEN) and print a walkthrough
	$(CARGO) build --release -p gateway -p hub-tests --bins
	./target/release/fhircast-gateway --embedded --dev-issuer --listen $(LISTEN)

test: deps build-test ## run every test: unit, cross-process scenarios, conformance suite
	$(CARGO) nextest run --workspace --profile ci
	./target/debug/fhircast-conformance --embedded

build-test:
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --no-run --profile ci

conformance: build-test ## run only the FHIRcast conformance suite against a fresh embedded hub
	./target/debug/fhircast-conformance --embedded

lint: ## formatting and clippy, as CI expects them
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the workspace
	$(CARGO) fmt --all

deps: ## install what the build and tests need (Rust toolchain assumed; cargo-nextest if missing)
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest
	@command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq build-essential; }
