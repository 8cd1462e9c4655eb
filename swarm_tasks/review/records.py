"""Base of the review's records: pydantic models with explicit JSON encode and decode."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError

from swarm_tasks.errors import ReviewError


class Record(BaseModel):
    """A review record. Unknown fields are refused so a renamed field fails loudly on decode."""

    model_config = ConfigDict(extra="forbid")

    def encode(self) -> bytes:
        """The record as UTF-8 JSON bytes."""
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes | str) -> Self:
        """Parse JSON produced by :meth:`encode`; :class:`ReviewError` naming the first bad field."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "value"
            raise ReviewError(f"invalid {cls.__name__}: {where}: {first.get('msg')}") from None
