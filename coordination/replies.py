"""Replies of Redis as the types this package uses.

Every client this package makes leaves ``decode_responses`` off (see :mod:`coordination.connection`), so
Redis answers bytes, and stream reads in RESP2's list form. redis-py's annotations cover both modes
(``bytes | str``) and every stream read as optional; these helpers are the one place that narrows them,
so the rest of the package reads replies without a cast of its own (and is type-checked strictly).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

Fields = dict[bytes, bytes]
StreamEntry = tuple[bytes, Fields]


def text(value: bytes | str) -> str:
    """A reply element as text (UTF-8)."""
    return value.decode() if isinstance(value, bytes) else value


def texts(values: object) -> list[str]:
    """Members of a set, or of a sorted-set range read without scores, as text, in the order given."""
    return [text(value) for value in cast(Iterable[bytes | str], values)]


def blob(value: bytes | str | None) -> bytes | None:
    """A reply element as bytes (None stays None: an absent field)."""
    return value.encode() if isinstance(value, str) else value


def range_entries(reply: object) -> list[StreamEntry]:
    """The entries of an XRANGE or XREVRANGE reply, ``(id, fields)`` each."""
    return cast(list[StreamEntry], reply or [])


def read_entries(reply: object) -> list[tuple[bytes, list[StreamEntry]]]:
    """An XREAD or XREADGROUP reply: ``(stream, entries)`` per stream (none when it timed out)."""
    return cast(list[tuple[bytes, list[StreamEntry]]], reply or [])


__all__ = ["Fields", "StreamEntry", "blob", "range_entries", "read_entries", "text", "texts"]
