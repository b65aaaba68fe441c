"""Secrets: inline for the local stack, from Secrets Manager (Powertools Parameters, cached 5 min) when deployed."""

from __future__ import annotations

from paybridge.adapters.settings import SecretRef
from paybridge.redaction import register_secret

CACHE_SECONDS = 300


def resolve_secret(ref: SecretRef) -> str:
    """The secret's value, registered for redaction: it never appears in a log line."""
    if ref.value is not None:
        register_secret(ref.value)
        return ref.value
    from aws_lambda_powertools.utilities import parameters  # lazy: only deployed tenants need it

    value = parameters.get_secret(str(ref.secret_name), max_age=CACHE_SECONDS)
    text = value if isinstance(value, str) else value.decode()
    register_secret(text)
    return text
