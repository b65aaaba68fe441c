"""The request model of a person's erasure request (`POST /v1/{tenant}/customers/erase`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from paybridge.domain.invoice import Email, Phone
from paybridge.http.api_model import ApiModel


class EraseCustomerBody(ApiModel):
    """One person's request to be forgotten: named by at least one of e-mail, phone, INN."""

    model_config = ConfigDict(extra="forbid")
    email: Email | None = None
    phone: Phone | None = None
    inn: str | None = Field(default=None, pattern=r"^\d{10}(\d{2})?$")
    reason: str = Field(min_length=3, max_length=500, description="Why (e.g. the request's reference)")

    @model_validator(mode="after")
    def _someone(self) -> EraseCustomerBody:
        if not (self.email or self.phone or self.inn):
            raise ValueError("name the person by email, phone or inn")
        return self
