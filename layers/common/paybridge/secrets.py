"""Secrets: inline for the local stack, from Secrets Manager (Powertools Parameters, cached 5 min) when deployed."""

from __future__ import annotations

from paybridge.adapters.settings import SecretRef

CACHE_SECONDS = 300


def resolve_secret(ref: SecretRef) -> str:
    if ref.value is not None:
        return ref.value
    from aws_lambda_powertools.utilities import parameters  # lazy: only deployed tenants need it

    value = parameters.get_secret(str(ref.secret_name), max_age=CACHE_SECONDS)
    return value if isinstance(value, str) else value.decode()
