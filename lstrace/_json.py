"""JSON encoding and decoding on the delivery path: orjson, with the standard library behind it.

Every captured call is encoded into the spool, decoded from it and encoded again
as an import body; orjson does each several times faster than :mod:`json`, and its
compact output is byte for byte what ``json.dumps(..., ensure_ascii=False,
separators=(",", ":"))`` writes for the strings, integers, lists and objects a task
holds (floats may be spelled differently, e.g. ``1e16`` for ``1e+16``: the same
number). What orjson refuses (integers beyond 64 bits, non-string keys, lone
surrogates) goes through :mod:`json` as before. NaN and infinities, which strict
JSON cannot hold, become ``null``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_dumps = orjson.dumps
_loads = orjson.loads
_Refused = orjson.JSONEncodeError


def dumps(value: Any) -> str:
    """``value`` as compact JSON text (what the spool stores)."""
    try:
        return _dumps(value).decode()
    except _Refused:  # ASCII escapes: SQLite cannot store a lone surrogate unescaped
        return json.dumps(value, separators=(",", ":"))


def encode(value: Any) -> bytes:
    """``value`` as a compact UTF-8 JSON request body. Raises ``ValueError`` or
    ``TypeError`` for what JSON cannot hold (lone surrogates, unknown types)."""
    try:
        return _dumps(value)
    except _Refused:
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()


def loads(text: str | bytes) -> Any:
    """The value of JSON text (the spool's, or a response body's)."""
    try:
        return _loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # NaN/Infinity written by json.dumps into older spools
