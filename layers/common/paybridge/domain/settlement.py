"""Acquiring settlements: the provider's payout on the company's statement, and which recorded payments it pays out.

An acquirer pays out the payments it took (card, SBP) less its fee and less the refunds it made, as one bank transfer
a working day or so later ("Перечисление средств по договору эквайринга … за 30.11 … комиссия …"). Such a line is not
a customer's payment: it is recognised by who sent it (the provider's INN or account) and what it says (purpose
patterns), per tenant with defaults per provider (`PROVIDER_DEFAULTS`), and matched to the provider operations we
recorded (`ProviderOperation`: one per money fact that reached an invoice through that provider).

What a payout covers, in this order (pure, `match_settlement`):
1. the days its purpose names ("за 30.11.2026", "с 28.11 по 30.11"), else the settlement window: the operations
   recorded on or before its value date, not older than `lookback_days`, not yet settled;
2. expected = payments - refunds - fees, each payment's fee exact where the provider's API gave its net amount (YooKassa
   `income_amount`), else estimated from the tenant's `fee_percent` (+ `fee_fixed`); a refund is deducted in full;
3. whole days are tried, newest day dropped first (a payout covers whole days: the last day may come next time),
   then the operations up to a moment (a provider's day may close before midnight);
4. within `tolerance` → matched, the actual fee total is what the bank shows (payments - refunds - payout);
5. otherwise explained if one payment left out (or one refund not yet deducted) makes it match — flagged, naming it,
   the rest settled; else flagged with the difference and its likely reason, nothing settled. A flagged payout goes
   to a person.

Money is integers of minor units; fee rates are decimal strings, rounded half up to a kopeck per payment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field, field_validator, model_validator

from paybridge.domain.model import Model
from paybridge.domain.money import format_money

if TYPE_CHECKING:
    from paybridge.domain.bank import StatementLine

#: Acquirers close their day at midnight Moscow time (YooKassa's registries: 00:00:00–23:59:59 MSK).
PROVIDER_DAY = ZoneInfo("Europe/Moscow")


#: Payer INNs and purpose patterns written from what each provider documents about its payouts (see README,
#: "Acquiring settlements"). The INN alone is not enough: T-Bank also pays interest and cashback, YooMoney also
#: forwards wallet payments of private persons — so a settlement needs the purpose to say it is one.
@dataclass(frozen=True)
class ProviderDefaults:
    payer_inns: tuple[str, ...]
    purpose_patterns: tuple[str, ...]
    usual_delay_days: int
    #: Whether the provider's API gives each payment's amount after its fee (asked before estimating).
    reports_net: bool


PROVIDER_DEFAULTS: dict[str, ProviderDefaults] = {
    # АО «ТБанк», ИНН 7710140679: the acquirer itself; internet-acquiring payments arrive "one payment" a day
    # (T-API: "Операции по интернет-эквайрингу приходят одним платежом").
    "tbank": ProviderDefaults(
        payer_inns=("7710140679",),
        purpose_patterns=(
            r"эквайринг",
            r"возмещение\s+(?:средств\s+)?по\s+операциям",
            r"перевод\s+(?:средств\s+)?по\s+операциям\s+с\s+(?:использованием\s+)?(?:карт|сбп)",
        ),
        usual_delay_days=2,
        reports_net=False,
    ),
    # ООО НКО «ЮМани» (ЮKassa), ИНН 7750005725: the next working day, less its fee and the refunds owed.
    "yookassa": ProviderDefaults(
        payer_inns=("7750005725",),
        purpose_patterns=(
            r"ю\s?kassa|юкасса|yookassa",
            r"эквайринг",
            r"реестр[ау]?\s+(?:№\s*)?\d+",
            r"перевод\s+по\s+договору",
        ),
        usual_delay_days=1,
        reports_net=True,
    ),
    # The local sandbox PSP's payouts (devstack), estimated from the tenant's fee like any provider without a net.
    "sandbox": ProviderDefaults(
        payer_inns=("7700000001",),
        purpose_patterns=(r"эквайринг", r"sandbox"),
        usual_delay_days=1,
        reports_net=False,
    ),
}

_NO_DEFAULTS = ProviderDefaults(payer_inns=(), purpose_patterns=(), usual_delay_days=1, reports_net=False)

_PERCENT = re.compile(r"^\d{1,2}(?:\.\d{1,4})?$")


class AcquiringSettings(Model):
    """One provider's payouts to the tenant's accounts (`bank.acquiring` in the tenant config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: Literal["tbank", "yookassa", "sandbox", "stripe"]
    #: The fee in percent of each payment, a decimal string ("2.49"); used where the provider gives no net amount.
    fee_percent: str = "0"
    #: A fixed fee per payment, minor units.
    fee_fixed: int = Field(default=0, ge=0)
    #: A payout within this many minor units of what we expect is matched.
    tolerance: int = Field(default=100, ge=0, le=1_000_000)
    #: The provider's usual delay: a payment recorded longer ago than this and not settled is reported.
    usual_delay_days: int | None = Field(default=None, ge=0, le=30)
    #: How far back a payout may reach for the payments it pays out.
    lookback_days: int = Field(default=10, ge=1, le=60)
    #: Who sends the payout: INNs and accounts (either matches); None: the provider's defaults.
    payer_inns: tuple[str, ...] | None = None
    payer_accounts: tuple[str, ...] = ()
    #: What its purpose says (any matches, case-insensitive); None: the provider's defaults; () : any purpose.
    purpose_patterns: tuple[str, ...] | None = None

    @field_validator("fee_percent")
    @classmethod
    def _percent(cls, value: str) -> str:
        if not _PERCENT.match(value):
            raise ValueError('fee_percent: a decimal string of percent, e.g. "2.49" (never a float)')
        return value

    @field_validator("payer_inns")
    @classmethod
    def _inns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for inn in value or ():
            if not re.fullmatch(r"\d{10}|\d{12}", inn):
                raise ValueError(f"payer INN {inn!r}: 10 or 12 digits")
        return value

    @model_validator(mode="after")
    def _patterns(self) -> AcquiringSettings:
        for pattern in self.patterns:
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"purpose pattern {pattern!r} is not a regular expression: {exc}") from None
        if not self.inns and not self.payer_accounts:
            raise ValueError("an acquiring source needs payer_inns or payer_accounts: who sends the payout")
        return self

    @property
    def _defaults(self) -> ProviderDefaults:
        return PROVIDER_DEFAULTS.get(self.provider, _NO_DEFAULTS)

    @property
    def inns(self) -> tuple[str, ...]:
        return self.payer_inns if self.payer_inns is not None else self._defaults.payer_inns

    @property
    def patterns(self) -> tuple[str, ...]:
        if self.purpose_patterns is not None:
            return self.purpose_patterns
        return self._defaults.purpose_patterns

    @property
    def delay_days(self) -> int:
        if self.usual_delay_days is not None:
            return self.usual_delay_days
        return self._defaults.usual_delay_days

    @property
    def reports_net(self) -> bool:
        """Whether the provider's API gives each payment's amount after its fee (asked before estimating)."""
        return self._defaults.reports_net

    @property
    def rate(self) -> Decimal:
        return Decimal(self.fee_percent) / 100

    def estimated_fee(self, amount: int) -> int:
        return int((Decimal(amount) * self.rate).quantize(Decimal(1), rounding=ROUND_HALF_UP)) + self.fee_fixed


def recognise(line: StatementLine, sources: Sequence[AcquiringSettings]) -> AcquiringSettings | None:
    """The acquiring source whose payout this line is, or None (then it is an ordinary incoming transfer)."""
    for source in sources:
        sender = (line.payer_inn is not None and line.payer_inn in source.inns) or (
            line.payer_account is not None and line.payer_account in source.payer_accounts
        )
        if not sender:
            continue
        patterns = source.patterns
        if not patterns or any(re.search(p, line.purpose, re.IGNORECASE) for p in patterns):
            return source
    return None


OperationKind = Literal["payment", "refund"]


class ProviderOperation(Model):
    """A money fact recorded through a provider: a payment (or a refund) that reached one of our invoices."""

    model_config = ConfigDict(frozen=True)
    provider: str
    ref: str  # as the invoice keeps it: "yookassa:<id>", "tbank:<PaymentId>", "yookassa:refund:<id>"
    kind: OperationKind
    invoice_id: str
    amount: int = Field(gt=0)
    method: str | None = None
    recorded_at: datetime
    #: The provider's own amount after its fee, where its API gives it (YooKassa `income_amount`).
    net: int | None = None

    @property
    def payment_id(self) -> str:
        return self.ref.split(":", 1)[1] if ":" in self.ref else self.ref

    @property
    def day(self) -> date:
        return self.recorded_at.astimezone(PROVIDER_DAY).date()


class SettledItem(Model):
    """One operation a payout pays out: what it brought (a refund: what it took) and the fee on it."""

    model_config = ConfigDict(frozen=True)
    ref: str
    invoice_id: str
    kind: OperationKind
    amount: int
    fee: int
    #: `exact`: the fee is the provider's own (its net amount); `estimate`: from the tenant's fee rate.
    basis: Literal["exact", "estimate"]
    method: str | None = None
    recorded_on: date

    @property
    def net(self) -> int:
        return -self.amount if self.kind == "refund" else self.amount - self.fee


class SettlementMatch(Model):
    """What a payout line was matched to, and whether it adds up."""

    model_config = ConfigDict(frozen=True)
    provider: str
    value_date: date
    amount: int
    items: tuple[SettledItem, ...] = ()
    #: What the payout was expected to pay out (its items, plus the operation it is short of, if any).
    payments: int = 0  # gross of those payments
    refunds: int = 0
    expected_fees: int = 0
    expected: int = 0  # payments - refunds - expected fees
    #: What the provider actually kept on the items it settles: their payments - refunds - the payout (the bank's
    #: figure, exact per payout).
    fees: int = 0
    difference: int = 0  # payout - expected
    flagged: bool = False
    reasons: tuple[str, ...] = ()
    #: Operations we recorded that this payout should have paid out and did not (the one it is short by).
    missing: tuple[str, ...] = ()
    stated_fee: int | None = None
    covered_days: tuple[date, ...] = ()

    @property
    def basis(self) -> str:
        kinds = {item.basis for item in self.items if item.kind == "payment"}
        return "exact" if kinds == {"exact"} else "estimate" if kinds == {"estimate"} else "mixed" if kinds else "none"


_DAY = r"(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?"
_RANGE = re.compile(r"(?:за\s+период\s+)?с\s+" + _DAY + r"\s*(?:г\.?)?\s+по\s+" + _DAY, re.IGNORECASE)
_FOR_DAY = re.compile(r"за\s+(?:операции\s+)?" + _DAY + r"(?!\d)", re.IGNORECASE)
_FEE = re.compile(r"комисси[яию]\w*\s*(?:банка\s*)?[:=-]?\s*(\d[\d\s]*(?:[.,]\d{1,2})?)\s*(?:руб|р\.|rub)?", re.I)


def _a_day(groups: Sequence[str | None], around: date) -> date | None:
    day, month, year = groups
    if day is None or month is None:
        return None
    try:
        if year is None:
            candidate = date(around.year, int(month), int(day))
            return candidate if candidate <= around else date(around.year - 1, int(month), int(day))
        full = int(year) + (2000 if len(year) == 2 else 0)
        return date(full, int(month), int(day))
    except ValueError:
        return None


def days_named(purpose: str, value_date: date) -> tuple[date, ...]:
    """The operation days a payout's purpose names: "за 30.11.2026", "с 28.11 по 30.11"; () when it names none."""
    found = _RANGE.search(purpose)
    if found:
        start = _a_day(found.groups()[:3], value_date)
        end = _a_day(found.groups()[3:], value_date)
        if start and end and start <= end and (end - start).days <= 31:
            return tuple(start + timedelta(days=k) for k in range((end - start).days + 1))
    days = []
    for match in _FOR_DAY.finditer(purpose):
        day = _a_day(match.groups(), value_date)
        if day is not None and day <= value_date and (value_date - day).days <= 60:
            days.append(day)
    return tuple(sorted(set(days)))


def stated_fee(purpose: str) -> int | None:
    """The fee a payout's purpose states ("комиссия 123.45", "Комиссия: 1 234,50"), in minor units."""
    found = _FEE.search(purpose)
    if not found:
        return None
    text = found.group(1).replace(" ", "").replace(",", ".")
    try:
        return int((Decimal(text) * 100).quantize(Decimal(1)))
    except ArithmeticError:
        return None


def _items(operations: Iterable[ProviderOperation], source: AcquiringSettings) -> list[SettledItem]:
    items = []
    for op in operations:
        basis: Literal["exact", "estimate"]
        if op.kind == "refund":
            fee, basis = 0, "exact"
        elif op.net is not None:
            fee, basis = op.amount - op.net, "exact"
        else:
            fee, basis = source.estimated_fee(op.amount), "estimate"
        items.append(
            SettledItem(
                ref=op.ref,
                invoice_id=op.invoice_id,
                kind=op.kind,
                amount=op.amount,
                fee=fee,
                basis=basis,
                method=op.method,
                recorded_on=op.day,
            )
        )
    return items


def _expected(items: Sequence[SettledItem]) -> int:
    return sum(item.net for item in items)


def match_settlement(
    line: StatementLine, source: AcquiringSettings, candidates: Sequence[ProviderOperation]
) -> SettlementMatch:
    """Which of the unsettled `candidates` (operations of `source.provider`) the payout `line` pays out."""
    value_date = line.value_date
    named = days_named(line.purpose, value_date)
    fee_stated = stated_fee(line.purpose)
    earliest = value_date - timedelta(days=source.lookback_days)
    pool = sorted(
        (op for op in candidates if op.provider == source.provider and earliest <= op.day <= value_date),
        key=lambda op: (op.recorded_at, op.ref),
    )
    if named:
        pool = [op for op in pool if op.day in named]
    items = _items(pool, source)
    amount = format_money(line.amount, line.currency)
    base = {"provider": source.provider, "value_date": value_date, "amount": line.amount, "stated_fee": fee_stated}

    def result(
        chosen: Sequence[SettledItem],
        reasons: Sequence[str] = (),
        missing: Sequence[str] = (),
        considered: Sequence[SettledItem] | None = None,
    ) -> SettlementMatch:
        """`chosen`: what the payout settles; `considered`: what it was expected to pay out, when that differs (the
        window with the payment it is short of; an unexplained payout settles nothing)."""
        compared = chosen if considered is None else considered
        payments = sum(i.amount for i in compared if i.kind == "payment")
        refunds = sum(i.amount for i in compared if i.kind == "refund")
        expected_fees = sum(i.fee for i in compared)
        expected = payments - refunds - expected_fees
        difference = line.amount - expected
        notes = list(reasons)
        flagged = bool(notes) or abs(difference) > source.tolerance
        # what the provider actually kept on what this payout settles: the bank's figure, exact per payout
        settled_net = sum(i.amount if i.kind == "payment" else -i.amount for i in chosen)
        actual_fees = settled_net - line.amount if chosen else 0
        if fee_stated is not None and chosen and not flagged and abs(fee_stated - actual_fees) > source.tolerance:
            flagged = True
            notes.append(
                f"the purpose states a fee of {format_money(fee_stated, line.currency)}, the payout implies "
                f"{format_money(actual_fees, line.currency)}"
            )
        return SettlementMatch(
            **base,
            items=tuple(chosen),
            payments=payments,
            refunds=refunds,
            expected_fees=expected_fees,
            expected=expected,
            fees=actual_fees,
            difference=difference,
            flagged=flagged,
            reasons=tuple(notes),
            missing=tuple(missing),
            covered_days=tuple(sorted({i.recorded_on for i in chosen})),
        )

    if not items:
        where = f"on {', '.join(f'{d:%d.%m.%Y}' for d in named)}" if named else "in the settlement window"
        return result((), (f"no unsettled {source.provider} payments recorded {where} for this payout of {amount}",))

    # 3. whole days, the newest dropped first
    days = sorted({item.recorded_on for item in items}, reverse=True)
    for cutoff in days:
        chosen = [item for item in items if item.recorded_on <= cutoff]
        if abs(line.amount - _expected(chosen)) <= source.tolerance:
            return result(chosen)

    # ... or up to a moment: a provider's day may close before midnight (the latest operations come next time)
    running, prefixes = 0, []
    for index, item in enumerate(items):
        running += item.net
        prefixes.append((index, running))
    for index, total in reversed(prefixes[:-1]):
        if abs(line.amount - total) <= source.tolerance:
            return result(items[: index + 1])

    # 5. explained by one operation: a payment missing from the payout, or a refund not yet deducted
    for cutoff in days:
        chosen = [item for item in items if item.recorded_on <= cutoff]
        total = _expected(chosen)
        for item in reversed(chosen):
            if abs(line.amount - (total - item.net)) <= source.tolerance:
                rest = [other for other in chosen if other.ref != item.ref]
                what = "payment" if item.kind == "payment" else "refund"
                verb = "is missing from" if item.kind == "payment" else "was not deducted in"
                reason = (
                    f"{what} {item.ref} (invoice {item.invoice_id}, {format_money(item.amount, line.currency)}, "
                    f"recorded {item.recorded_on:%d.%m.%Y}) {verb} this payout: the payout is "
                    f"{format_money(abs(item.net), line.currency)} {'short' if item.net > 0 else 'over'}"
                )
                return result(rest, (reason,), (item.ref,), considered=chosen)

    # unexplained: compared with the whole window, nothing settled — a person decides
    difference = line.amount - _expected(items)
    gap = format_money(abs(difference), line.currency)
    if difference < 0:
        reason = (
            f"the payout of {amount} is {gap} short of the {format_money(_expected(items), line.currency)} expected: "
            "a refund not in our records, or a fee above the agreed rate"
        )
    else:
        reason = (
            f"the payout of {amount} is {gap} more than the {format_money(_expected(items), line.currency)} "
            "expected: a payment not in our records, or a fee below the agreed rate"
        )
    payments = sum(item.amount for item in items if item.kind == "payment")
    refunds = sum(item.amount for item in items if item.kind == "refund")
    if source.rate == 0 and source.fee_fixed == 0 and payments and any(i.basis == "estimate" for i in items):
        implied = (Decimal(payments - refunds - line.amount) * 100 / payments).quantize(Decimal("0.01"))
        reason += f" (no fee_percent is set for {source.provider}: this payout implies {implied} %)"
    return result((), (reason,), considered=items)
