# PayBridge — every target sets up what it needs (a fresh machine needs only python3 and make).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
# CI-only tools, each in its own environment (they pin their own dependencies, like aws-sam-cli)
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
ST_VENV := .venv-schemathesis
ST := $(ST_VENV)/bin/schemathesis
STAMP := $(VENV)/.installed
export PYTHONPATH := layers/common:.
export SAM_CLI_TELEMETRY := 0
# The project's path is for the project's venv only: aws-sam-cli, checkov and schemathesis run in their own venvs
# without it (else their pip sees this checkout's paybridge.egg-info and warns of its missing requirements).
OWN_ENV := env -u PYTHONPATH -u VIRTUAL_ENV
# `make deploy STAGE=prod` deploys samconfig.toml's [prod] section; no STAGE: the guided default.
STAGE ?=
PAYBRIDGE := $(BIN)/python -m scripts.cli

.PHONY: help dev demo test unit integration e2e lint format typecheck openapi validate build deploy import-times clean lock layer-size \
	redrive-crm bench-crm demo-bank demo-settlements reconcile-report bench-reconcile bench-latency checkov schemathesis \
	report tenants-check tenants-put tenants-list keys-new secrets-template webhooks-register redrive-lifecycle cost \
	bench-shards

help:
	@echo "make demo       run the scripted payment scenario on the local stack (starts it if needed)"
	@echo "make demo-bank  the bank-transfer scenario: webhook + statement read, 1C upload counted once"
	@echo "make demo-settlements  acquiring payouts on the statement matched to the payments (YooKassa + T-Bank business)"
	@echo "make reconcile-report TENANT=acquiring-shop MONTH=YYYY-MM  the month's acquiring reconciliation (table, HTML, JSON)"
	@echo "make bench-reconcile  match 100,000 statement lines against 100,000 invoices (ARGS=--lines N --invoices M)"
	@echo "make dev        serve the local stack on 127.0.0.1:\$${PAYBRIDGE_PORT:-3000}"
	@echo "make test       run all tests (unit, integration on moto, end-to-end on the local stack)"
	@echo "make lint       ruff + mypy;  make validate: sam validate --lint + cfn-lint;  make build: sam build"
	@echo "make openapi    regenerate openapi.json from the routes;  make deploy: sam deploy --guided"
	@echo "make schemathesis  fuzz the local stack with openapi.json (all checks, fixed seed);  make checkov"
	@echo "make bench-crm  N payments through the CRM outbox to the fake Bitrix24 at its real limit (ARGS=--payments N)"
	@echo "make bench-latency  N sandbox invoices paid at once: notification -> CRM stage p50/p95/p99 (ARGS=--invoices N)"
	@echo "make bench-shards  N invoices' lives on moto: writes per index partition key, OpenByDue shards vs 1/N (ARGS=--invoices N)"
	@echo "make cost       one paid invoice on the local stack: transitions, invocations, units counted, \$$ per million"
	@echo "make import-times   each handler's import time against import boto3 + one client;  make layer-size"
	@echo "make report TENANT=<id> [MONTH=YYYY-MM] [STAGE=<stage>]  the owner's monthly report (table, HTML, JSON)"
	@echo "make redrive-crm STAGE=<stage>  send parked CRM writes back to the outbox (ARGS=--dry-run to list)"
	@echo "make redrive-lifecycle STAGE=<stage>  redrive failed lifecycles from the DLQ (ARGS=--dry-run to list)"
	@echo "make deploy STAGE=<stage>  sam deploy with samconfig.toml's [<stage>] section (no STAGE: --guided)"
	@echo "make tenants-check FILE=<file> [STAGE=<stage>]   everything a stage needs of a tenants file"
	@echo "make tenants-put FILE=<file> STAGE=<stage> | tenants-list STAGE=<stage>   (STAGE=local: the local file)"
	@echo "make keys-new TENANT=<id> [SCOPE=ops] STAGE=<stage> | secrets-template TENANT=<id> STAGE=<stage>"
	@echo "make webhooks-register TENANT=<id> STAGE=<stage>   (all of these: the paybridge command, paybridge -h)"

# Everything installed is pinned with hashes in requirements-dev.txt (the layer's own lock is
# layers/common/requirements.txt); `make lock` regenerates both from pyproject.toml / layers/common/requirements.in.
$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --no-header --quiet \
		-o requirements-dev.txt
	$(BIN)/uv pip compile layers/common/requirements.in --generate-hashes --python-version 3.11 \
		--python-platform x86_64-manylinux2014 --no-header --quiet -o layers/common/requirements.txt

layer-size: build
	$(BIN)/python scripts/layer_size.py

$(SAM): 
	$(OWN_ENV) $(PYTHON) -m venv $(SAM_VENV)
	$(OWN_ENV) $(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(OWN_ENV) $(SAM_VENV)/bin/pip install --quiet "aws-sam-cli>=1.120"

$(CHECKOV):
	$(OWN_ENV) $(PYTHON) -m venv $(CHECKOV_VENV)
	$(OWN_ENV) $(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(OWN_ENV) $(CHECKOV_VENV)/bin/pip install --quiet "checkov>=3.2,<4"

$(ST):
	$(OWN_ENV) $(PYTHON) -m venv $(ST_VENV)
	$(OWN_ENV) $(ST_VENV)/bin/pip install --quiet --upgrade pip
	$(OWN_ENV) $(ST_VENV)/bin/pip install --quiet "schemathesis>=4,<5"

# exec: the server is make's own child, and stops when make ends (Ctrl-C, SIGTERM, or make killed)
dev: $(STAMP)
	exec env POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-WARNING} PAYBRIDGE_STOP_WITH_PARENT=1 $(BIN)/python -m devstack serve

demo: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python -m devstack demo

demo-bank: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python -m devstack demo-bank

demo-settlements: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python -m devstack demo-settlements

reconcile-report: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python scripts/reconcile_report.py \
		--tenant $(or $(TENANT),acquiring-shop) $(if $(MONTH),--month $(MONTH)) $(ARGS)
.PHONY: demo-events
demo-events: $(STAMP)  ## the demo scenario with its domain events counted and a webhook delivery log
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python -m devstack demo-events

bench-reconcile: $(STAMP)
	$(BIN)/python scripts/bench_reconcile.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e

# The pages in a real headless browser (Debian's chromium via Playwright), a PNG per step in .devstack/screenshots/
.PHONY: browser
browser: $(STAMP)
	PAYBRIDGE_SCREENSHOTS=$${PAYBRIDGE_SCREENSHOTS:-.devstack/screenshots} $(BIN)/python -m pytest tests/browser $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/common functions devstack scripts

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy layers/common functions devstack scripts

openapi: $(STAMP)
	$(BIN)/python scripts/openapi.py --write openapi.json

.PHONY: event-schemas
event-schemas: $(STAMP)  ## the versioned JSON Schema of every domain event (schemas/events/)
	$(BIN)/python scripts/event_schemas.py

redrive-crm: $(STAMP)
	$(BIN)/python scripts/redrive_crm_outbox.py --stage $${STAGE:?set STAGE, e.g. make redrive-crm STAGE=prod} $(ARGS)

report: $(STAMP)
	@$(BIN)/python scripts/report.py --tenant $${TENANT:?set TENANT, e.g. make report TENANT=demo} \
		$${MONTH:+--month $$MONTH} $${STAGE:+--stage $$STAGE} $${OUT:+--out $$OUT} $(ARGS)

bench-crm: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python scripts/bench_crm.py $(ARGS)

bench-latency: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python scripts/bench_latency.py $(ARGS)

bench-shards: $(STAMP)
	$(BIN)/python scripts/bench_shards.py $(ARGS)

cost: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python scripts/cost.py $(ARGS)

import-times: $(STAMP)
	$(BIN)/python scripts/import_times.py $(ARGS)

validate: $(SAM) $(STAMP)
	$(OWN_ENV) $(SAM) validate --lint
	$(BIN)/cfn-lint template.yaml

# checkov on the template; the skips and their reasons are in .checkov.yaml
checkov: $(CHECKOV)
	$(OWN_ENV) $(CHECKOV) --config-file .checkov.yaml

# schemathesis against the local stack with openapi.json: every check, a fixed seed (scripts/schemathesis.sh)
schemathesis: $(ST) $(STAMP)
	ST=$(ST) PY=$(BIN)/python bash scripts/schemathesis.sh

build: $(SAM)
	$(OWN_ENV) $(SAM) build

# samconfig.toml: [default] is guided (asks, then can save a section); [<stage>] sections deploy without questions
deploy: build
	$(OWN_ENV) $(SAM) deploy $(if $(STAGE),--config-env $(STAGE),--guided)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis

# -- operating a stage: the `paybridge` command (scripts/cli; README "Operating PayBridge"). STAGE=local (default)
# is the local stack's tenants file.
tenants-check: $(STAMP)
	$(PAYBRIDGE) tenants check $${FILE:?set FILE, e.g. make tenants-check FILE=config/tenants.local.json} --stage $(or $(STAGE),local)

tenants-put: $(STAMP)
	$(PAYBRIDGE) tenants put $${FILE:?set FILE} --stage $(or $(STAGE),local) $(ARGS)

tenants-list: $(STAMP)
	$(PAYBRIDGE) tenants list --stage $(or $(STAGE),local)

keys-new: $(STAMP)
	$(PAYBRIDGE) keys new $${TENANT:?set TENANT} --scope $(or $(SCOPE),integration) --stage $(or $(STAGE),local)

secrets-template: $(STAMP)
	$(PAYBRIDGE) secrets template $${TENANT:?set TENANT} --stage $(or $(STAGE),local) $(ARGS)

webhooks-register: $(STAMP)
	$(PAYBRIDGE) webhooks register $${TENANT:?set TENANT} --stage $(or $(STAGE),local) $(ARGS)

redrive-lifecycle: $(STAMP)
	$(BIN)/python scripts/redrive_lifecycle_dlq.py --stage $${STAGE:?set STAGE, e.g. make redrive-lifecycle STAGE=prod} $(ARGS)
