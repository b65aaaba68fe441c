"""What people read: texts for the CRM timeline, the manager and the client. Russian, as our users' CRMs are."""

from __future__ import annotations

from paybridge.domain.invoice import Invoice


def link_for_customer(invoice: Invoice) -> str:
    return (
        f"Счёт № {invoice.number} на {invoice.describe_amount()}. "
        f"Оплатить: {invoice.payment_url} (ссылка действует до {invoice.expires_at:%d.%m.%Y %H:%M} UTC)"
    )


def link_published(invoice: Invoice) -> str:
    again = f" (новая ссылка, попытка {invoice.attempt})" if invoice.attempt > 1 else ""
    return (
        f"PayBridge: выставлен счёт № {invoice.number}{again} на {invoice.describe_amount()}. "
        f"Ссылка: {invoice.payment_url}"
    )


_STATE_NAMES = {
    "issued": "выставлен",
    "awaiting_payment": "ожидает оплаты",
    "partially_paid": "оплачен частично",
    "paid": "оплачен",
    "partially_refunded": "частично возвращён",
    "refunded": "возвращён",
    "expired": "срок оплаты истёк",
    "cancelled": "отменён",
    "failed": "не удалось создать платёж",
}
_METHOD_NAMES = {"cash": "наличными", "bank_transfer": "переводом на другой счёт", "other": "иным способом"}


def resynced(invoice: Invoice) -> str:
    text = (
        f"PayBridge: сделка сверена со счётом № {invoice.number}: {_STATE_NAMES[invoice.state.value]}, "
        f"оплачено {invoice.describe_amount(invoice.paid)} из {invoice.describe_amount()}"
    )
    if invoice.refunded:
        text += f", возвращено {invoice.describe_amount(invoice.refunded)}"
    return text + "."


def paid_outside(invoice: Invoice) -> str:
    last = list(invoice.manual_payments.values())[-1] if invoice.manual_payments else None
    if last is None:
        return f"PayBridge: по счёту № {invoice.number} записана оплата вне PayBridge."
    reference = f" ({last.reference})" if last.reference else ""
    return (
        f"PayBridge: по счёту № {invoice.number} записана оплата вне PayBridge: "
        f"{invoice.describe_amount(last.amount)} {_METHOD_NAMES[last.method]}{reference}."
    )


#: How the money came, as the deal's timeline says it.
_PAID_BY = {
    "card": "картой",
    "sbp": "через СБП",
    "bank_transfer": "банковским переводом",
    "saved_method": "списанием с сохранённой карты",
    "manual": "вне PayBridge",
}


def paid_by(invoice: Invoice) -> str:
    """ " картой", " через СБП и банковским переводом", or "" when no receipt's method is known."""
    names = [_PAID_BY[m] for m in _PAID_BY if m in invoice.paid_by_method]
    if not names:
        return ""
    return " " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " и " + names[-1])


def paid(invoice: Invoice) -> str:
    text = f"PayBridge: счёт № {invoice.number} оплачен{paid_by(invoice)}: {invoice.describe_amount(invoice.paid)}."
    if "overpaid" in invoice.flags:
        text += f" Переплата {invoice.describe_amount(invoice.paid - invoice.amount)}."
    return text


def partially_paid(invoice: Invoice) -> str:
    return (
        f"PayBridge: по счёту № {invoice.number} получено{paid_by(invoice)} {invoice.describe_amount(invoice.paid)} "
        f"из {invoice.describe_amount()}, не хватает {invoice.describe_amount(invoice.outstanding)}."
    )


def declined(invoice: Invoice) -> str:
    return f"PayBridge: попытка оплаты счёта № {invoice.number} отклонена; клиент может повторить по той же ссылке."


def expired(invoice: Invoice) -> str:
    text = f"PayBridge: срок оплаты счёта № {invoice.number} истёк."
    if invoice.close_reason and invoice.close_reason != "link expired":
        text += f" {invoice.close_reason[0].upper()}{invoice.close_reason[1:]}."
    if invoice.paid:
        text += f" Получено {invoice.describe_amount(invoice.paid)} из {invoice.describe_amount()}."
    return text


def cancelled(invoice: Invoice) -> str:
    return f"PayBridge: счёт № {invoice.number} отменён."


def failed(invoice: Invoice) -> str:
    return f"PayBridge: не удалось создать платёж по счёту № {invoice.number}: {invoice.close_reason}"


def refunded(invoice: Invoice) -> str:
    text = f"PayBridge: по счёту № {invoice.number} возвращено {invoice.describe_amount(invoice.refunded)}"
    if invoice.refunded < invoice.paid:
        text += f" из оплаченных {invoice.describe_amount(invoice.paid)}"
    return text + "."


def refund_failed(invoice: Invoice) -> str:
    failed = [r for r in invoice.refund_requests.values() if r.status == "failed"]
    last = failed[-1] if failed else None
    amount = invoice.describe_amount(last.amount) if last else ""
    reason = f": {last.detail}" if last and last.detail else ""
    return f"PayBridge: возврат {amount} по счёту № {invoice.number} не выполнен{reason}. Нужно решение менеджера."


def flagged(invoice: Invoice) -> str:
    notes = {
        "overpaid": f"переплата {invoice.describe_amount(invoice.paid - invoice.amount)}",
        "paid_after_close": "деньги пришли после закрытия счёта",
        "amount_mismatch": "сумма платежа не совпала с ожидаемой",
    }
    return f"PayBridge: проверьте счёт № {invoice.number}: " + "; ".join(notes[f] for f in invoice.flags)
