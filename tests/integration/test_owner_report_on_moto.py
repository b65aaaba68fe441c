"""The owner's report on the local stack (moto's table, the real route): a seeded month's figures are the numbers
counted by hand (tests/unit/test_owner_report.py), read by index — and `make report` prints them as a table, an
HTML page with inline SVG charts, and a last JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from paybridge.domain.bank import Decision, StatementLine
from paybridge.domain.invoice import AuditEntry, Invoice, InvoiceState, invoice_id_for
from paybridge.storage.bank import DynamoBankStore
from paybridge.wiring import get_repo, get_settings
from tests.conftest import API_KEY, ROOT
from tests.unit.test_owner_report import month_of_invoices

TENANT = "demo"


def _as_demo(invoice: Invoice, shift: timedelta) -> Invoice:
    """The hand-counted invoice, for the demo tenant, issued `shift` later (every time moved alike)."""
    moved = {"created_at": invoice.created_at + shift, "expires_at": invoice.expires_at + shift}
    if invoice.paid_at is not None:
        moved["paid_at"] = invoice.paid_at + shift
    deal = f"report{-shift.days}-{invoice.deal_id}"
    ids = {"tenant_id": TENANT, "deal_id": deal, "invoice_id": invoice_id_for(TENANT, deal, invoice.number)}
    return invoice.model_copy(update={**ids, **moved})


def _seed(invoices: list[Invoice]) -> None:
    repo: Any = get_repo()
    for invoice in invoices:
        audit = AuditEntry(
            at=invoice.created_at, event="seeded", from_state=InvoiceState.ISSUED, to_state=invoice.state
        )
        assert repo.create(invoice, audit)[1]


@pytest.fixture(scope="module")
def seeded(stack: Any) -> None:
    # March 2023 (Moscow time: the first is issued 2023-03-04 12:00 MSK) and two of the same invoices in February
    march = [_as_demo(i, timedelta(days=-366)) for i in month_of_invoices()]
    february = [_as_demo(i, timedelta(days=-366 - 28)) for i in month_of_invoices()[:2]]
    _seed(march + february)
    bank = DynamoBankStore(get_settings().table_name)
    for n in (1, 2):
        line = StatementLine(
            source="1c_file",
            account="40702810900000000001",
            value_date=date(2023, 3, 10 + n),
            amount=12_300 + n,
            purpose=f"оплата без номера {n}",
        )
        bank.record_line(TENANT, line, Decision(fingerprint=line.fingerprint, kind="unmatched", reason="no number"))


def test_the_report_of_a_seeded_month_is_what_was_counted_by_hand(seeded: None, http: httpx.Client) -> None:
    response = http.get(f"/v1/{TENANT}/report", params={"month": "2023-03"}, headers={"x-api-key": API_KEY})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["tenant"], report["month"], report["timezone"]) == (TENANT, "2023-03", "Europe/Moscow")
    assert (report["issued"], report["paid"], report["paid_share"]) == (8, 5, 0.625)
    assert (report["time_to_pay_p50_seconds"], report["time_to_pay_p90_seconds"]) == (3_600, 86_400)
    assert report["methods"] == {"bank_transfer": 2, "card": 2, "manual": 1, "sbp": 2}
    assert report["refunds"] == {
        "count": 1,
        "invoices": 1,
        "amount": {"RUB": 4_000},
        "share_of_paid": {"RUB": round(4_000 / 89_000, 4)},
    }
    assert (report["partially_paid"], report["overpaid"], report["unmatched_bank_lines"]) == (1, 1, 2)
    assert report["previous"]["month"] == "2023-02"
    assert (report["previous"]["issued"], report["previous"]["paid"]) == (2, 2)
    assert report["change"]["issued"] == 6 and report["change"]["paid_share"] == -0.375
    assert report["period_start"].startswith("2023-02-28T21:00:00")


def test_bad_months_and_keys_are_refused_and_nothing_is_read(seeded: None, http: httpx.Client) -> None:
    for month in ("2023-13", "2023-3", "march", "1999-01"):
        response = http.get(f"/v1/{TENANT}/report", params={"month": month}, headers={"x-api-key": API_KEY})
        assert response.status_code in (400, 422), (month, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert http.get(f"/v1/{TENANT}/report", params={"month": "2023-03"}).status_code == 401
    assert http.get(f"/v1/{TENANT}/report", headers={"x-api-key": "wrong"}).status_code == 401
    # no month: this month (in the tenant's zone)
    now = http.get(f"/v1/{TENANT}/report", headers={"x-api-key": API_KEY}).json()
    assert now["month"] == datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow")).strftime(
        "%Y-%m"
    )


def test_make_report_prints_a_table_writes_html_and_ends_with_json(seeded: None, stack: Any, tmp_path: Path) -> None:
    out = tmp_path / "march.html"
    port = stack.url.rsplit(":", 1)[1]
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "scripts/report.py", "--tenant", TENANT, "--month", "2023-03", "--out", str(out)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PAYBRIDGE_PORT": port},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    last = json.loads(lines[-1])
    assert {
        "tenant",
        "month",
        "issued",
        "paid",
        "paid_share",
        "time_to_pay_p50_seconds",
        "time_to_pay_p90_seconds",
        "methods",
        "refunds",
    } <= set(last)
    assert (last["issued"], last["paid"], last["methods"]["bank_transfer"]) == (8, 5, 2)
    table = "\n".join(lines)
    assert "paid share" in table and "62.5%" in table and "paid by bank_transfer" in table
    assert "60 min" in table and "24.0 h" in table  # p50 3,600 s, p90 86,400 s
    page = out.read_text(encoding="utf-8")
    assert (
        page.count("<svg") == 4
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "62.5%" in page and "bank_transfer" in page


def test_make_report_says_what_is_wrong() -> None:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own script
            [sys.executable, "scripts/report.py", *args],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    bad_month = run("--tenant", TENANT, "--month", "2023-13")
    assert bad_month.returncode == 2 and "not YYYY-MM" in bad_month.stderr
    no_key = run("--tenant", TENANT, "--stage", "prod")
    assert no_key.returncode == 2 and "PAYBRIDGE_API_KEY" in no_key.stderr
    nobody = run("--tenant", TENANT, env={"PAYBRIDGE_PORT": "9"})
    assert nobody.returncode == 3 and "make dev" in nobody.stderr
