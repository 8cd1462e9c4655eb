"""Identifiers that sort by creation time (so FIFO order falls out of lexicographic order)."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    """``prefix-`` + 12 hex digits of milliseconds + 8 random hex digits, e.g. ``t-019a2b3c4d5e1f2e3d4c``."""
    return f"{prefix}-{int(time.time() * 1000):012x}{secrets.token_hex(4)}"
