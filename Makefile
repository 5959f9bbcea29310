# keyhub: the two commands are `make dev` and `make test`; the rest are helpers.
SHELL := /bin/bash
CARGO ?= cargo
STACK := scripts/stack.sh

.PHONY: dev test clients screenshots setup reset lint fmt clippy cfn-lint deny deny-advisories deny-setup build bench deploy fuzz package sam-setup size

## dev: run the whole stack locally on http://127.0.0.1:3000 and print a key
dev:
	$(CARGO) build -p keyhub-tools --bin keyhub-local
	$(STACK) run --persist -- $(CARGO) run -q -p keyhub-tools --bin keyhub-local

## test: install what is missing (Chromium and chromium-driver too, for the
## console's browser tests), start the local services, run every test
## (after the lints: rustfmt and clippy with warnings as errors)
test: lint
	$(STACK) browser
	$(CARGO) build --workspace --all-targets
	$(STACK) run -- $(CARGO) test --workspace --no-fail-fast

## clients: the Python and TypeScript clients, generated from openapi.yaml
## into .local/clients with pinned generators (installed when missing);
## make test generates and tests them too (tests/tests/api/clients.rs)
clients:
	scripts/clients.sh

## screenshots: the console's browser tests, saving the README's screenshots
## in docs/console/ (a plain test run keeps them in target/)
screenshots:
	$(STACK) browser
	KEYHUB_SCREENSHOTS=$(CURDIR)/docs/console $(STACK) run -- $(CARGO) test -p keyhub-tests --test api -- browser::

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

## cfn-lint: template.yaml with no errors or warnings, then through the real
## SAM transform for every combination of the shape-changing parameters
## (cfn-lint passes templates the transform refuses)
## The serverless rules (cfn-lint-serverless) too; the README says why each
## rule left off is (ES1007, ES4000, ES6000, WS1004).
SERVERLESS_RULES_OFF := ES1007 ES4000 ES6000 WS1004
cfn-lint: setup
	.local/venv/bin/cfn-lint template.yaml
	.local/venv/bin/cfn-lint --append-rules cfn_lint_serverless.rules \
	  --ignore-checks $(SERVERLESS_RULES_OFF) -- template.yaml
	.local/venv/bin/python scripts/sam_transform.py --check

## deny: cargo-deny's bans (one hyper, h2, rustls, rustls-webpki and aws-lc-rs;
## no ring, openssl or native-tls), licenses and sources (crates.io only), as
## deny.toml states them; offline, from the crates Cargo already has
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := $(CURDIR)/.local/cargo/bin/cargo-deny
deny-setup:
	@if [ "$$($(CARGO_DENY) --version 2>/dev/null)" != "cargo-deny $(CARGO_DENY_VERSION)" ]; then \
	  echo "installing cargo-deny $(CARGO_DENY_VERSION) into .local/cargo"; \
	  $(CARGO) install --locked --root .local/cargo cargo-deny@$(CARGO_DENY_VERSION); \
	fi
# cargo-deny reads every platform's packages (cargo metadata with no
# --filter-platform), and a build only downloads the host's: `cargo fetch`
# brings the rest (windows-sys and the like) from crates.io first.
deny: deny-setup
	$(CARGO) fetch --locked
	$(CARGO_DENY) --offline --locked check bans licenses sources

## deny-advisories: the RustSec advisories too; fetches the advisory database
## from GitHub, so it is not part of make lint (see README)
deny-advisories: deny-setup
	$(CARGO_DENY) --locked check advisories

lint: fmt clippy cfn-lint deny

## sam-setup: the SAM CLI, pinned, in its own virtualenv (.local/sam): its
## pinned boto3 clashes with moto's
SAM_CLI_VERSION := 1.170.0
SAM := $(CURDIR)/.local/sam/bin/sam
# cargo-lambda (and zig) for SAM's rust-cargolambda builds; no telemetry.
SAM_ENV := PATH="$(CURDIR)/.local/venv/bin:$$PATH" SAM_CLI_TELEMETRY=0
sam-setup: setup
	@if [ "$$($(SAM) --version 2>/dev/null)" != "SAM CLI, version $(SAM_CLI_VERSION)" ]; then \
	  echo "installing aws-sam-cli==$(SAM_CLI_VERSION) into .local/sam"; \
	  python3 -m venv .local/sam && \
	  .local/sam/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION); \
	fi

## build: sam build, as a deploy does: every function's arm64 bootstrap
## through Cargo Lambda, into .aws-sam/build/<Function>/bootstrap (offline)
FUNCTIONS := ApiFunction AuthorizerFunction ExampleFunction UsageFunction WebhooksFunction SweeperFunction
build: sam-setup
	rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	$(SAM_ENV) $(SAM) build --beta-features
	@for f in $(FUNCTIONS); do printf '%-20s %s bytes\n' $$f $$(stat -c %s .aws-sam/build/$$f/bootstrap); done

## size: each bootstrap make build made, against its budget (authorizer
## 6 MB, the others 8 MB), and the largest crates in each (from the same
## build with its symbols, profile bloat); fails over budget. CI runs it
## after make build. KEYHUB_SIZE_CRATES=0 skips the crates.
size:
	CARGO="$(CARGO)" scripts/size.sh

## package: the deployable template with each function's code uploaded to S3
## (.aws-sam/packaged.yaml); needs AWS credentials, like deploy. Without
## them, `make build` checks all that can be checked offline.
package: build
	$(SAM_ENV) $(SAM) package --resolve-s3 --output-template-file .aws-sam/packaged.yaml

## deploy: sam build and sam deploy with samconfig.toml (needs AWS credentials)
deploy: build
	$(SAM_ENV) $(SAM) deploy

## bench: the in-process micro-benchmarks (divan: shared/benches,
## shared/domain/benches; their tables in bench/MICRO.txt), then the
## benchmarks against the local stack and the cold starts (host release build,
## and the arm64 bootstraps of make build under qemu-user when both are
## there); results in bench/RESULTS.md
bench:
	set -o pipefail; $(CARGO) bench -p keyhub-domain --bench signing | tee bench/MICRO.txt
	set -o pipefail; $(CARGO) bench -p keyhub --bench verify | tee -a bench/MICRO.txt
	$(CARGO) build --release --workspace --bins
	$(STACK) qemu
	$(STACK) run -- target/release/keyhub-bench

## fuzz: schemathesis against the local stack from openapi.yaml, every check,
## stateful phase included; FUZZ_SECONDS (default 600), FUZZ_SEED to replay
fuzz:
	CARGO="$(CARGO)" scripts/fuzz.sh
