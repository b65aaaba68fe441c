"""Small helpers shared by the sandbox servers."""

from __future__ import annotations

import html
import json
from typing import Any

from werkzeug.wrappers import Request, Response


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False, default=str), status=status, mimetype="application/json")


def error(status: int, detail: str) -> Response:
    return json_response({"error": detail}, status)


def bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def page(title: str, body: str) -> Response:
    document = f"""<!doctype html><html lang="ru"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}}
button{{padding:.5em 1em;margin:.2em;cursor:pointer}}.stage{{font-weight:bold}}.muted{{color:#777;font-size:.9em}}
.box{{border:1px solid #ccc;border-radius:8px;padding:1.5em;margin:1em 0}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    return Response(document, mimetype="text/html")


def money(amount: int, currency: str) -> str:
    major, minor = divmod(amount, 100)
    return f"{major:,}.{minor:02d} {currency}".replace(",", " ")
