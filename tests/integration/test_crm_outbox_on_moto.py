"""The CRM outbox on moto: the template's FIFO queue and its dead-letter queue, the consumer function invoked with
SQS events (the sample and the local event source mapping), parking, and the redrive script."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import boto3

from paybridge.adapters.outbox import SqsCrmOutbox
from paybridge.domain.deal_sync import DealOp, DealUpdate
from scripts.redrive_crm_outbox import redrive
from tests.conftest import load_event, poll


def dlq_messages(stack: Any) -> list[dict[str, Any]]:
    """Peek at the parked messages (received with a zero visibility timeout: they stay parked)."""
    sqs = boto3.client("sqs")
    url = stack.aws.queue_urls["CrmOutboxDeadLetterQueue"]
    found: dict[str, dict[str, Any]] = {}
    for _ in range(5):
        for m in sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            VisibilityTimeout=0,
        ).get("Messages", []):
            found[m["MessageId"]] = m
    return list(found.values())


def test_the_template_queues_exist_as_fifo_with_a_redrive_policy(stack: Any) -> None:
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack.aws.queue_urls["CrmOutboxQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["FifoQueue"] == "true" and attributes["VisibilityTimeout"] == "120"
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == stack.aws.queue_arns["CrmOutboxDeadLetterQueue"]
    assert int(policy["maxReceiveCount"]) == 60


def test_sample_outbox_event_parks_what_cannot_succeed_and_retries_nothing(stack: Any) -> None:
    event = load_event("crm_outbox/deal_updates")
    before = len(dlq_messages(stack))
    answer = stack.aws.invoke("CrmOutboxFunction", event)
    # Deal 990001 does not exist in the sandbox CRM (refused for good) and record 2 is not an update: both parked
    assert answer == {"batchItemFailures": []}
    parked = poll("parked", lambda: {"m": dlq_messages(stack)}, lambda v: len(v["m"]) >= before + 2, 10)["m"]
    reasons = {m["MessageAttributes"]["reason"]["StringValue"] for m in parked}
    assert any("990001" in r or "not found" in r.lower() for r in reasons)
    assert any(r.startswith("not a DealUpdate") for r in reasons)


def test_a_refused_update_is_parked_then_redriven_back_to_the_outbox(stack: Any, unique: Any) -> None:
    sqs = boto3.client("sqs")
    dlq, outbox = stack.aws.queue_urls["CrmOutboxDeadLetterQueue"], stack.aws.queue_urls["CrmOutboxQueue"]
    deal = unique("9")
    update = DealUpdate(
        tenant_id="bitrix-shop",
        deal_id=f"{abs(hash(deal)) % 10**8 + 10**8}",  # no such deal in the fake portal
        invoice_id="inv_" + "r" * 26,
        version=1,
        event="money_received",
        ops=(DealOp(kind="set_stage", stage="WON"), DealOp(kind="comment", text="paid")),
    )
    SqsCrmOutbox(outbox, dlq).publish(update)

    def mine() -> dict[str, Any]:
        return {"m": [m for m in dlq_messages(stack) if update.deal_id in m["Body"]]}

    # The local event source mapping hands it to the consumer; Bitrix24 refuses the call: parked with the reason
    parked = poll("parked", mine, lambda v: bool(v["m"]), 15)["m"]
    assert [json.loads(m["Body"])["deal_id"] for m in parked] == [update.deal_id]
    assert "Not found" in parked[0]["MessageAttributes"]["reason"]["StringValue"]
    # Dry run lists it and moves nothing; the redrive sends it back (same message group, fresh deduplication id)
    assert update.group in [m["group"] for m in redrive(sqs, dlq, outbox, dry_run=True)]
    time.sleep(0.1)
    assert len(mine()["m"]) == 1, [m["Body"][:80] for m in dlq_messages(stack)]
    moved = redrive(sqs, dlq, outbox)
    assert update.group in [m["group"] for m in moved]
    # Still refused (the deal is still missing): parked again, once — nothing lost, nothing doubled
    poll("parked again", mine, lambda v: bool(v["m"]), 15)
    time.sleep(0.3)
    assert [json.loads(m["Body"])["invoice_id"] for m in mine()["m"]] == [update.invoice_id]


def test_sample_bitrix24_event_is_accepted_as_a_check_without_reading_the_deal(stack: Any) -> None:
    # ONCRMDEALUPDATE carries only the deal id: the webhook answers at once and queues a check (read in a batch)
    response = stack.aws.invoke("CrmWebhookFunction", load_event("crm_webhook/bitrix24_deal_update"))
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "accepted", "invoices": [], "checks": 1, "ignored": []}


def test_sample_bitrix24_event_with_a_forged_token_is_401(stack: Any) -> None:
    event = load_event("crm_webhook/bitrix24_deal_update")
    form = base64.b64decode(event["body"]).decode().replace("bitrix-shop-application-token", "forged")
    event["body"] = base64.b64encode(form.encode()).decode()
    assert stack.aws.invoke("CrmWebhookFunction", event)["statusCode"] == 401


def test_sample_amocrm_event_is_verified_by_the_url_token(stack: Any) -> None:
    event = load_event("crm_webhook/amocrm_lead_status")
    response = stack.aws.invoke("CrmWebhookFunction", event)
    assert response["statusCode"] == 502  # verified; lead 990001 is unknown to the (fake) account
    event["queryStringParameters"] = {"token": "guess"}
    assert stack.aws.invoke("CrmWebhookFunction", event)["statusCode"] == 401
