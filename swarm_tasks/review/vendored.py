"""Vendored and generated code recognised by content, not only by name.

A file is someone else's code, or a machine's, when it

- is a lock file (``package-lock.json``, ``poetry.lock``, ...);
- is the unminified twin of a ``.min.js`` beside it (a bundled library ships both);
- opens with a bundled library's license banner or version header (``/*! jQuery v3.7.1 | (c) OpenJS``,
  ``@license``, ``Bootstrap v5.3.2 (https://getbootstrap.com/)``, a name with a version and a license);
- is a bundle: a UMD or webpack/browserify wrapper, or build output pointing at its source map;
- is byte-identical to a file of an installed package (``node_modules``, ``site-packages``).

Each answer is the reason the inventory gives in the report's skipped section. A project's own file with
only a license header (``Licensed under the Apache License, Version 2.0``) is not vendored: a bundled
library's header names a version ``x.y.z``. Everything here reads at most the first and last few
kilobytes of a file and stats a handful of paths.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

LOCK_FILES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "poetry.lock",
    "Pipfile.lock", "pdm.lock", "uv.lock", "Cargo.lock", "composer.lock", "Gemfile.lock", "go.sum",
})
HEAD_CHARS = 1500
_VERSION = r"v?\d+\.\d+\.\d+(?:[-+][\w.]+)?"
_FIRST_COMMENT = re.compile(r"\A(?:\s|#![^\n]*\n|['\"]use strict['\"];?)*(/\*[\s\S]*?\*/|(?://[^\n]*\n\s*)+)")
_NAMED_VERSION = re.compile(rf"(?P<name>[A-Za-z@][\w.@/-]{{1,40}}(?: [A-Z][\w.-]{{1,20}})?)(?:\.js)?\s*"
                            rf"(?:[-:|]\s*)?(?:JavaScript Library\s+)?(?P<version>{_VERSION})\b")
_LICENSE = re.compile(r"\b(?:MIT|BSD|Apache|ISC|GPL|MPL|licen[cs]e[ds]?|copyright)\b|\(c\)|©", re.IGNORECASE)
_BUNDLES = (
    ("UMD bundle", re.compile(r"typeof exports\s*===?\s*['\"]object['\"]\s*&&\s*typeof module\s*!==?\s*"
                              r"['\"]undefined['\"]|typeof define\s*===?\s*['\"]function['\"]\s*&&\s*define\.amd")),
    ("webpack bundle", re.compile(r"webpackBootstrap|__webpack_require__|webpackChunk")),
    ("browserify bundle", re.compile(r"^\(function\(\)\{function r\(e,n,t\)\{function o\(i,f\)")),
    ("esbuild/rollup bundle", re.compile(r"^(?:var|const) __defProp = Object\.defineProperty|Rollup|esbuild")),
)
_SOURCE_MAP = re.compile(r"^[/#*@ ]*[#@] sourceMappingURL=\S+\.map\s*(?:\*/)?\s*$", re.MULTILINE)
_MIN_SUFFIXES = (".min", "-min")


def lock_file(name: str) -> str | None:
    """``lock file`` for a package manager's lock file."""
    return f"lock file ({name})" if name in LOCK_FILES else None


def minified_twin(path: Path) -> str | None:
    """The reason when ``x.js`` has an ``x.min.js`` (or ``x-min.js``) beside it: the pair a bundled library
    ships. A ``.min`` file itself is left to the minified check."""
    stem, suffix = path.stem, path.suffix
    if stem.endswith(_MIN_SUFFIXES):
        return None
    for mark in _MIN_SUFFIXES:
        twin = path.with_name(f"{stem}{mark}{suffix}")
        if twin.is_file():
            return f"unminified twin of the bundled {twin.name} beside it"
    return None


def license_banner(text: str) -> str | None:
    """The bundled library a file's opening comment names with its version and license, if any."""
    match = _FIRST_COMMENT.match(text[:HEAD_CHARS])
    if match is None:
        return None
    comment = match.group(1)
    named = _NAMED_VERSION.search(comment)
    if named is None:
        return None
    library = f"{named.group('name')} {named.group('version')}"
    if comment.startswith("/*!") or "@license" in comment or "@preserve" in comment:
        return f"license banner of a bundled library ({library})"
    if _LICENSE.search(comment):
        return f"version header of a bundled library ({library})"
    return None


def bundle_signature(text: str) -> str | None:
    """Which bundler made this file, when its head or tail says so."""
    head, tail = text[:4000], text[-600:]
    for name, pattern in _BUNDLES:
        if pattern.search(head):
            return f"{name} (build output)"
    if _SOURCE_MAP.search(tail):
        return "build output with a source map"
    return None


def identical_installed(path: Path, sha256: str, size: int, node_roots: list[Path]) -> str | None:
    """The installed package file ``path`` is a byte-identical copy of (same name, same size and hash),
    looked for in the usual places of each ``node_modules``: a package's root, ``dist/``, ``lib/``,
    ``build/``, ``umd/``."""
    name = path.name
    for root in node_roots:
        top = root.resolve()
        for pattern in (f"*/{name}", f"*/*/{name}", f"@*/*/{name}", f"@*/*/*/{name}"):
            for candidate in root.glob(pattern):
                try:
                    if not candidate.resolve().is_relative_to(top):  # a link out of node_modules is not read
                        continue
                    if candidate.stat().st_size != size:
                        continue
                    digest = hashlib.sha256(candidate.read_bytes()).hexdigest()
                except OSError:
                    continue
                if digest == sha256:
                    return f"identical to the installed {candidate.relative_to(root.parent).as_posix()}"
    return None


def vendored_reason(path: Path, text: str) -> str | None:
    """Why a JS/TS file is vendored, or None: twin, banner (the cheap checks; see also
    :func:`identical_installed` and :func:`bundle_signature`)."""
    return minified_twin(path) or license_banner(text)
