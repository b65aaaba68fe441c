#!/usr/bin/env bash
# Schemathesis against the local stack with openapi.json: every check, a fixed seed, the demo tenant's key.
# Used by `make schemathesis` (and so by .ci/run). ST = the schemathesis binary, PY = the project's python.
set -euo pipefail
cd "$(dirname "$0")/.."
ST=${ST:-.venv-schemathesis/bin/schemathesis}
PY=${PY:-.venv/bin/python}
PORT=${SCHEMATHESIS_PORT:-3913}
SEED=${SCHEMATHESIS_SEED:-13}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-40}
LOG=$(mktemp)

POWERTOOLS_LOG_LEVEL=CRITICAL PAYBRIDGE_PORT=$PORT "$PY" -m devstack serve >"$LOG" 2>&1 &
STACK=$!
trap 'kill $STACK 2>/dev/null || true; wait $STACK 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
  if "$PY" -c "import httpx,sys; httpx.get('http://127.0.0.1:$PORT/sandbox/crm/demo/', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

# schemathesis.toml holds the checks, the fixed path parameters (the demo tenant) and the excluded check's reason.
# Two runs: the integration routes with the demo tenant's integration key, a person's levers with its ops key.
OPS='^handle_(record_payment|reissue|resync|resolve_bank_line|list_invoices|get_drift|check_drift|erase_customer)_'
"$ST" --config-file schemathesis.toml run openapi.json \
  --url "http://127.0.0.1:$PORT" \
  --seed "$SEED" \
  --max-examples "$MAX_EXAMPLES" \
  --exclude-operation-id-regex "$OPS" \
  --header "X-Api-Key: demo-api-key"
"$ST" --config-file schemathesis.toml run openapi.json \
  --url "http://127.0.0.1:$PORT" \
  --seed "$SEED" \
  --max-examples "$MAX_EXAMPLES" \
  --include-operation-id-regex "$OPS" \
  --header "X-Api-Key: demo-ops-key"
