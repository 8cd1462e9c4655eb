"""Which files are source code, and in which language: by extension, then by shebang."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import PurePosixPath


class Language(StrEnum):
    """Languages the review understands."""

    PYTHON = "python"
    JAVASCRIPT = "javascript"
    TYPESCRIPT = "typescript"


EXTENSIONS: dict[str, Language] = {
    ".py": Language.PYTHON,
    ".pyw": Language.PYTHON,
    ".pyi": Language.PYTHON,
    ".js": Language.JAVASCRIPT,
    ".mjs": Language.JAVASCRIPT,
    ".cjs": Language.JAVASCRIPT,
    ".jsx": Language.JAVASCRIPT,
    ".ts": Language.TYPESCRIPT,
    ".mts": Language.TYPESCRIPT,
    ".cts": Language.TYPESCRIPT,
    ".tsx": Language.TYPESCRIPT,
}

# Extensions that are never text: skipped as binary without opening them.
BINARY_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".pdf", ".zip", ".gz", ".tgz", ".bz2",
    ".xz", ".7z", ".tar", ".whl", ".egg", ".jar", ".class", ".so", ".dylib", ".dll", ".exe", ".o", ".a",
    ".pyc", ".pyo", ".pyd", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp3", ".mp4", ".wav", ".ogg",
    ".sqlite", ".db", ".bin", ".dat", ".npy", ".npz", ".pkl", ".pickle",
})

JS_FAMILY = frozenset({Language.JAVASCRIPT, Language.TYPESCRIPT})

_SHEBANG = re.compile(rb"^#!\s*(?:/usr/bin/env\s+(?:-S\s+)?)?\S*?(python[0-9.]*|node|nodejs|deno|ts-node)\b")


def language_for_name(name: str) -> Language | None:
    """The language of a file by its name alone, or None."""
    return EXTENSIONS.get(PurePosixPath(name).suffix.lower())


def language_for_shebang(head: bytes) -> Language | None:
    """The language named by a script's ``#!`` line, for files without an extension."""
    match = _SHEBANG.match(head)
    if match is None:
        return None
    interpreter = match.group(1).decode()
    if interpreter.startswith("python"):
        return Language.PYTHON
    if interpreter == "ts-node":
        return Language.TYPESCRIPT
    return Language.JAVASCRIPT


def is_binary_name(name: str) -> bool:
    """True for extensions that are binary formats."""
    return PurePosixPath(name).suffix.lower() in BINARY_EXTENSIONS


def looks_binary(head: bytes) -> bool:
    """True when the first bytes of a file are not text: a NUL byte, or mostly control bytes."""
    if not head:
        return False
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return control / len(head) > 0.1
