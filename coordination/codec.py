"""Explicit encode/decode of typed records, with the errors the store contract promises."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from coordination.errors import InvalidRecord, MalformedRecord, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)


def encode(model: BaseModel, *, limit: int | None = None, what: str = "record") -> bytes:
    """JSON bytes of ``model``; :class:`PayloadTooLarge` past ``limit``."""
    data = model.model_dump_json(exclude_none=False).encode()
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
    """Construct a record from caller input; :class:`InvalidRecord` naming the bad field."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())) or 'value'}: {err.get('msg')}" for err in exc.errors())
        raise InvalidRecord(f"invalid {cls.__name__}: {problems}") from None
