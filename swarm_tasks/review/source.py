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
from swarm_tasks.review.scope import OutsideRoot, repo_scope

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


def source_path(root: Path, file: SourceFile) -> Path:
    """Where ``file`` really is, confined to the repository (see :mod:`swarm_tasks.review.scope`);
    :class:`ReviewError` when it leads outside. An absolute path is a third-party file under a configured
    root, admitted by ``describe_file``'s scope check; only those are taken as given."""
    if Path(file.path).is_absolute():
        if file.origin is not FileOrigin.THIRD_PARTY:
            raise OutsideRoot(file.path, symlink=False)
        return file.abs_path(root)
    return repo_scope(root).resolve(file.abs_path(root).relative_to(root))


def read_bytes_confined(root: Path, file: SourceFile, limit: int = -1) -> bytes:
    """The bytes of ``file`` (at most ``limit``), read only inside the repository; :class:`ReviewError`
    when it cannot be read or leads outside."""
    try:
        if Path(file.path).is_absolute():
            with source_path(root, file).open("rb") as fh:
                return fh.read(limit)
        return repo_scope(root).read_bytes(file.abs_path(root).relative_to(root), limit)
    except OSError as exc:
        raise ReviewError(f"cannot read {file.path}: {exc.strerror or exc}") from None


def read_source(root: Path, file: SourceFile) -> str:
    """The decoded text of ``file``; :class:`ReviewError` if it cannot be read any more (or leads outside
    the repository: then nothing of it is quoted anywhere)."""
    data = read_bytes_confined(root, file)
    if file.encoding == REPLACED:
        return data.decode("utf-8", "replace")
    return decode_source(data, file.language)[0]


def quote_lines(lines: list[str], start: int, end: int, max_lines: int) -> str:
    """The code lines ``start``..``end`` (1-based, inclusive), at most ``max_lines`` of them."""
    if start < 1 or start > len(lines):
        return ""
    end = max(start, min(end, len(lines), start + max_lines - 1))
    return "\n".join(line.rstrip() for line in lines[start - 1:end])
