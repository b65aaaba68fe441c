"""Sending messages to clients: one small interface, a sender per channel chosen by the tenant's configuration.

- e-mail through Amazon SES v2 (`SendEmail`, simple content);
- the sandbox (any channel): the message lands in the sandbox CRM's client messages, where tests and people see it.
SMS and messengers are pluggable the same way (an SMS gateway or a messenger API is one more sender).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import Field

from paybridge.adapters.errors import AdapterError
from paybridge.adapters.http import make_client, send
from paybridge.adapters.registry import SENDERS, AdapterContext
from paybridge.adapters.settings import (
    HttpUrl,
    SecretRef,
    SenderSettingsBase,
)


class SesSenderSettings(SenderSettingsBase):
    """E-mail through Amazon SES v2 (the from address or its domain must be verified in SES)."""

    kind: Literal["ses"]
    from_address: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    configuration_set: str | None = None


class SandboxSenderSettings(SenderSettingsBase):
    """The local sandbox: messages land in the sandbox CRM's client messages (any channel)."""

    kind: Literal["sandbox"]
    base_url: HttpUrl
    token: SecretRef = Field(description="the sandbox sender's API token")


class SendFailed(AdapterError):
    """The message could not be sent now; the reminder stays due."""


class MessageSender(Protocol):
    def send(self, to: str, subject: str, text: str, deal_id: str) -> None: ...


class SesEmailSender:
    def __init__(self, from_address: str, configuration_set: str | None = None, client: Any = None):
        self._from, self._set, self._client = from_address, configuration_set, client

    def send(self, to: str, subject: str, text: str, deal_id: str) -> None:
        if self._client is None:
            import boto3  # lazy: only tenants that e-mail need it

            self._client = boto3.client("sesv2")
        request: dict[str, Any] = {
            "FromEmailAddress": self._from,
            "Destination": {"ToAddresses": [to]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"}},
                }
            },
        }
        if self._set:
            request["ConfigurationSetName"] = self._set
        try:
            self._client.send_email(**request)
        except Exception as exc:  # botocore's errors: throttling, an unverified identity — all "not now"
            raise SendFailed(f"SES: {exc}") from exc


class SandboxSender:
    def __init__(self, base_url: str, token: str, channel: str, transport: Any = None):
        self._http = make_client(base_url.rstrip("/"), {"Authorization": f"Bearer {token}"}, transport)
        self._channel = channel

    def send(self, to: str, subject: str, text: str, deal_id: str) -> None:
        key = "to_email" if self._channel == "email" else "to_phone"
        body = {"deal_id": deal_id, key: to, "text": f"[{self._channel}] {text}"}
        send(self._http, "POST", "/api/messages", transient=SendFailed, permanent=SendFailed, json=body)


def _build_ses(settings: SesSenderSettings, context: AdapterContext) -> SesEmailSender:
    return SesEmailSender(settings.from_address, settings.configuration_set)


def _build_sandbox(settings: SandboxSenderSettings, context: AdapterContext) -> SandboxSender:
    return SandboxSender(settings.base_url, context.secret(settings.token), context.channel)


SENDERS.register("ses", SesSenderSettings, _build_ses)
SENDERS.register("sandbox", SandboxSenderSettings, _build_sandbox)
