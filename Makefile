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

.PHONY: help dev demo test unit integration e2e lint format typecheck openapi validate build deploy import-times clean lock layer-size \
	redrive-crm bench-crm demo-bank bench-reconcile bench-latency checkov schemathesis

help:
	@echo "make demo       run the scripted payment scenario on the local stack (starts it if needed)"
	@echo "make demo-bank  the bank-transfer scenario: webhook + statement read, 1C upload counted once"
	@echo "make bench-reconcile  match 100,000 statement lines against 100,000 invoices (ARGS=--lines N --invoices M)"
	@echo "make dev        serve the local stack on 127.0.0.1:\$${PAYBRIDGE_PORT:-3000}"
	@echo "make test       run all tests (unit, integration on moto, end-to-end on the local stack)"
	@echo "make lint       ruff + mypy;  make validate: sam validate --lint + cfn-lint;  make build: sam build"
	@echo "make openapi    regenerate openapi.json from the routes;  make deploy: sam deploy --guided"
	@echo "make schemathesis  fuzz the local stack with openapi.json (all checks, fixed seed);  make checkov"
	@echo "make bench-crm  N payments through the CRM outbox to the fake Bitrix24 at its real limit (ARGS=--payments N)"
	@echo "make bench-latency  N sandbox invoices paid at once: notification -> CRM stage p50/p95/p99 (ARGS=--invoices N)"
	@echo "make import-times   each handler's import time against import boto3 + one client;  make layer-size"
	@echo "make redrive-crm STAGE=<stage>  send parked CRM writes back to the outbox (ARGS=--dry-run to list)"

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
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet "aws-sam-cli>=1.120"

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet "checkov>=3.2,<4"

$(ST):
	$(PYTHON) -m venv $(ST_VENV)
	$(ST_VENV)/bin/pip install --quiet --upgrade pip
	$(ST_VENV)/bin/pip install --quiet "schemathesis>=4,<5"

dev: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-WARNING} $(BIN)/python -m devstack serve

demo: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python -m devstack demo

demo-bank: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python -m devstack demo-bank

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

bench-crm: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python scripts/bench_crm.py $(ARGS)

bench-latency: $(STAMP)
	POWERTOOLS_LOG_LEVEL=$${POWERTOOLS_LOG_LEVEL:-ERROR} $(BIN)/python scripts/bench_latency.py $(ARGS)

import-times: $(STAMP)
	$(BIN)/python scripts/import_times.py $(ARGS)

validate: $(SAM) $(STAMP)
	$(SAM) validate --lint
	$(BIN)/cfn-lint template.yaml

# checkov on the template; the skips and their reasons are in .checkov.yaml
checkov: $(CHECKOV)
	$(CHECKOV) --config-file .checkov.yaml

# schemathesis against the local stack with openapi.json: every check, a fixed seed (scripts/schemathesis.sh)
schemathesis: $(ST) $(STAMP)
	ST=$(ST) PY=$(BIN)/python bash scripts/schemathesis.sh

build: $(SAM)
	$(SAM) build

deploy: build
	$(SAM) deploy --guided

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
