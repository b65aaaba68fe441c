"""Typed configuration, read from the environment at call time and cached (never at import)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import Field

from paybridge.domain.model import Model


class Settings(Model):
    table_name: str = Field(default="paybridge", description="DynamoDB single table")
    state_machine_arn: str = Field(default="", description="Payment lifecycle state machine")
    tenants_source: Literal["dynamodb", "file"] = "dynamodb"
    tenants_file: str = ""
    public_base_url: str = Field(default="", description="Base URL of our HTTP API, for providers' notification URLs")
    stage: str = "dev"
    event_retention_days: int = 400
    crm_outbox_url: str = Field(default="", description="SQS FIFO queue of CRM writes (one group per deal)")
    crm_outbox_dlq_url: str = Field(default="", description="Where CRM writes that cannot succeed are parked")
    event_bus_name: str = Field(default="", description="The EventBridge bus of domain events (none: not published)")
    webhook_delivery_url: str = Field(default="", description="SQS queue of webhook deliveries")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    env = os.environ
    return Settings(
        table_name=env.get("TABLE_NAME", "paybridge"),
        state_machine_arn=env.get("STATE_MACHINE_ARN", ""),
        tenants_source="file" if env.get("PAYBRIDGE_TENANTS") else "dynamodb",
        tenants_file=env.get("PAYBRIDGE_TENANTS", ""),
        public_base_url=env.get("PUBLIC_BASE_URL", "").rstrip("/"),
        stage=env.get("STAGE", "dev"),
        crm_outbox_url=env.get("CRM_OUTBOX_URL", ""),
        crm_outbox_dlq_url=env.get("CRM_OUTBOX_DLQ_URL", ""),
        event_bus_name=env.get("EVENT_BUS_NAME", ""),
        webhook_delivery_url=env.get("WEBHOOK_DELIVERY_URL", ""),
    )
