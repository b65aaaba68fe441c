"""The 54-FZ receipt a payment, charge or refund of a fiscal tenant carries (None for other tenants)."""

from __future__ import annotations

from paybridge.domain.invoice import Invoice
from paybridge.domain.receipt import FiscalReceipt, ReceiptItem, build_receipt
from paybridge.tenants import TenantConfig


def receipt_for(
    tenant: TenantConfig, invoice: Invoice, amount: int, items: tuple[ReceiptItem, ...], name: str
) -> FiscalReceipt | None:
    if tenant.fiscal is None:
        return None
    customer = invoice.customer
    return build_receipt(tenant.fiscal, items, amount, customer.email, customer.phone, name)
