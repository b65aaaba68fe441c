"""The `paybridge` command against a deployed stage's table on moto (the template's own key schema and indexes):
a tenant put there is an item the code reads whole — listed by the index every schedule walks, parsed back to the
same tenant; keys are added and revoked over exactly what was read; bad input writes nothing. And the lifecycle
dead-letter queue's redrive (scripts/redrive_lifecycle_dlq.py) on moto's SQS."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paybridge.storage.tenants import DynamoTenantDirectory
from scripts.cli.main import main
from scripts.cli.stores import Conflict, StageStore
from tests.unit.test_cli import ACME, write


@pytest.fixture
def aws(moto_aws: Any) -> Any:
    """boto3 in a private moto account (tests/conftest.py `moto_aws`)."""
    return moto_aws


@pytest.fixture
def table(aws: Any) -> Iterator[str]:
    """A table of its own, shaped by template.yaml (when the session's stack runs, its mock is the outer one)."""
    from devstack.template import load_template

    name = f"paybridge-cli-{uuid.uuid4().hex[:8]}"
    client = aws.client("dynamodb")
    client.create_table(TableName=name, **load_template().table())
    yield name
    client.delete_table(TableName=name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def items(aws: Any, table: str) -> list[dict[str, Any]]:
    return list(aws.client("dynamodb").scan(TableName=table)["Items"])


def test_put_writes_an_item_the_code_reads_whole_and_lists(
    aws: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "tenants", "put", str(write(tmp_path, [ACME])), "--stage", "prod", "--table", table)
    assert code == 0, err
    (item,) = items(aws, table)
    assert item["pk"] == {"S": "TENANT#acme"} and item["sk"] == {"S": "CONFIG"}
    assert item["gsi2pk"] == {"S": "TENANTS"} and item["gsi2sk"] == {"S": "acme"}  # the bank poller's listing
    directory = DynamoTenantDirectory(table)
    assert directory.tenant_ids() == ["acme"]
    tenant = directory.get("acme")
    assert tenant.psp.provider == "stripe" and tenant.link_lifetime_seconds == 86400
    assert tenant.scopes_of("acme-key") == {"integration"}
    code, out, _ = run(capsys, "tenants", "list", "--stage", "prod", "--table", table)
    assert json.loads(out)["tenant_id"] == "acme" and json.loads(out)["integration_keys"] == 1
    # Putting it again is the same item (idempotent)
    assert run(capsys, "tenants", "put", str(write(tmp_path, [ACME])), "--stage", "prod", "--table", table)[0] == 0
    assert items(aws, table) == [item]


@pytest.mark.parametrize(
    "broken",
    [
        {"psp": {**ACME["psp"], "secret_key": {"value": "sk_live_inline"}}},  # an inline secret on a deployed stage
        {"link_lifetime_seconds": 3 * 86400},  # over Stripe's 24 h
        {"crm": {**ACME["crm"], "base_url": "${PAYBRIDGE_LOCAL_URL}/fake/amocrm"}},
    ],
)
def test_put_of_a_tenant_a_stage_cannot_run_writes_nothing(
    aws: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: dict[str, Any]
) -> None:
    good = {**copy.deepcopy(ACME), "tenant_id": "good"}
    path = write(tmp_path, [good, {**copy.deepcopy(ACME), **broken}])
    code, out, err = run(capsys, "tenants", "put", str(path), "--stage", "prod", "--table", table)
    assert code == 2 and "nothing written" in err and out == ""
    assert items(aws, table) == []  # not even the good one


def test_keys_on_a_stage_add_and_revoke_over_what_was_read(
    aws: Any, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "tenants", "put", str(write(tmp_path, [ACME])), "--stage", "prod", "--table", table)
    code, out, err = run(capsys, "keys", "new", "acme", "--scope", "ops", "--stage", "prod", "--table", table)
    assert code == 0, err
    key = out.strip()
    stored = items(aws, table)[0]["config"]["S"]
    assert key not in stored and hashlib.sha256(key.encode()).hexdigest() in stored
    directory = DynamoTenantDirectory(table)
    assert directory.get("acme").scopes_of(key) == {"ops"}
    old = hashlib.sha256(b"acme-key").hexdigest()[:10]
    new = run(capsys, "keys", "new", "acme", "--stage", "prod", "--table", table)[1].strip()
    assert run(capsys, "keys", "revoke", "acme", old, "--stage", "prod", "--table", table)[0] == 0
    tenant = DynamoTenantDirectory(table).get("acme")
    assert tenant.scopes_of("acme-key") == frozenset() and tenant.scopes_of(new) == {"integration"}
    assert items(aws, table)[0]["gsi2pk"] == {"S": "TENANTS"}  # still listed after each change


def test_a_change_made_meanwhile_is_refused_not_lost(aws: Any, table: str) -> None:
    from paybridge.tenants import TenantConfig

    DynamoTenantDirectory(table).put(TenantConfig.model_validate(ACME))
    store = StageStore("prod", table)
    read = store.read("acme")
    assert read is not None
    # someone else adds a key between our read and our write
    other = TenantConfig.model_validate({**ACME, "ops_api_keys_sha256": ["a" * 64]})
    DynamoTenantDirectory(table).put(other)
    with pytest.raises(Conflict):
        store.write({**read, "name": "Acme renamed"}, read)
    assert DynamoTenantDirectory(table).get("acme").ops_api_keys_sha256 == ["a" * 64]


def test_a_stage_that_is_not_deployed_gets_a_message(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tenants", "list", "--stage", "nowhere")
    assert (code, out) == (2, "") and "no table paybridge-nowhere" in err


def test_unknown_tenant_on_a_stage(aws: Any, table: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "keys", "new", "nobody", "--stage", "prod", "--table", table)
    assert code == 2 and "no tenant 'nobody' in stage prod" in err and items(aws, table) == []


def test_a_tenant_item_made_by_hand_is_found_and_indexed(
    aws: Any, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trap of the old README: an item with `config` but no `gsi2pk`/`gsi2sk` is served but never polled."""
    config = json.dumps(ACME)
    item = {"pk": {"S": "TENANT#acme"}, "sk": {"S": "CONFIG"}, "config": {"S": config}}
    aws.client("dynamodb").put_item(TableName=table, Item=item)
    assert DynamoTenantDirectory(table).tenant_ids() == []  # what every schedule reads: nothing
    code, out, err = run(capsys, "tenants", "reindex", "--stage", "prod", "--table", table)
    assert code == 0 and "acme: indexed" in out and "1 tenant item(s)" in err
    assert DynamoTenantDirectory(table).tenant_ids() == ["acme"]
    assert DynamoTenantDirectory(table).get("acme").scopes_of("acme-key") == {"integration"}
    code, out, err = run(capsys, "tenants", "reindex", "--stage", "prod", "--table", table)
    assert (code, out) == (0, "") and "0 tenant item(s)" in err


def test_verify_secrets_asks_secrets_manager_for_each_name_and_its_tag(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = aws.client("secretsmanager")
    tags = {"psp": "psp", "crm": "crm"}
    for path in ("psp/secret_key", "psp/webhook_secret", "crm/auth/token"):
        tag = tags[path.split("/")[0]]
        secrets.create_secret(
            Name=f"paybridge/prod/acme/{path}", SecretString="x" * 12, Tags=[{"Key": "paybridge-use", "Value": tag}]
        )
    secrets.create_secret(Name="paybridge/prod/acme/crm/webhook_token", SecretString="y" * 12)  # untagged
    path = write(tmp_path, [ACME])
    code, _, err = run(capsys, "tenants", "check", str(path), "--stage", "prod", "--verify-secrets")
    assert code == 1
    assert (
        "tenants[0].crm.webhook_token: secret 'paybridge/prod/acme/crm/webhook_token' is not tagged paybridge-use=crm"
        in err
    )
    assert err.count("tenants[0].") == 1 and "x" * 12 not in err
    secrets.tag_resource(
        SecretId="paybridge/prod/acme/crm/webhook_token", Tags=[{"Key": "paybridge-use", "Value": "crm"}]
    )
    secrets.delete_secret(SecretId="paybridge/prod/acme/psp/webhook_secret", ForceDeleteWithoutRecovery=True)
    code, _, err = run(capsys, "tenants", "check", str(path), "--stage", "prod", "--verify-secrets")
    assert code == 1 and "tenants[0].psp.webhook_secret: no secret 'paybridge/prod/acme/psp/webhook_secret'" in err
    secrets.create_secret(
        Name="paybridge/prod/acme/psp/webhook_secret",
        SecretString="z" * 12,
        Tags=[{"Key": "paybridge-use", "Value": "psp"}],
    )
    assert run(capsys, "tenants", "check", str(path), "--stage", "prod", "--verify-secrets")[0] == 0


# -- the lifecycle dead-letter queue ---------------------------------------------------------------------------------


class Recorder:
    """Step Functions / Lambda stand-ins (moto has no RedriveExecution): record calls, refuse the ARNs told to."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse or set()

    def redrive_execution(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls.append(("redrive_execution", kwargs))
        if kwargs["executionArn"] in self.refuse:
            error = {"Error": {"Code": "ExecutionNotRedrivable", "Message": "older than 14 days"}}
            raise ClientError(error, "RedriveExecution")  # type: ignore[arg-type]
        return {"redriveDate": "now"}

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("invoke", kwargs))
        return {"StatusCode": 202}


def failed_execution(arn: str, status: str = "FAILED") -> str:
    detail = {"executionArn": arn, "stateMachineArn": "arn:sm", "name": arn.rsplit(":", 1)[-1], "status": status}
    return json.dumps(
        {"source": "aws.states", "detail-type": "Step Functions Execution Status Change", "detail": detail}
    )


def test_the_lifecycle_dlq_redrive_redrives_reinvokes_and_keeps_what_it_cannot(aws: Any) -> None:
    from scripts.redrive_lifecycle_dlq import redrive

    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=f"paybridge-t{uuid.uuid4().hex[:6]}-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=failed_execution("arn:aws:states:x:1:execution:sm:inv_1"))
    sqs.send_message(QueueUrl=url, MessageBody=failed_execution("arn:aws:states:x:1:execution:sm:old", "TIMED_OUT"))
    schedule = json.dumps({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    target = {"DataType": "String", "StringValue": "arn:aws:lambda:x:1:function:paybridge-prod-stuck"}
    code = {"DataType": "String", "StringValue": "Lambda.TooManyRequestsException"}
    sqs.send_message(QueueUrl=url, MessageBody=schedule, MessageAttributes={"TARGET_ARN": target, "ERROR_CODE": code})
    sqs.send_message(QueueUrl=url, MessageBody="not json")

    # A dry run lists everything and changes nothing
    sfn, lambda_ = Recorder(refuse={"arn:aws:states:x:1:execution:sm:old"}), Recorder()
    listed = redrive(sqs, sfn, lambda_, url, dry_run=True)
    assert sorted(e["kind"] for e in listed) == ["lifecycle", "lifecycle", "schedule", "unknown"]
    assert sfn.calls == lambda_.calls == []

    report = {e.get("execution_arn", e["kind"]): e for e in redrive(sqs, sfn, lambda_, url)}
    assert report["arn:aws:states:x:1:execution:sm:inv_1"]["outcome"] == "redriven"
    assert report["arn:aws:states:x:1:execution:sm:old"]["outcome"].startswith("left on the queue: ExecutionNotRedriv")
    assert report["schedule"]["outcome"] == "invoked again" and "TooManyRequests" in report["schedule"]["error"]
    assert report["unknown"]["outcome"].startswith("left on the queue")
    assert lambda_.calls == [
        ("invoke", {"FunctionName": target["StringValue"], "InvocationType": "Event", "Payload": schedule})
    ]
    # What could not be redriven is still there, visible again; what was redriven is gone
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in left) == sorted(
        [failed_execution("arn:aws:states:x:1:execution:sm:old", "TIMED_OUT"), "not json"]
    )
