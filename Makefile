# keyhub: the two commands are `make dev` and `make test`; the rest are helpers.
SHELL := /bin/bash
CARGO ?= cargo
STACK := scripts/stack.sh

.PHONY: dev test setup reset lint fmt clippy cfn-lint build bench deploy

## dev: run the whole stack locally on http://127.0.0.1:3000 and print a key
dev:
	$(CARGO) build -p keyhub-tools --bin keyhub-local
	$(STACK) run --persist -- $(CARGO) run -q -p keyhub-tools --bin keyhub-local

## test: install what is missing, start the local services, run every test
## (after the lints: rustfmt and clippy with warnings as errors)
test: lint
	$(CARGO) build --workspace --all-targets
	$(STACK) run -- $(CARGO) test --workspace --no-fail-fast

## setup: install the local services' packages into .local/
setup:
	$(STACK) setup

## reset: forget local data (DynamoDB tables, the dev key and pepper)
reset:
	rm -rf .local/dynamodb .local/dev-key .local/dev-pepper

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint: fmt clippy

## bench: benchmarks against the local stack; results in bench/RESULTS.md
bench:
	$(CARGO) build --release -p keyhub-tools --bin keyhub-bench
	$(STACK) run -- $(CARGO) run --release -q -p keyhub-tools --bin keyhub-bench
