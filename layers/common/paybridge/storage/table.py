"""The single table: its key helpers, index names and the base of every store (table name + a lazily made
client). The items each store keeps are listed in `storage/dynamodb.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


INVOICE_SK = "INVOICE"


OPEN_PK = "OPEN"


GSI_BY_PAYMENT = "ByPaymentId"


GSI_OPEN_BY_DUE = "OpenByDue"


GSI_BY_NUMBER = "ByNumber"


GSI_BY_STATE = "ByState"


TENANTS_PK = "TENANTS"


def number_key(tenant_id: str, number: str) -> str:
    from paybridge.domain.reconcile import normalize_number

    return f"NUM#{tenant_id}#{normalize_number(number)}"


def state_key(tenant_id: str, state: str) -> str:
    return f"STATE#{tenant_id}#{state}"


def deal_key(tenant_id: str, deal_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"DEAL#{tenant_id}#{deal_id}"}}


def _client() -> DynamoDBClient:
    import boto3  # lazy: keeps cold starts small

    return boto3.client("dynamodb")


def invoice_pk(tenant_id: str, invoice_id: str) -> str:
    return f"INV#{tenant_id}#{invoice_id}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


class TableStore:
    """What every store on the single table shares: its name and a boto3 client made on first use."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None):
        self._table = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = _client()
        return self._client
