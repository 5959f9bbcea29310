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
	rm -rf .local/dynamodb .local/dev-key .local/dev-secrets.json

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## cfn-lint: template.yaml, SAM transform included, with no errors or warnings
cfn-lint: setup
	.local/venv/bin/cfn-lint template.yaml

lint: fmt clippy cfn-lint

## build: the deployable arm64 bootstraps (target/lambda/<function>/bootstrap)
FUNCTIONS := keyhub-api keyhub-authorizer keyhub-example keyhub-usage keyhub-webhooks keyhub-sweeper
build: setup
	rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/.local/venv/bin:$$PATH" $(CARGO) lambda build --release --arm64 $(addprefix --bin ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do printf '%-20s %s bytes\n' $$f $$(stat -c %s target/lambda/$$f/bootstrap); done

## deploy: sam build and sam deploy with samconfig.toml (needs the SAM CLI and AWS credentials)
deploy:
	sam build --beta-features
	sam deploy

## bench: benchmarks against the local stack; results in bench/RESULTS.md
bench:
	$(CARGO) build --release --workspace --bins
	$(STACK) run -- target/release/keyhub-bench
