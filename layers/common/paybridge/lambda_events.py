"""The Lambda event parsed into the handler's pydantic model, without Powertools' Parser package.

`event_parser(model=M)` does what `aws_lambda_powertools.utilities.parser.event_parser` does without an envelope —
the event (a dict, or a JSON string) validated into `M`, a `pydantic.ValidationError` when it does not fit — at a
fraction of the import: the Parser package loads `importlib.metadata` and every event model Powertools ships,
about 50 ms of each cold start. SQS events use the small models below instead of Parser's `SqsModel`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from paybridge.domain.model import Model

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


def event_parser(*, model: type[M]) -> Callable[[Callable[[M, Any], R]], Callable[[Any, Any], R]]:
    def decorate(handler: Callable[[M, Any], R]) -> Callable[[Any, Any], R]:
        @functools.wraps(handler)
        def parsed(event: Any, context: Any) -> R:
            value = model.model_validate_json(event) if isinstance(event, str | bytes) else model.model_validate(event)
            return handler(value, context)

        return parsed

    return decorate


class SqsAttributes(Model):
    """What the CRM outbox consumer reads of an SQS record's attributes (FIFO: the group; the receive count)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    ApproximateReceiveCount: str = "1"
    MessageGroupId: str | None = None


class SqsRecord(Model):
    model_config = ConfigDict(extra="allow", frozen=True)
    messageId: str
    receiptHandle: str
    body: str
    attributes: SqsAttributes = Field(default_factory=SqsAttributes)


class SqsEvent(Model):
    model_config = ConfigDict(extra="allow", frozen=True)
    Records: list[SqsRecord]
