"""What people read: texts for the CRM timeline, the manager and the client. Russian, as our users' CRMs are."""

from __future__ import annotations

from paybridge.domain.invoice import Invoice


def link_for_customer(invoice: Invoice) -> str:
    return (
        f"Счёт № {invoice.number} на {invoice.describe_amount()}. "
        f"Оплатить: {invoice.payment_url} (ссылка действует до {invoice.expires_at:%d.%m.%Y %H:%M} UTC)"
    )


def link_published(invoice: Invoice) -> str:
    return f"PayBridge: выставлен счёт № {invoice.number} на {invoice.describe_amount()}. Ссылка: {invoice.payment_url}"


def paid(invoice: Invoice) -> str:
    text = f"PayBridge: счёт № {invoice.number} оплачен: {invoice.describe_amount(invoice.paid)}."
    if "overpaid" in invoice.flags:
        text += f" Переплата {invoice.describe_amount(invoice.paid - invoice.amount)}."
    return text


def partially_paid(invoice: Invoice) -> str:
    return (
        f"PayBridge: по счёту № {invoice.number} получено {invoice.describe_amount(invoice.paid)} "
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
