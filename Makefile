# LLMtrack: `make dev` runs it locally, `make test` runs every test. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY_STAMP := $(VENV)/.installed
CARGO ?= cargo

.PHONY: dev test lint bench sizes deploy clean

## Python tools for the tests (moto's server mode, cfn-lint) in a git-ignored virtualenv.
$(PY_STAMP): infra/requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r infra/requirements-test.txt
	touch $(PY_STAMP)

## Serve LLMtrack on http://127.0.0.1:8080 with the SQLite store in .llmtrack/.
dev:
	$(CARGO) run -p llmtrack --bin llmtrack -- serve --addr 127.0.0.1:8080 --data-dir .llmtrack

## Every test: template lint, unit tests, the conformance suite on SQLite and DynamoDB (moto), API tests,
## and each benchmark once as a quick smoke run (so they cannot rot).
test: $(PY_STAMP) lint
	@mkdir -p target
	infra/scripts/with-moto $(CARGO) test --workspace --all-targets 2>&1 | tee target/test.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' target/test.log

lint: $(PY_STAMP)
	$(VENV)/bin/cfn-lint template.yaml

## Benchmarks; results are recorded in docs/PERFORMANCE.md.
bench: $(PY_STAMP)
	$(CARGO) bench -p llmtrack-shared --bench ingest_cpu
	$(CARGO) bench -p llmtrack --bench http_ingest
	$(CARGO) bench -p llmtrack --bench query
	$(CARGO) bench -p llmtrack --bench deletion
	infra/scripts/with-moto $(CARGO) bench -p llmtrack --bench dynamodb_wcu
	$(MAKE) sizes

## Release size of each Lambda binary and of the local binary.
sizes:
	$(CARGO) build --release -p llmtrack-ingest -p llmtrack-query -p llmtrack-account -p llmtrack-keys -p llmtrack-docs -p llmtrack-billing -p llmtrack-deletion -p llmtrack-reports -p llmtrack-alerts -p llmtrack
	@ls -l target/release/ingest target/release/query target/release/jobs target/release/account target/release/keys target/release/docs target/release/billing target/release/billing-sweep target/release/deletion target/release/deletion-worker target/release/reports target/release/reports-api target/release/alerts target/release/alerts-evaluator target/release/llmtrack | awk '{printf "%-28s %6.1f MiB\n", $$9, $$5/1048576}'

## Deploy to AWS (needs the AWS SAM CLI and cargo-lambda; see docs/DEPLOYMENT.md).
deploy:
	sam build --beta-features
	sam deploy --guided

clean:
	$(CARGO) clean
	rm -rf $(VENV)
