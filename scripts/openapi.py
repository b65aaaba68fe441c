"""Generate the OpenAPI document from the functions' own routes (Powertools OpenAPIMerge over functions/*/app.py).

python scripts/openapi.py --write openapi.json   # regenerate
python scripts/openapi.py --check openapi.json   # exit 1 when the file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


#: Bodies the routes read raw (Powertools sees no body model for them): documented here.
RAW_BODIES = {
    ("/bank/{tenant}/statements", "post"): {
        "required": True,
        "description": "The 1CClientBankExchange file itself (Windows-1251, DOS cp866 or UTF-8), at most 4 MiB "
        "(4,194,304 bytes: API Gateway base64-encodes it into a Lambda request of at most 6 MB)",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    },
}


def generate() -> str:
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server, ServerVariable

    merge = OpenAPIMerge(
        title="PayBridge API",
        version="1.0.0",
        description="Invoices for CRM deals, paid through payment providers; webhooks of PSPs and CRMs. "
        "Errors are JSON problem bodies (type, title, status, detail).",
        servers=[
            Server(
                url="https://{api_id}.execute-api.{region}.amazonaws.com",
                variables={
                    "api_id": ServerVariable(default="api-id", description="the stack's HttpApi id (output ApiUrl)"),
                    "region": ServerVariable(default="eu-central-1", description="the stack's region"),
                },
            )
        ],
        security_schemes={"ApiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
        on_conflict="error",
    )
    merge.discover(path=ROOT / "functions", pattern="app.py", recursive=True, project_root=ROOT)
    schema = json.loads(merge.get_openapi_json_schema())
    for (path, method), body in RAW_BODIES.items():
        schema["paths"][path][method]["requestBody"] = body
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path)
    group.add_argument("--check", type=Path)
    args = parser.parse_args()
    document = generate()
    if args.write:
        args.write.write_text(document, encoding="utf-8")
        print(f"wrote {args.write} ({len(document)} bytes)")
        return 0
    current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
    if current != document:
        print(f"{args.check} is stale: run `make openapi`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
    sys.exit(main())
