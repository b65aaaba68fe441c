"""Small helpers shared by the sandbox servers, and the look of every page a person opens on the local stack: one
self-contained stylesheet (no CDN: the stack runs offline), amounts that never wrap, long links that do."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from werkzeug.wrappers import Request, Response

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}
button{padding:.45em .9em;margin:.15em;cursor:pointer;border:1px solid #888;border-radius:6px;background:#f4f4f4}
button.primary{background:#1565c0;color:#fff;border-color:#1565c0}button.danger{color:#b71c1c;border-color:#b71c1c}
button:disabled{opacity:.5;cursor:default}
.stage{font-weight:bold}.muted{color:#666;font-size:.9em}
.amount{white-space:nowrap;font-variant-numeric:tabular-nums}td.amount,th.amount{text-align:right}
.link,.wrap{overflow-wrap:anywhere;word-break:normal}
.box{border:1px solid #ccc;border-radius:8px;padding:1.5em;margin:1em 0}
.notice{border-left:4px solid #1565c0;background:#e3f2fd;padding:.6em 1em;margin:1em 0}
.notice.ok{border-color:#2e7d32;background:#e8f5e9}.notice.bad{border-color:#b71c1c;background:#ffebee}
.warn{color:#8a4b00}.nowrap{white-space:nowrap}
.badge{white-space:nowrap;display:inline-block;padding:.05em .5em;border-radius:1em;background:#eee;font-size:.85em}
.badge.stuck{background:#ffcdd2;color:#b71c1c}.badge.paid{background:#c8e6c9;color:#1b5e20}
label{display:inline-block;margin:.2em .6em .2em 0}input,select{padding:.3em;margin-left:.3em}
ul.plain{list-style:none;padding-left:0;margin:0}ul.plain li{margin:.15em 0}"""


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False, default=str), status=status, mimetype="application/json")


def error(status: int, detail: str) -> Response:
    return json_response({"error": detail}, status)


def bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def page(title: str, body: str, head: str = "", lang: str = "ru") -> Response:
    document = f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>
<style>{STYLE}</style>{head}</head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    return Response(document, mimetype="text/html")


def money(amount: int, currency: str) -> str:
    major, minor = divmod(amount, 100)
    return f"{major:,}.{minor:02d} {currency}".replace(",", " ")


def amount_html(amount: int, currency: str) -> str:
    """An amount as a person reads it, in one piece: it never wraps inside a table cell."""
    return f'<span class="amount">{html.escape(money(amount, currency))}</span>'


def checkout_page(
    provider: str,
    *,
    payment_id: str,
    description: str,
    amount: int,
    paid: int,
    currency: str,
    status: str,
    payable: bool,
    part: bool = True,
    notice: str = "",
    notice_kind: str = "ok",
    history: Sequence[str] = (),
    note: str = "",
) -> Response:
    """A provider's payment page as the payer sees it: what is asked, where it stands, and — while it can be paid —
    Pay / Pay part / Decline buttons that POST `action` back to the same URL (the fake answers 303 to this page)."""
    remaining = max(amount - paid, 0)
    buttons = ""
    if payable:
        half = remaining // 2
        part_button = (
            f'<button name="action" value="part">Pay part ({amount_html(half, currency)})</button>'
            if part and half > 0
            else ""
        )
        buttons = f"""<form method="post"><button class="primary" name="action" value="pay">Pay
{amount_html(remaining, currency)}</button>{part_button}
<button class="danger" name="action" value="decline">Decline</button></form>"""
    else:
        buttons = '<p class="muted">Nothing to pay on this page any more.</p>'
    shown = f'<p class="notice {notice_kind}" role="status">{html.escape(notice)}</p>' if notice else ""
    ops = "".join(f"<li>{html.escape(line)}</li>" for line in history)
    body = f"""{shown}<div class="box"><p class="wrap">{html.escape(description)}</p>
<p>Amount: <b>{amount_html(amount, currency)}</b>, paid: {amount_html(paid, currency)}</p>
<p>Status: <span class="stage" id="status">{html.escape(status)}</span>
<span class="muted">payment <span class="wrap">{html.escape(payment_id)}</span></span></p>
{buttons}{f'<p class="muted">{html.escape(note)}</p>' if note and payable else ""}
{f'<h2>History</h2><ul id="history">{ops}</ul>' if ops else ""}</div>"""
    return page(f"{provider} — payment", body, lang="en")
