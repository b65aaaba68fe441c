"""Reading JSON from the outside safely: every failure is a `ValueError` (never a `RecursionError` from deep nesting,
nor a `UnicodeDecodeError` that callers forget), nesting is bounded, and NaN/Infinity are refused."""

from __future__ import annotations

import json
import re
from typing import Any

#: Deeper than anything a provider, a CRM or a client of ours sends; far below Python's recursion limit.
MAX_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


class JsonError(ValueError):
    """The bytes are not acceptable JSON; the message says why (without echoing the input)."""


def nesting_depth(data: bytes) -> int:
    """The deepest `[`/`{` nesting, counted without recursion (strings are skipped, so brackets inside them don't
    count)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", data)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def loads_json(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonError("the body is not UTF-8") from None
    if nesting_depth(raw) > max_depth:
        raise JsonError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except JsonError:
        raise
    except (ValueError, RecursionError) as exc:  # int digit limit, bad syntax; RecursionError cannot pass the check
        raise JsonError(f"not valid JSON: {type(exc).__name__}") from None
