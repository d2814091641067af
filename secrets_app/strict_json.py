"""JSON as the console reads it from anyone, and writes it: RFC 8259, strictly.

Python's `json` module reads more than RFC 8259 allows, and writes it back: `NaN`, `Infinity` and
`-Infinity`, numbers too large for a double (`1e400` becomes infinity), and an object naming a
member twice (the last one wins, so two readers may see two different documents). Here each of
those is refused with a `JsonRefused` that says which rule was broken, as are integers beyond
Python's own conversion limit (4,300 digits), documents nested deeper than MAX_DEPTH and bytes
that are not UTF-8. What `dumps` writes is strict JSON too. Standard library only.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

MAX_DEPTH = 64
TOO_DEEP = f"The JSON document is nested more than {MAX_DEPTH} levels deep."
# Python refuses to convert longer digit strings to int (sys.int_max_str_digits, 4,300 by default).
MAX_INTEGER_DIGITS = sys.get_int_max_str_digits() or 4300


class JsonRefused(ValueError):
    """The text is not JSON, or not JSON the console accepts; the message says why, never quoting it."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JsonRefused(f"A number has more than {MAX_INTEGER_DIGITS} digits.")
    return int(text)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonRefused("A number is too large (JSON numbers here must fit a 64-bit float).")
    return number


def _not_a_number(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number (RFC 8259).")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise JsonRefused("An object names the same member twice.")
    return document


class _Refused(json.JSONDecodeError):
    """A rule of this module broken, as `json` reports a decoding error."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(reason, text, 0)
        self.reason = reason


class Decoder(json.JSONDecoder):
    """`json.JSONDecoder` with these rules. A refusal is a JSONDecodeError, so that code written
    for `json` (Django's JSON form field) reports it as invalid JSON; its `msg` says why."""

    def __init__(self, **options: Any) -> None:
        super().__init__(
            parse_int=_integer, parse_float=_finite, parse_constant=_not_a_number, object_pairs_hook=_object, **options
        )

    def decode(self, text: str, *args: Any) -> Any:
        try:
            document = super().decode(text, *args)
        except JsonRefused as refused:
            raise _Refused(str(refused), text) from None
        except RecursionError:
            raise _Refused(TOO_DEEP, text) from None
        if depth_exceeds(document):
            raise _Refused(TOO_DEEP, text)
        return document


def loads(text: bytes | str) -> Any:
    """The JSON document in `text` (UTF-8 bytes or str), or JsonRefused."""
    try:
        return json.loads(text, cls=Decoder)
    except _Refused as refused:
        raise JsonRefused(refused.reason) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise JsonRefused("The text is not valid JSON.") from None


def dumps(document: Any, **options: Any) -> str:
    """`document` as strict JSON (ValueError for a number JSON cannot write)."""
    return json.dumps(document, allow_nan=False, **options)


def depth_exceeds(document: object, limit: int = MAX_DEPTH) -> bool:
    """Is this JSON document nested more than `limit` levels deep? (Checked without recursion.)"""
    pending = [(document, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


# Why a text cannot be stored: PostgreSQL can neither store nor compare NUL, and a lone surrogate
# (which JSON's \ud800 escapes can make) is not Unicode text and cannot be encoded.
NUL = "nul"
LONE_SURROGATE = "lone_surrogate"


def text_problem(text: str) -> str | None:
    """NUL or LONE_SURROGATE if `text` cannot be stored as text, else None."""
    if "\x00" in text:
        return NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return LONE_SURROGATE
    return None


def unstorable_text(document: object) -> str | None:
    """The `text_problem` of the first string of this document (key or value) that has one, or None."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None
