# Concierge: the two commands are `make run` and `make test`.
# Python dev tools (moto, cfn-lint) live in a project-local venv, built on first use;
# the local runner and the end-to-end tests find moto through CONCIERGE_VENV.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
REQUIREMENTS := infra/requirements-dev.txt
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.PHONY: help venv run lint test bench release clean-local

help: ## Show this help
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

venv: $(VENV_STAMP) ## Create .venv with the pinned Python dev tools

# Reinstalls only when the pins change.
$(VENV_STAMP): $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r $(REQUIREMENTS)
	touch $@

run: venv ## Start the local stack (emulator + runner); pass flags with ARGS="..."
	CONCIERGE_VENV=$(CURDIR)/$(VENV) cargo run --quiet -p concierge-local -- $(ARGS)

lint: venv ## rustfmt check, clippy (warnings are errors), cfn-lint
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml

test: lint ## lint, then every test in the workspace (unit and end-to-end)
	@mkdir -p .local
	CONCIERGE_VENV=$(CURDIR)/$(VENV) cargo test --workspace --locked 2>&1 | tee .local/test.log
	@# One closing line with the totals of every test binary.
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "%d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' .local/test.log

bench: venv ## Benchmarks: ingest CPU path, retrieval + prompt, answer latency through the local stack
	cargo bench -p concierge --bench ingest
	cargo bench -p concierge --bench assistant
	CONCIERGE_VENV=$(CURDIR)/$(VENV) cargo bench -p concierge-e2e --bench answer
	CONCIERGE_VENV=$(CURDIR)/$(VENV) cargo bench -p concierge-e2e --bench purge

FUNCTIONS := webhook-ingest inbound-sweeper reply-worker retention-purge shopify-gdpr privacy-worker

release: ## Build every function for release and print the binary sizes
	cargo build --release $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do printf '%s: %s bytes\n' "$$f" "$$(wc -c < $(TARGET_DIR)/release/$$f | tr -d ' ')"; done

clean-local: ## Delete local stack state (.local)
	rm -rf .local
