# LLMtrack: `make dev` runs it locally, `make test` runs every test. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY_STAMP := $(VENV)/.installed
CARGO ?= cargo

ADDR ?= 127.0.0.1:8080
DASH_STAMP := dashboard/node_modules/.installed

.PHONY: dev demo test check test-rust test-dashboard test-clients test-infra test-lambdas dashboard lint bench coldstart cost prices fuzz sizes release package deploy clean

## Python tools for the tests (moto's server mode, cfn-lint) in a git-ignored virtualenv.
$(PY_STAMP): infra/requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r infra/requirements-test.txt
	touch $(PY_STAMP)

## The Python client's test tools (the OpenTelemetry SDK and exporters, the OpenAI
## instrumentations, the openai, anthropic and litellm packages), pinned, in a git-ignored venv.
CLIENT_VENV := clients/python/.venv
CLIENT_STAMP := $(CLIENT_VENV)/.installed
$(CLIENT_STAMP): clients/python/requirements-test.txt clients/python/constraints.txt
	python3 -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/pip install --quiet --upgrade pip
	$(CLIENT_VENV)/bin/pip install --quiet -r clients/python/requirements-test.txt -c clients/python/constraints.txt
	touch $(CLIENT_STAMP)

## The TypeScript client's npm packages (exact versions from its package-lock.json).
TS_STAMP := clients/typescript/node_modules/.installed
$(TS_STAMP): clients/typescript/package-lock.json
	cd clients/typescript && npm ci --no-audit --no-fund --ignore-scripts
	touch $(TS_STAMP)

## What `make package` adds (cargo-lambda, zig): not needed by `make test`.
PKG_STAMP := $(VENV)/.package-installed
$(PKG_STAMP): $(PY_STAMP) infra/requirements-package.txt
	$(VENV)/bin/pip install --quiet -r infra/requirements-package.txt
	touch $(PKG_STAMP)

## The dashboard's npm packages (exact versions from package-lock.json).
$(DASH_STAMP): dashboard/package-lock.json
	cd dashboard && npm ci --no-audit --no-fund
	touch $(DASH_STAMP)

## Build the dashboard into dashboard/dist: `llmtrack serve` serves it (debug builds read the folder,
## release builds embed it).
dashboard: $(DASH_STAMP)
	cd dashboard && npm run build

## Serve LLMtrack (API and dashboard) on http://$(ADDR) with the SQLite store in .llmtrack/.
dev: dashboard
	$(CARGO) run -p llmtrack --bin llmtrack -- serve --addr $(ADDR) --data-dir .llmtrack

## A demo workspace in .llmtrack/ (a month of events, members, alert rules, a report), owned by
## OWNER: `make demo OWNER=you@example.com`, then `make dev` and sign in as that address.
demo:
	$(CARGO) run -p llmtrack --bin llmtrack -- demo --data-dir .llmtrack --owner $(OWNER)

## Every test: template lint (cfn-lint, sam validate), the template against the code and the deploy
## preflight (pytest), unit tests, the conformance suite on SQLite and DynamoDB (moto), API tests,
## each benchmark once as a quick smoke run (so they cannot rot), and each Lambda started under a
## local Lambda runtime API.
test: check test-infra test-rust test-dashboard test-clients test-lambdas

## Quality gates: formatting, clippy with warnings as errors (the lints in Cargo.toml's
## [workspace.lints]), every source file's opening //! comment, and each Lambda crate built on
## its own (no SQLite in any, Stripe only in billing and deletion, no function crate in another).
check:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	infra/scripts/check-module-docs
	CARGO=$(CARGO) infra/scripts/check-lambdas

## The template against the code (routes, environment) and the deploy preflight against moto's
## SES and Secrets Manager (docs/DEPLOYMENT.md).
test-infra: $(PY_STAMP) lint
	infra/scripts/with-moto $(VENV)/bin/pytest -q -p no:cacheprovider infra/aws/tests infra/prices

test-rust: $(PY_STAMP) lint dashboard
	@mkdir -p target
	infra/scripts/with-moto $(CARGO) test --workspace --all-targets 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' target/test.log

## The dashboard: unit tests (Vitest), the bundle-size budget, and the end-to-end run in real
## Chromium against a real `llmtrack serve` (the debug binary test-rust built).
test-dashboard: dashboard
	cd dashboard && npm test
	cd dashboard && npm run size
	@# The binary `cargo test` builds (same features: nothing is rebuilt after test-rust).
	$(CARGO) test --workspace --all-targets --no-run
	cd dashboard && LLMTRACK_BIN=$(CURDIR)/target/debug/llmtrack npm run e2e

## The clients against a real `llmtrack serve` (the debug binary test-rust built) and local
## fakes of the OpenAI and Anthropic APIs: the Python client (installed as users install it,
## `pip install ./clients/python`) with the OpenTelemetry ingest through the real SDK and
## instrumentations, then the TypeScript client (type-checked, built, Vitest).
test-clients: $(CLIENT_STAMP) $(TS_STAMP)
	$(CARGO) test --workspace --all-targets --no-run
	$(CLIENT_VENV)/bin/pip install --quiet --no-deps --force-reinstall ./clients/python
	cd clients/python && LLMTRACK_BIN=$(CURDIR)/target/debug/llmtrack .venv/bin/pytest -q -p no:cacheprovider
	cd clients/typescript && npm run typecheck && npm run build
	cd clients/typescript && LLMTRACK_BIN=$(CURDIR)/target/debug/llmtrack npm test

## Every Lambda binary started as Lambda starts it, with the environment template.yaml gives it,
## against a local runtime API (infra/aws/coldstart.py): none fails its init, and each HTTP
## function answers an API Gateway request. Built without the local server, so each gets only
## the features the Lambdas ask for.
test-lambdas: $(PY_STAMP)
	$(CARGO) build --workspace --exclude llmtrack --bins
	$(VENV)/bin/python infra/aws/coldstart.py --bin-dir target/debug --runs 1

lint: $(PY_STAMP)
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam validate --lint --template-file template.yaml --region us-east-1

## Benchmarks; results are recorded in docs/PERFORMANCE.md.
bench: $(PY_STAMP)
	$(CARGO) bench -p llmtrack-shared --bench ingest_cpu
	$(CARGO) bench -p llmtrack-ingest --no-default-features --bench otlp_cpu
	$(CARGO) bench -p llmtrack --bench http_ingest
	$(CARGO) bench -p llmtrack --bench query
	$(CARGO) bench -p llmtrack --bench deletion
	infra/scripts/with-moto $(CARGO) bench -p llmtrack --bench dynamodb_wcu
	$(MAKE) sizes
	$(MAKE) coldstart

## Each Lambda binary's cold start against a local Lambda runtime API (release builds from
## `make sizes`); results in docs/PERFORMANCE.md.
coldstart: $(PY_STAMP)
	$(VENV)/bin/python infra/aws/coldstart.py --bin-dir target/release --runs 20

## The AWS bill at 1, 10 and 100 million events a month (docs/COST.md), from the DynamoDB
## benchmark's measured profiles.
cost: $(PY_STAMP)
	COST_INPUTS=$(CURDIR)/docs/cost-inputs.json infra/scripts/with-moto $(CARGO) bench -p llmtrack --bench dynamodb_wcu
	$(VENV)/bin/python infra/aws/cost.py --write

## Regenerate the bundled price table (shared/data/prices.json) from our own checked entries and
## the public datasets pinned in infra/ (genai-prices, litellm), print what changed and where the
## sources disagree, and re-record how real model ids resolve. Review the diff, then commit it
## (docs/PRICING.md). The build itself never fetches prices.
prices: $(PY_STAMP)
	$(VENV)/bin/python infra/prices/build.py
	LLMTRACK_UPDATE_COVERAGE=1 $(CARGO) test -p llmtrack-shared --lib domain::pricing

## Each fuzz target for five minutes (nightly toolchain and cargo-fuzz; see docs/FUZZING.md).
fuzz:
	cd fuzz && for t in event privacy cursor signature webhook_url; do \
		dict=""; [ -f dicts/$$t.dict ] && dict="-dict=dicts/$$t.dict"; \
		cargo +nightly fuzz run $$t -- $$dict -max_total_time=$${FUZZ_SECONDS:-300} || exit 1; done

## Release size of each Lambda binary and of the local binary (with the dashboard embedded).
sizes: dashboard
	$(CARGO) build --release -p llmtrack-ingest -p llmtrack-query -p llmtrack-account -p llmtrack-keys -p llmtrack-docs -p llmtrack-billing -p llmtrack-deletion -p llmtrack-reports -p llmtrack-alerts -p llmtrack-reconciliation -p llmtrack
	@ls -l target/release/ingest target/release/query target/release/jobs target/release/account target/release/keys target/release/docs target/release/billing target/release/billing-sweep target/release/deletion target/release/deletion-worker target/release/reports target/release/reports-api target/release/digests target/release/alerts target/release/alerts-evaluator target/release/reconciliation target/release/reconciliation-import target/release/llmtrack | awk '{printf "%-28s %6.1f MiB\n", $$9, $$5/1048576}'

## One file to copy to a server: `llmtrack` with the dashboard inside, linked statically (glibc's
## own DNS and /etc/hosts lookups are built in, so it runs on any x86_64 Linux), in dist/.
RELEASE_TARGET ?= x86_64-unknown-linux-gnu
release: dashboard
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p llmtrack --bin llmtrack --target $(RELEASE_TARGET)
	@mkdir -p dist
	cp target/$(RELEASE_TARGET)/release/llmtrack dist/llmtrack
	@ldd dist/llmtrack 2>&1 | grep -qE "statically linked|not a dynamic executable" || { echo "dist/llmtrack is not statically linked"; exit 1; }
	@ls -l dist/llmtrack | awk '{printf "dist/llmtrack: %.1f MiB, statically linked\n", $$5/1048576}'

## Each function's arm64 zip (cargo-lambda, in target/lambda so the main target dir is left
## alone), checked against the size budget; `LAMBDA_ARCH=x86_64` where no aarch64 std is installed.
LAMBDA_ARCH ?= arm64
package: $(PKG_STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH CARGO_TARGET_DIR=target/lambda \
		$(VENV)/bin/python infra/aws/package.py --arch $(LAMBDA_ARCH)

## Deploy to AWS (needs AWS credentials; see docs/DEPLOYMENT.md): refuses to deploy a stack that
## could not work (infra/aws/preflight.py), then builds, deploys and uploads the dashboard.
## `DEPLOY_ARGS` go to the preflight and `sam deploy` alike (e.g. --config-env staging).
deploy: $(PKG_STAMP) dashboard
	$(VENV)/bin/python infra/aws/preflight.py $(DEPLOY_ARGS)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam build --beta-features
	SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam deploy $(DEPLOY_ARGS)
	$(VENV)/bin/python infra/aws/upload_dashboard.py $(DEPLOY_ARGS)

clean:
	$(CARGO) clean
	rm -rf $(VENV) dashboard/node_modules dashboard/dist
