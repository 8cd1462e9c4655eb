"""Source files as records, and reading them back: decoding, line counting, evidence quotes."""

from __future__ import annotations

import codecs
import io
import os
import tokenize
from pathlib import Path

from pydantic import Field

from swarm_tasks.errors import ReviewError
from swarm_tasks.review.enums import FileOrigin, SkipReason
from swarm_tasks.review.languages import Language
from swarm_tasks.review.records import Record

REPLACED = "utf-8-replaced"


def display_path(fs_path: str) -> str:
    """A path fit for JSON and reports: undecodable name bytes become ``\\xNN``."""
    return os.fsencode(fs_path).decode("utf-8", "backslashreplace")


class SourceFile(Record):
    """One file to review. ``path`` is POSIX and relative to the repository root, except for files
    under a third-party root outside the repository, whose ``path`` is absolute."""

    path: str
    raw_path_hex: str | None = Field(default=None, description="The path's bytes when it is not valid UTF-8.")
    language: Language
    size: int = Field(ge=0)
    line_count: int = Field(ge=0)
    sha256: str
    encoding: str = "utf-8"
    origin: FileOrigin = FileOrigin.REPOSITORY
    package: str | None = None

    def abs_path(self, root: Path) -> Path:
        """Where the file is on disk (``root`` is ignored for absolute paths)."""
        rel = os.fsdecode(bytes.fromhex(self.raw_path_hex)) if self.raw_path_hex else self.path
        return root / rel


class SkippedPath(Record):
    """A file or directory the inventory left out, and why."""

    path: str
    reason: SkipReason
    detail: str = ""
    is_dir: bool = False


def fs_relpath(fs_rel: str) -> tuple[str, str | None]:
    """(display path, raw hex or None) for a relative path as the OS gave it."""
    shown = display_path(fs_rel)
    if shown == fs_rel:
        return fs_rel, None
    return shown, os.fsencode(fs_rel).hex()


def decode_source(data: bytes, language: Language) -> tuple[str, str]:
    """(text, encoding) of a source file. Python honours PEP 263 cookies; undecodable bytes become U+FFFD
    and the encoding is reported as ``utf-8-replaced``."""
    encoding = "utf-8"
    if language is Language.PYTHON:
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError:
            encoding = "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        data, encoding = data[len(codecs.BOM_UTF8):], "utf-8"
    if encoding == "utf-8-sig":
        encoding = "utf-8"
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError):
        return data.decode("utf-8", "replace"), REPLACED


def count_lines(text: str) -> int:
    """Lines as an editor numbers them (a final line without newline counts)."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def read_source(root: Path, file: SourceFile) -> str:
    """The decoded text of ``file``; :class:`ReviewError` if it cannot be read any more."""
    try:
        data = file.abs_path(root).read_bytes()
    except OSError as exc:
        raise ReviewError(f"cannot read {file.path}: {exc.strerror or exc}") from None
    if file.encoding == REPLACED:
        return data.decode("utf-8", "replace")
    return decode_source(data, file.language)[0]


def quote_lines(lines: list[str], start: int, end: int, max_lines: int) -> str:
    """The code lines ``start``..``end`` (1-based, inclusive), at most ``max_lines`` of them."""
    if start < 1 or start > len(lines):
        return ""
    end = max(start, min(end, len(lines), start + max_lines - 1))
    return "\n".join(line.rstrip() for line in lines[start - 1:end])
