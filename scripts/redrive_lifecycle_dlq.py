"""Redrive what landed on the lifecycle dead-letter queue (`paybridge-<stage>-dlq`) once its cause is fixed.

    make redrive-lifecycle STAGE=prod                 # redrive everything parked, report each message
    make redrive-lifecycle STAGE=prod ARGS=--dry-run  # only list what is parked and why

Two kinds of message land there (template.yaml):
- a payment lifecycle that FAILED, TIMED_OUT or was ABORTED (the EventBridge rule `FailedLifecyclesRule`: the
  "Step Functions Execution Status Change" event). It is redriven with Step Functions' `RedriveExecution`: the same
  execution continues from the state that failed (every task is idempotent: CreatePayment by order id, the deal
  writes by update id), so nothing already done is done twice. An execution Step Functions will not redrive (older
  than 14 days, redriven too often, a state machine changed under it) stays on the queue, reported with the reason;
- a scheduled run EventBridge could not deliver to its function (a schedule's `DeadLetterConfig`: the original
  event, with `RULE_ARN`, `TARGET_ARN`, `ERROR_CODE` attributes). It is invoked again, asynchronously, with the same
  event (every schedule is a sweep that repeats safely).

A message is deleted only after its redrive was accepted; one that cannot be read is left and reported. Prints one
JSON line per message and a count on stderr, like scripts/redrive_crm_outbox.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def redrive(
    sqs: Any, sfn: Any, lambda_: Any, dead_letter_url: str, dry_run: bool = False, limit: int = 10_000
) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    report: list[dict[str, Any]] = []
    seen: set[str] = set()
    held: list[str] = []  # what we leave on the queue: made visible again at the end
    while len(report) < limit:
        messages: list[Any] = sqs.receive_message(
            QueueUrl=dead_letter_url,
            MaxNumberOfMessages=min(10, limit - len(report)),
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        held += [m["ReceiptHandle"] for m in messages if m["MessageId"] in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            entry = describe(message)
            report.append(entry)
            if dry_run or entry["kind"] == "unknown":
                held.append(message["ReceiptHandle"])
                continue
            try:
                if entry["kind"] == "lifecycle":
                    sfn.redrive_execution(executionArn=entry["execution_arn"])
                else:
                    lambda_.invoke(FunctionName=entry["target_arn"], InvocationType="Event", Payload=message["Body"])
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                entry["outcome"] = f"left on the queue: {code}: {exc.response.get('Error', {}).get('Message', '')}"
                held.append(message["ReceiptHandle"])
                continue
            entry["outcome"] = "redriven" if entry["kind"] == "lifecycle" else "invoked again"
            sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
    for handle in held:
        sqs.change_message_visibility(QueueUrl=dead_letter_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return report


def describe(message: dict[str, Any]) -> dict[str, Any]:
    """What a message is: a failed lifecycle, an undelivered schedule run, or something this script does not know."""
    attributes = {k: v.get("StringValue", "") for k, v in (message.get("MessageAttributes") or {}).items()}
    try:
        body = json.loads(message["Body"])
    except (json.JSONDecodeError, TypeError):
        body = None
    base = {"message_id": message["MessageId"]}
    if isinstance(body, dict) and body.get("detail-type") == "Step Functions Execution Status Change":
        detail = body.get("detail") or {}
        if isinstance(detail, dict) and detail.get("executionArn"):
            return {
                **base,
                "kind": "lifecycle",
                "execution_arn": detail["executionArn"],
                "status": detail.get("status", ""),
                "outcome": "would be redriven",
            }
    if attributes.get("TARGET_ARN"):
        return {
            **base,
            "kind": "schedule",
            "target_arn": attributes["TARGET_ARN"],
            "rule_arn": attributes.get("RULE_ARN", ""),
            "error": f"{attributes.get('ERROR_CODE', '')}: {attributes.get('ERROR_MESSAGE', '')}".strip(": "),
            "outcome": "would be invoked again",
        }
    return {**base, "kind": "unknown", "outcome": "left on the queue: not a lifecycle or schedule failure"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True, help="the deployment stage (paybridge-<stage>-dlq)")
    parser.add_argument("--dry-run", action="store_true", help="list what is parked and why, redrive nothing")
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    sqs = boto3.client("sqs")
    try:
        dlq = sqs.get_queue_url(QueueName=f"paybridge-{args.stage}-dlq")["QueueUrl"]
        report = redrive(sqs, boto3.client("stepfunctions"), boto3.client("lambda"), dlq, args.dry_run, args.limit)
    except (BotoCoreError, ClientError) as exc:
        print(f"redrive-lifecycle: {exc}", file=sys.stderr)
        return 2
    for entry in report:
        print(json.dumps(entry, ensure_ascii=False))
    done = sum(1 for e in report if e["outcome"] in ("redriven", "invoked again"))
    print(f"{len(report)} message(s) on the lifecycle DLQ; {done} redriven", file=sys.stderr)
    return 0 if args.dry_run or done == len(report) else 1


if __name__ == "__main__":
    raise SystemExit(main())
