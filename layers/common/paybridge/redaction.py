"""Secrets never reach the logs: every secret value we resolve or receive (PSP passwords and keys, CRM tokens, OAuth
token pairs, incoming-webhook URLs) is registered here, and every log line — ours, Powertools', httpx's — is
written through `RedactingFormatter`, which replaces registered values, credential-looking fields (`password=…`,
`"refresh_token": "…"`, `Authorization: Bearer …`, `X-Api-Key: …`), e-mail addresses and phone numbers with `***`.
It wraps the output of whatever formatter a handler has, so messages, arguments, exception texts and structured
extras are all covered. `install()` is idempotent; `paybridge.observability` calls it at import."""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
#: Shorter values are not registered: masking "1" or "ok" everywhere would garble logs without protecting anything.
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_secrets_pattern: re.Pattern[str] | None = None

_CREDENTIAL_NAMES = (
    r"password|passwd|secret|client_secret|webhook_secret|refresh_token|access_token|id_token|token|api[_-]?key|"
    r"x-api-key|authorization|application_token|auth\[application_token\]|auth\[access_token\]|"
    r"auth\[refresh_token\]|Token|RebillId|sig|signature|x-sandbox-signature|stripe-signature"
)
#: name=value (query strings, forms), "name": "value" (JSON), name: value (headers)
_FIELDS = re.compile(
    rf"""(?ix)
    (?P<name>["']?(?:{_CREDENTIAL_NAMES})["']?)
    (?P<sep>\s*[:=]\s*(?:["']|(?:Bearer|Basic)\s+)?)
    (?P<value>[^"'&\s,;}}\]]+)
    """
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w/])\+\d[\d\s()-]{7,17}\d")
#: Bitrix24 incoming webhooks carry their secret in the path: /rest/<user>/<secret>/
_BITRIX_WEBHOOK = re.compile(r"(/rest/\d+/)([A-Za-z0-9]{8,})")


def register_secret(value: str | None) -> None:
    """Mask `value` (and its form without a trailing slash) in every log line from now on."""
    global _secrets_pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    candidates = {value, value.rstrip("/")} - _secrets
    candidates = {c for c in candidates if len(c) >= MIN_SECRET_LENGTH}
    if not candidates:
        return
    with _lock:
        _secrets.update(candidates)
        ordered = sorted(_secrets, key=len, reverse=True)  # the longest first: a URL before a token inside it
        _secrets_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _BITRIX_WEBHOOK.sub(rf"\1{MASK}", text)
    text = _FIELDS.sub(lambda m: f"{m.group('name')}{m.group('sep')}{MASK}", text)
    text = _EMAIL.sub(MASK, text)
    return _PHONE.sub(MASK, text)


class RedactingFormatter(logging.Formatter):
    """Marks a formatter whose output is redacted (see `protect`)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_redacting_classes: dict[type[logging.Formatter], type[logging.Formatter]] = {}


def _redacting(cls: type[logging.Formatter]) -> type[logging.Formatter]:
    """`cls` with its output redacted — a subclass, so that `isinstance` checks (Powertools' own formatter: the
    correlation id, appended keys) keep working."""
    if issubclass(cls, RedactingFormatter):
        return cls
    if cls not in _redacting_classes:
        _redacting_classes[cls] = type(f"Redacting{cls.__name__}", (RedactingFormatter, cls), {})
    return _redacting_classes[cls]


def protect(handler: logging.Handler) -> None:
    """Make the handler's formatter (or a plain one) redact everything it formats, keeping its configuration."""
    formatter = handler.formatter
    if formatter is None:
        handler.setFormatter(RedactingFormatter())
    elif not isinstance(formatter, RedactingFormatter):
        formatter.__class__ = _redacting(type(formatter))


#: Loggers whose records may carry URLs, headers or bodies: their own handlers are protected too.
WATCHED = ("httpx", "httpcore", "paybridge", "devstack", "botocore", "urllib3")


def install(*loggers: logging.Logger) -> None:
    """Protect the handlers of the root logger, of `loggers` (e.g. the Powertools logger) and of WATCHED."""
    targets = [logging.getLogger(), *(logging.getLogger(name) for name in WATCHED), *loggers]
    for target in targets:
        for handler in target.handlers:
            protect(handler)
