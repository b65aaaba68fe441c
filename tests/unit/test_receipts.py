"""54-FZ receipt data (paybridge.domain.receipt): line amounts, sums, the fallback line, refund lines."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from paybridge.domain.errors import ReceiptError
from paybridge.domain.invoice import NewInvoice
from paybridge.domain.receipt import (
    FiscalSettings,
    ReceiptItem,
    build_receipt,
    check_items_sum,
    items_total,
    refund_items,
)
from paybridge.http.models import CreateInvoiceBody, RefundBody

SETTINGS = FiscalSettings(taxation="usn_income", default_vat="vat22", default_payment_object="service")
CHAIR = ReceiptItem(name="Стул", price=250_000, quantity=Decimal(2), vat="vat22", payment_object="commodity")
DELIVERY = ReceiptItem(name="Доставка", price=50_000, vat="vat22")
TEA = ReceiptItem(name="Чай, кг", price=120_000, quantity=Decimal("0.25"), vat="vat10")


class TestItems:
    def test_line_amount_is_price_times_quantity(self) -> None:
        assert (CHAIR.amount, DELIVERY.amount, TEA.amount) == (500_000, 50_000, 30_000)
        assert items_total((CHAIR, DELIVERY, TEA)) == 580_000

    def test_fractional_quantity_from_json_keeps_its_decimals(self) -> None:
        item = ReceiptItem.model_validate({"name": "Сыр", "price": 100_000, "quantity": 1.1, "vat": "vat10"})
        assert item.quantity == Decimal("1.1") and item.amount == 110_000

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"price": 1_000, "quantity": "0.3333"}, "decimal"),
            ({"price": 333, "quantity": "0.5"}, "must be whole"),
            ({"price": 10.5}, "valid integer"),
            ({"price": 0}, "greater than 0"),
            ({"price": 100, "quantity": 0}, "greater than 0"),
            ({"price": 100, "vat": "vat18"}, "vat"),
            ({"price": 100, "payment_object": "gift"}, "payment_object"),
            ({"price": 100, "name": ""}, "at least 1 character"),
        ],
        ids=[
            "4-decimals",
            "fractional-kopecks",
            "float-price",
            "zero-price",
            "zero-quantity",
            "old-vat",
            "object",
            "name",
        ],
    )
    def test_bad_lines_are_refused(self, fields: dict[str, object], message: str) -> None:
        data = {"name": "Товар", "vat": "none", **fields}
        with pytest.raises(ValidationError, match=message):
            ReceiptItem.model_validate(data)

    def test_the_lines_must_add_up_to_the_amount(self) -> None:
        check_items_sum((CHAIR, DELIVERY), 550_000)
        check_items_sum((), 123)  # no lines: nothing to check
        with pytest.raises(ReceiptError, match="add up to 550000 minor units, but the amount is 550001"):
            check_items_sum((CHAIR, DELIVERY), 550_001)

    def test_an_invoice_whose_lines_do_not_add_up_is_refused_at_the_api_and_in_the_domain(self) -> None:
        body = {"deal_id": "D-1", "number": "1", "amount": 500_001, "items": [CHAIR.model_dump(mode="json")]}
        with pytest.raises(ValidationError, match="add up to 500000"):
            CreateInvoiceBody.model_validate(body)
        with pytest.raises(ValidationError, match="add up to 500000"):
            NewInvoice.model_validate({**body, "items": (CHAIR,)})
        with pytest.raises(ValidationError, match="the refund is 1"):
            RefundBody.model_validate({"amount": 1, "items": [DELIVERY.model_dump(mode="json")]})


class TestBuildReceipt:
    def test_given_lines_travel_as_they_are(self) -> None:
        receipt = build_receipt(SETTINGS, (CHAIR, DELIVERY), 550_000, "a@b.ru", None, "Счёт 1")
        assert receipt.items == (CHAIR, DELIVERY) and receipt.total == 550_000
        assert (receipt.taxation, receipt.ffd_version, receipt.email) == ("usn_income", "1.05", "a@b.ru")

    def test_without_lines_one_line_for_the_whole_amount_from_the_tenant_defaults(self) -> None:
        receipt = build_receipt(SETTINGS, (), 99_900, None, "+79001234567", "Счёт № 7")
        (line,) = receipt.items
        assert (line.name, line.price, line.quantity, line.vat, line.payment_object, line.payment_method) == (
            "Счёт № 7",
            99_900,
            1,
            "vat22",
            "service",
            "full_prepayment",
        )

    def test_a_receipt_needs_an_email_or_a_phone(self) -> None:
        with pytest.raises(ReceiptError, match="email or phone"):
            build_receipt(SETTINGS, (), 100, None, None, "x")


class TestRefundItems:
    def test_full_refund_returns_every_line(self) -> None:
        assert refund_items((CHAIR, DELIVERY), 550_000, 550_000) == (CHAIR, DELIVERY)

    def test_partial_refund_of_whole_lines(self) -> None:
        assert refund_items((CHAIR, DELIVERY, TEA), 580_000, 80_000) == (DELIVERY, TEA)
        assert refund_items((CHAIR, DELIVERY, TEA), 580_000, 500_000) == (CHAIR,)

    def test_partial_refund_that_splits_a_line_needs_the_callers_lines(self) -> None:
        with pytest.raises(ReceiptError, match="give the refund's items"):
            refund_items((CHAIR, DELIVERY), 550_000, 10_000)

    def test_no_invoice_lines_no_refund_lines(self) -> None:
        assert refund_items((), 1_000, 500) == ()
