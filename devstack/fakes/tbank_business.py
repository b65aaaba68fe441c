"""A local fake of the T-Bank business open API's statement and its `oper-feed-operation` webhook.

- `GET /api/v1/statement` with a Bearer token per account: `accountNumber`, `from` / `to` (ISO 8601, filtering on
  `operationDate`; `to` optional), `limit` (1…5000, default 50) and an opaque `cursor` (`nextCursor` of the previous
  page, absent on the last one; a position in the feed, so it stays valid while operations are added); `balances`
  only on a first page; 20 requests per second per token (429 beyond).
- The webhook (the operation plus `eventType` and `accountNumber`, flat JSON) goes to the tenant's URL with
  `?token=<webhook_token>`, repeated until it answers 200.

Errors are T-API's `{"errorId", "errorMessage", "errorCode"}`: 401 for an unknown token, 403 for a token of another
account, 400 for bad parameters.

Control:
- `POST /_control/operations {"account", "amount" (kopecks), "purpose"?, "payer_inn"?, "payer_account"?,
  "payer_name"?, "document_number"?, "type"?: "Credit"|"Debit", "status"?: "Transaction"|"Authorization",
  "operation_date"? (ISO 8601; now), "notify"?: true}` → 201 with the operation as the statement shows it, plus
  `"notified"`;
- `POST /_control/operations/<operationId>/confirm {"notify"?: true}` → an Authorization becomes a Transaction (409
  if it already is one), and the webhook is sent again;
- `GET /_control/requests` → `{"count": <statement requests received>}`;
- faults (`POST /_control/faults`): `statement_unavailable` (a 503), `unauthorized` (a 401).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devstack.fakes.base import FakeApp
from devstack.web import bearer, json_response
from paybridge.tenants import TenantConfig

#: Statement requests per second per token.
RATE_LIMIT = 20
DEFAULT_LIMIT = 50
MAX_LIMIT = 5000
RUB = "643"

#: The routes, copied into each instance's map (a werkzeug Rule binds to one map only).
ROUTES = (
    Rule("/api/v1/statement", methods=["GET"], endpoint="statement"),
    Rule("/_control/operations", methods=["POST"], endpoint="control_add"),
    Rule("/_control/operations/<operation_id>/confirm", methods=["POST"], endpoint="control_confirm"),
    Rule("/_control/requests", methods=["GET"], endpoint="control_requests"),
)


@dataclass
class Operation:
    account: str
    at: datetime  # operationDate, aware
    wire: dict[str, Any]  # as the statement shows it


@dataclass
class Token:
    accounts: set[str] = field(default_factory=set)
    recent: deque[float] = field(default_factory=deque)  # times of the requests in the last second


class FakeTBankBusiness(FakeApp):
    def __init__(self, base_url: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(base_url)
        for rule in ROUTES:
            self.url_map.add(rule.empty())
        self.clock = clock
        self.tokens: dict[str, Token] = {}
        self.webhooks: dict[str, str] = {}  # account → our webhook URL (with its token)
        self.operations: list[Operation] = []
        self.statement_requests = 0

    def add_merchant(self, tenant: TenantConfig, secrets: dict[str, str], notification_url: str) -> None:
        if tenant.bank is None:
            raise ValueError(f"tenant {tenant.tenant_id} has no bank settings")
        url = notification_url
        if secrets.get("webhook_token"):
            separator = "&" if "?" in url else "?"
            url = f"{url}{separator}token={quote(secrets['webhook_token'], safe='')}"
        with self.lock:
            token = self.tokens.setdefault(secrets["token"], Token())
            for account in tenant.bank.accounts:
                token.accounts.add(account)
                self.webhooks[account] = url

    # -- API -------------------------------------------------------------------------------------------------------

    def on_statement(self, request: Request) -> Response:
        now = self.clock()
        with self.lock:
            self.statement_requests += 1
            if self.fault("statement_unavailable"):
                return _error(503, "SERVICE_UNAVAILABLE", "Сервис временно недоступен (fault)")
            token = self.tokens.get(bearer(request))
            if token is None or self.fault("unauthorized"):
                return _error(401, "UNAUTHORIZED", "Токен недействителен")
            while token.recent and token.recent[0] <= now - 1.0:
                token.recent.popleft()
            if len(token.recent) >= RATE_LIMIT:
                return _error(429, "TOO_MANY_REQUESTS", f"Не больше {RATE_LIMIT} запросов в секунду")
            token.recent.append(now)
            account = request.args.get("accountNumber", "")
            if not (len(account) == 20 and account.isdigit()):
                return _error(400, "VALIDATION_ERROR", "accountNumber: 20 цифр")
            if account not in token.accounts:
                return _error(403, "FORBIDDEN", "Нет доступа к счёту")
            try:
                since = _moment(request.args["from"])
                until = _moment(request.args["to"]) if "to" in request.args else None
                limit = int(request.args.get("limit", DEFAULT_LIMIT))
                start = _read_cursor(request.args["cursor"]) if "cursor" in request.args else 0
            except (KeyError, ValueError) as exc:
                return _error(400, "VALIDATION_ERROR", f"неверные параметры: {exc}")
            if not 1 <= limit <= MAX_LIMIT:
                return _error(400, "VALIDATION_ERROR", f"limit: от 1 до {MAX_LIMIT}")
            # The cursor is a position in the account's feed (after the last operation returned), so it stays
            # valid while operations are added.
            found = [
                (index, op.wire)
                for index, op in enumerate(self.operations)
                if index >= start and op.account == account and since <= op.at and (until is None or op.at <= until)
            ]
            body: dict[str, Any] = {"operations": [wire for _, wire in found[:limit]]}
            if "cursor" not in request.args:
                body["balances"] = _balances([wire for _, wire in found])
            if len(found) > limit:
                body["nextCursor"] = _cursor(found[limit - 1][0] + 1)
            return json_response(body)

    # -- control ---------------------------------------------------------------------------------------------------

    def on_control_add(self, request: Request) -> Response:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return json_response({"error": "a JSON object is expected"}, 400)
        account = str(data.get("account", ""))
        amount = data.get("amount")
        kind = data.get("type", "Credit")
        status = data.get("status", "Transaction")
        if not (len(account) == 20 and account.isdigit()):
            return json_response({"error": "account: 20 digits"}, 400)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            return json_response({"error": "amount: a positive whole number of kopecks"}, 400)
        if kind not in ("Credit", "Debit") or status not in ("Transaction", "Authorization"):
            return json_response({"error": "type: Credit|Debit, status: Transaction|Authorization"}, 400)
        try:
            at = _moment(data["operation_date"]) if data.get("operation_date") else datetime.now(UTC)
        except ValueError as exc:
            return json_response({"error": f"operation_date: {exc}"}, 400)
        stamp = _stamp(at)
        party = {
            "name": str(data.get("payer_name", "")),
            "inn": str(data.get("payer_inn", "")),
            "kpp": "",
            "account": str(data.get("payer_account", "")),
            "bankName": 'АО "ТБанк"',
            "bankBic": "044525974",
            "corrAccount": "30101810145250000974",
        }
        rubles = _rubles(amount)
        wire: dict[str, Any] = {
            "operationId": str(uuid.uuid4()),
            "operationDate": stamp,
            "typeOfOperation": kind,
            "operationStatus": status,
            "category": "incomeFromLegalEntity" if kind == "Credit" else "contragentPeople",
            "description": "Пополнение" if kind == "Credit" else "Перевод",
            "operationAmount": rubles,
            "operationCurrencyDigitalCode": RUB,
            "accountAmount": rubles,
            "accountCurrencyDigitalCode": RUB,
            "rubleAmount": rubles,
            "payPurpose": str(data.get("purpose", "")),
            "documentNumber": str(data.get("document_number", "")),
            "counterParty": party,
            "authorizationDate": stamp,
        }
        if status == "Transaction":
            wire.update(chargeDate=stamp, drawDate=stamp)
        with self.lock:
            self.operations.append(Operation(account=account, at=at, wire=wire))
        notified = self._notify(account, wire) if data.get("notify", True) else False
        return json_response({**wire, "notified": notified}, 201)

    def on_control_confirm(self, request: Request, operation_id: str) -> Response:
        data = request.get_json(silent=True) or {}
        with self.lock:
            op = next((o for o in self.operations if o.wire["operationId"] == operation_id), None)
            if op is None:
                return json_response({"error": f"no operation {operation_id}"}, 404)
            if op.wire["operationStatus"] == "Transaction":
                return json_response({"error": f"operation {operation_id} is already a Transaction"}, 409)
            stamp = _stamp(datetime.now(UTC))
            op.wire.update(operationStatus="Transaction", chargeDate=stamp, drawDate=stamp)
        notified = self._notify(op.account, op.wire) if data.get("notify", True) else False
        return json_response({**op.wire, "notified": notified})

    def on_control_requests(self, request: Request) -> Response:
        return json_response({"count": self.statement_requests})

    def _notify(self, account: str, wire: dict[str, Any]) -> bool:
        url = self.webhooks.get(account)
        if url is None:
            return False
        body = json.dumps(
            {"eventType": "oper-feed-operation", "accountNumber": account, **wire}, ensure_ascii=False
        ).encode()
        self.deliver(url, body, {"Content-Type": "application/json"}, accepted=lambda r: r.status_code == 200)
        return True


def _error(status: int, code: str, message: str) -> Response:
    return json_response({"errorId": str(uuid.uuid4()), "errorMessage": message, "errorCode": code}, status)


def _moment(text: str) -> datetime:
    """ISO 8601; a time without an offset is UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _rubles(kopecks: int) -> int | float:
    """150050 → 1500.5, 100000 → 1000: a JSON number, as T-API sends `accountAmount`."""
    value = Decimal(kopecks) / 100
    return int(value) if value == value.to_integral_value() else float(value)


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"from": position}).encode()).decode()


def _read_cursor(cursor: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))["from"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValueError(f"cursor {cursor!r} is not one of ours") from None
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"cursor {cursor!r} is not one of ours")
    return offset


def _balances(operations: list[dict[str, Any]]) -> dict[str, float]:
    confirmed = [op for op in operations if op["operationStatus"] == "Transaction"]
    income = sum(
        (Decimal(str(op["accountAmount"])) for op in confirmed if op["typeOfOperation"] == "Credit"), Decimal(0)
    )
    outcome = sum(
        (Decimal(str(op["accountAmount"])) for op in confirmed if op["typeOfOperation"] == "Debit"), Decimal(0)
    )
    return {"incoming": 0.0, "income": float(income), "outcome": float(outcome), "outgoing": float(income - outcome)}


#: What the local stack serves for tenants whose settings name `tbank_business` (see devstack/fakes/__init__.py).
FAKE = FakeTBankBusiness
