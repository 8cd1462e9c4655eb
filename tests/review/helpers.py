"""Helpers for the review tests: small repositories written into tmp_path."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.inventory import describe_file
from swarm_tasks.review.source import SourceFile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vulnerable-shop"


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative path -> content) under ``root``; return ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def source(root: Path, rel: str, content: str | bytes | None = None, config: ReviewConfig | None = None) -> SourceFile:
    """The SourceFile of ``root/rel`` (written first when ``content`` is given)."""
    if content is not None:
        write_tree(root, {rel: content})
    described = describe_file(root, rel, config or ReviewConfig())
    assert isinstance(described, SourceFile), described
    return described
