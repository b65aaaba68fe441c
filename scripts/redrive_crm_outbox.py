"""Send parked CRM writes back to the outbox once their cause is fixed (a deal restored, a field created, access
given back).

    make redrive-crm STAGE=prod            # move everything parked on paybridge-prod-crm-outbox-dlq.fifo back
    make redrive-crm STAGE=prod ARGS=--dry-run   # only list what is parked and why

Each message keeps its deal's message group (order per deal is kept from here on) and gets a fresh deduplication
id (the original one may still be inside SQS's 5-minute window). A FIFO dead-letter queue cannot always be redriven
by `aws sqs start-message-move-task`; this works for every queue.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


def redrive(
    sqs: SQSClient, dead_letter_url: str, outbox_url: str, dry_run: bool = False, limit: int = 10_000
) -> list[dict[str, Any]]:
    moved: list[dict[str, Any]] = []
    seen: set[str] = set()
    held: list[str] = []  # dry run: what we received, made visible again at the end
    while len(moved) < limit:
        messages: list[Any] = sqs.receive_message(
            QueueUrl=dead_letter_url,
            MaxNumberOfMessages=min(10, limit - len(moved)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=30,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        held += [m["ReceiptHandle"] for m in messages] if dry_run else []
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            group = message.get("Attributes", {}).get("MessageGroupId", "redrive")
            reason = message.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "retries exhausted")
            moved.append({"message_id": message["MessageId"], "group": group, "reason": reason})
            if dry_run:
                continue
            sqs.send_message(
                QueueUrl=outbox_url,
                MessageBody=message["Body"],
                MessageGroupId=group,
                MessageDeduplicationId=f"redrive-{message['MessageId']}",
            )
            sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
    for handle in held:
        sqs.change_message_visibility(QueueUrl=dead_letter_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True, help="the deployment stage (paybridge-<stage>-…)")
    parser.add_argument("--dry-run", action="store_true", help="list parked writes and their reasons, move nothing")
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    sqs = boto3.client("sqs")
    try:
        dlq = sqs.get_queue_url(QueueName=f"paybridge-{args.stage}-crm-outbox-dlq.fifo")["QueueUrl"]
        outbox = sqs.get_queue_url(QueueName=f"paybridge-{args.stage}-crm-outbox.fifo")["QueueUrl"]
        moved = redrive(sqs, dlq, outbox, args.dry_run, args.limit)
    except (BotoCoreError, ClientError) as exc:
        print(f"redrive-crm: {exc}", file=sys.stderr)
        return 2
    for item in moved:
        print(json.dumps(item, ensure_ascii=False))
    verb = "parked" if args.dry_run else "sent back to the outbox"
    print(f"{len(moved)} CRM write(s) {verb}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
