"""T-Bank business open API (T-API): the company account's statement, and the `oper-feed-operation` webhook.

Wire format (JSON, `Authorization: Bearer <token>` issued in T-Bank Business, about 20 requests/s per token):
- `GET {base_url}api/v1/statement?accountNumber=<20 digits>&from=<UTC>&to=<UTC>&limit=<page size>&cursor=<cursor>`,
  `from`/`to` in ISO 8601 UTC with a `Z` (`2026-11-23T07:00:00Z`; `from` rounded down, `to` up, to the second),
  `cursor` only after the first page. Answer: `{"balances": {...}?, "operations": [...], "nextCursor": "…"?}`;
  no `nextCursor` (or null / "") is the last page.
- An operation: `operationId`, `operationDate` (ISO date-time), `typeOfOperation` (`Credit` | `Debit`),
  `operationStatus` (`Transaction` = confirmed, `Authorization` = not yet), `accountAmount` (a number in the account's
  currency, rubles: `1500.5`), `accountCurrencyDigitalCode` / `operationCurrencyDigitalCode` (`"643"` = RUB),
  `payPurpose`, `documentNumber`, `counterParty{name, inn, kpp, account, bankName, bankBic, corrAccount}` (for a
  credit: the payer), `chargeDate`, `drawDate`, `authorizationDate`, and more we do not read.
- Errors: 401/403 → the token is wrong, revoked or lacks the statement scope (ProviderRejected); 429, 5xx, timeouts →
  ProviderUnavailable; other 4xx → ProviderRejected.

Only confirmed (`Transaction`) credits in rubles become StatementLines; debits and authorizations are left out, and
a credit in another currency is logged and left out. Amounts become kopecks through `Decimal(str(amount))`, exactly
(`100.3` → 10030); a credit whose amount has more than two decimals or is not a number makes the page unreadable
(ProviderUnavailable) rather than silently lost. The value date is `operationDate` read in Moscow time (the bank's
day, the date a 1C statement file shows for the same transfer) — which matters for the line's fingerprint.

The `oper-feed-operation` webhook (registered with `POST /api/v1/webhook`; our URL carries `?token=<webhook_token>`,
checked first by `verify_webhook`) is only a hint that an account has a new operation: `parse_webhook` takes the
account and the operation id out of it, and the caller reads the statement again — nothing in the body is trusted or
recorded. The
body is the statement's operation plus its account; as its exact framing is not pinned down, both are accepted (the
operation's own fields are ignored):
- flat: `{"eventType"?: "oper-feed-operation", "accountNumber": "<20 digits>", "operationId": "…"?, …operation}`;
- enveloped: `{"eventType"?: "oper-feed-operation", "accountNumber"?: "…", "data": {"accountNumber"?: "…",
  "operationId"?: "…", …operation}}` (the account may be inside `data` or beside it).
An `operationId` made between 22:00 and 03:00 may change later, so it is never the identity of a line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import hmac
import logging
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import Field

from paybridge.adapters.bank.base import StatementPage, WebhookHint
from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.http import make_client, send
from paybridge.adapters.registry import BANK_SOURCES, AdapterContext
from paybridge.adapters.settings import (
    BankSourceSettingsBase,
    HttpUrl,
    SecretRef,
)
from paybridge.adapters.wire import loads_json
from paybridge.domain.bank import StatementLine


class TBankBusinessSettings(BankSourceSettingsBase):
    """T-Bank business API: the company's statement (`GET /api/v1/statement`, Bearer token), polled; and its
    `oper-feed-operation` webhook (registered with `POST /api/v1/webhook`) as the fast path."""

    kind: Literal["tbank_business"]
    base_url: HttpUrl = "https://business.tbank.ru/openapi/"
    token: SecretRef = Field(description="the T-Bank Business API token (Bearer)")
    #: The webhook URL we register carries `?token=<webhook_token>` (the body is only a hint: we read the statement).
    webhook_token: SecretRef | None = Field(
        default=None, description="a random token of ours that the bank's webhook URL carries (?token=)"
    )
    page_size: int = Field(default=100, ge=1, le=5000)

    def webhook_steps(self, url: str, secret_names: dict[str, str]) -> list[str]:
        if self.webhook_token is None:
            return ["no webhook_token: the statement is only polled (set bank.source.webhook_token to get pushes)"]
        secret = secret_names.get("bank.source.webhook_token", "bank.source.webhook_token")
        return [
            f"register with T-Bank Business (POST /api/v1/webhook, event type oper-feed-operation) the URL "
            f"{url}?token=<the value of the secret {secret}>",
            "polling stays on as the safety net (bank.poll_every_minutes)",
        ]


logger = logging.getLogger(__name__)

WEBHOOK_EVENT = "oper-feed-operation"
RUB_CODE = "643"
#: The bank's day (Moscow has been UTC+3 all year since 2014).
MOSCOW = timezone(timedelta(hours=3), "MSK")
_ACCOUNT = re.compile(r"^\d{20}$")


def utc_param(moment: datetime, *, round_up: bool = False) -> str:
    """An aware datetime as the API's `from`/`to`: UTC, whole seconds, `Z` (rounded so the window only widens)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no timezone; statement windows are given as aware datetimes")
    moment = moment.astimezone(UTC)
    if round_up and moment.microsecond:
        moment += timedelta(seconds=1)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def kopecks(amount: Any) -> int:
    """`1500.5` → 150050, `100.3` → 10030, `"1500.50"` → 150050; ValueError for anything not a whole kopeck amount."""
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        raise ValueError(f"not an amount: {amount!r}")
    try:
        value = Decimal(str(amount).strip()) * 100
    except InvalidOperation:
        raise ValueError(f"not an amount: {amount!r}") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"not a whole number of kopecks: {amount!r}")
    return int(value)


def value_date(operation_date: str) -> date:
    """The bank's (Moscow) date of `operationDate`; a date-time without an offset is taken as the bank's own."""
    moment = datetime.fromisoformat(operation_date)
    if moment.tzinfo is not None:
        moment = moment.astimezone(MOSCOW)
    return moment.date()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _is_rub(operation: dict[str, Any]) -> bool:
    codes = [
        str(code).strip()
        for code in (operation.get("accountCurrencyDigitalCode"), operation.get("operationCurrencyDigitalCode"))
        if code is not None and str(code).strip()
    ]
    return bool(codes) and all(code == RUB_CODE for code in codes)


class TBankBusiness:
    name = "tbank_business"

    def __init__(
        self, settings: TBankBusinessSettings, token: str, transport: Any = None, webhook_token: str | None = None
    ):
        self._settings = settings
        self._webhook_token = webhook_token
        base = settings.base_url if settings.base_url.endswith("/") else settings.base_url + "/"
        self._http = make_client(base, {"Authorization": f"Bearer {token}"}, transport)
        # 401/403 get their own message (the token); `send` maps everything else.
        self._http.event_hooks = {"request": [], "response": [_refuse_bad_token]}

    def verify_webhook(self, headers: dict[str, str], query: dict[str, str], body: bytes) -> WebhookHint:
        """Our token in the registered URL (`?token=…`) first, then the body: only which account moved."""
        expected = self._webhook_token or ""
        token = query.get("token") or ""
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise InvalidSignature("missing or wrong token in the webhook URL")
        account, operation_id = parse_webhook(body)  # MalformedNotification: 400
        return WebhookHint(account=account, reference=operation_id)

    def fetch(self, account: str, since: datetime, until: datetime, cursor: str | None) -> StatementPage:
        if not _ACCOUNT.match(account):
            raise ValueError(f"account {account!r} is not 20 digits")
        params: dict[str, str | int] = {
            "accountNumber": account,
            "from": utc_param(since),
            "to": utc_param(until, round_up=True),
            "limit": self._settings.page_size,
        }
        if since >= until:
            raise ValueError(f"empty statement window {since.isoformat()} … {until.isoformat()}")
        if cursor:
            params["cursor"] = cursor
        url = "api/v1/statement"
        response = send(
            self._http, "GET", url, transient=ProviderUnavailable, permanent=ProviderRejected, params=params
        )
        try:
            data = response.json()
        except ValueError:
            raise ProviderUnavailable(f"GET {url}: unreadable answer {response.text[:200]}") from None
        operations = data.get("operations") if isinstance(data, dict) else None
        if not isinstance(operations, list):
            raise ProviderUnavailable(f"GET {url}: answer without an operations list {response.text[:200]}")
        lines = tuple(line for op in operations if (line := self._line(account, op)) is not None)
        next_cursor = data.get("nextCursor")
        return StatementPage(lines=lines, next_cursor=str(next_cursor) if next_cursor else None, seen=len(operations))

    def _line(self, account: str, operation: Any) -> StatementLine | None:
        if not isinstance(operation, dict):
            raise ProviderUnavailable(f"statement of {account}: an operation is not an object: {operation!r:.200}")
        operation_id = _text(operation.get("operationId"))
        if operation.get("typeOfOperation") != "Credit":
            return None
        if operation.get("operationStatus") != "Transaction":
            logger.debug("operation %s on %s is not confirmed yet; left for a later read", operation_id, account)
            return None
        if not _is_rub(operation):
            logger.warning(
                "credit %s on %s is not in rubles (account currency %s, operation currency %s); left out",
                operation_id,
                account,
                operation.get("accountCurrencyDigitalCode"),
                operation.get("operationCurrencyDigitalCode"),
            )
            return None
        try:
            amount = kopecks(operation.get("accountAmount"))
            day = value_date(str(operation.get("operationDate") or ""))
        except ValueError as exc:
            raise ProviderUnavailable(f"statement of {account}: credit {operation_id} is unreadable: {exc}") from None
        if amount <= 0:
            logger.warning("credit %s on %s has amount %s; left out", operation_id, account, amount)
            return None
        party = operation.get("counterParty")
        payer: dict[str, Any] = party if isinstance(party, dict) else {}
        return StatementLine(
            source="tbank_api",
            account=account,
            value_date=day,
            amount=amount,
            currency="RUB",
            purpose=(_text(operation.get("payPurpose")) or "")[:1000],
            payer_name=(_text(payer.get("name")) or "")[:500],
            payer_inn=_text(payer.get("inn")),
            payer_account=_text(payer.get("account")),
            document_number=_text(operation.get("documentNumber")),
            operation_id=operation_id,
        )


def _refuse_bad_token(response: httpx.Response) -> None:
    if response.status_code in (401, 403):
        raise ProviderRejected(
            f"T-Bank business refused the token (HTTP {response.status_code}): it is wrong, revoked, or lacks the "
            "statement scope for this account"
        )


def parse_webhook(body: bytes) -> tuple[str, str | None]:
    """(accountNumber, operationId or None) of an `oper-feed-operation` webhook, flat or in a `data` envelope.

    Only a hint: the caller reads the statement of that account again; nothing else in the body is used.
    """
    try:
        payload = loads_json(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedNotification("the T-Bank business webhook is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedNotification("the T-Bank business webhook is not a JSON object")
    event = payload.get("eventType")
    if event is not None and event != WEBHOOK_EVENT:
        raise MalformedNotification(f"T-Bank business webhook of type {event!r}, expected {WEBHOOK_EVENT!r}")
    inner = payload.get("data")
    if inner is not None and not isinstance(inner, dict):
        raise MalformedNotification("the T-Bank business webhook's data is not an object")
    operation = inner if inner is not None else payload
    account = operation.get("accountNumber", payload.get("accountNumber"))
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise MalformedNotification("the T-Bank business webhook has no accountNumber of 20 digits")
    operation_id = operation.get("operationId")
    if operation_id is not None and (isinstance(operation_id, bool) or not isinstance(operation_id, str | int)):
        raise MalformedNotification("the T-Bank business webhook's operationId is not a string")
    return account, _text(operation_id)


def _build(settings: TBankBusinessSettings, context: AdapterContext) -> TBankBusiness:
    webhook_token = context.secret(settings.webhook_token) if settings.webhook_token else None
    return TBankBusiness(settings, context.secret(settings.token), webhook_token=webhook_token)


#: `tbank`: the webhook URL registered at T-Bank before sources were pluggable (/bank/{tenant}/tbank).
BANK_SOURCES.register("tbank_business", TBankBusinessSettings, _build, aliases=("tbank",))
