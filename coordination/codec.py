"""Explicit encode/decode of typed records, with the errors the store contract promises."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, JsonValue, ValidationError
from pydantic_core import PydanticSerializationError

from coordination.errors import InvalidIdentifier, InvalidRecord, MalformedRecord, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)


def encode(model: BaseModel, *, limit: int | None = None, what: str = "record") -> bytes:
    """JSON bytes of ``model``; :class:`PayloadTooLarge` past ``limit``, :class:`InvalidRecord` if a
    value (a task result, say) cannot be written as JSON."""
    try:
        data = model.model_dump_json(exclude_none=False).encode()
    except PydanticSerializationError as exc:
        raise InvalidRecord(f"{what} cannot be stored as JSON: {exc}") from None
    if limit is not None and len(data) > limit:
        raise PayloadTooLarge(what, len(data), limit)
    return data


def decode(cls: type[M], data: bytes | str, *, key: str) -> M:
    """Parse and validate stored bytes; :class:`MalformedRecord` if they are not a valid ``cls``."""
    try:
        return cls.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        raise MalformedRecord(key, f"{cls.__name__}: {where}: {first.get('msg')}") from None


def build(cls: type[M], **fields: object) -> M:
    """Construct a record from caller input; :class:`InvalidRecord` naming the bad field
    (:class:`InvalidIdentifier` when the bad field is an identifier)."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        for err in exc.errors():
            # pydantic wraps our validators' InvalidIdentifier; callers are promised the original.
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, InvalidIdentifier):
                raise InvalidIdentifier(str(cause)) from None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())) or 'value'}: {err.get('msg')}" for err in exc.errors())
        raise InvalidRecord(f"invalid {cls.__name__}: {problems}") from None


def loads(text: str | bytes) -> JsonValue:
    """JSON from outside (a model's tool-call arguments, a reviewed repository's ``package.json``).
    :class:`ValueError` for anything that is not JSON, nesting too deep to parse included: Python's parser
    recurses per level, and a RecursionError must not escape as if it were our bug."""
    try:
        return json.loads(text)  # type: ignore[no-any-return]
    except RecursionError:
        raise ValueError("the JSON nests too deeply to parse") from None
