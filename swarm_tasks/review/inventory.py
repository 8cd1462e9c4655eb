"""Walk a repository and list its source files, with every skipped path and the reason it was skipped.

Symlinks are never followed (a link to a file inside the root is reviewed at its real path; one out of
the root is not reviewed at all), which also makes symlink loops harmless. Non-UTF-8 file names are
kept: ``SourceFile.raw_path_hex`` remembers their bytes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pathspec import GitIgnoreSpec
from pydantic import Field, PrivateAttr

from swarm_tasks.errors import GitError, ReviewError
from swarm_tasks.host.gitread import changed_since
from swarm_tasks.review import vendored
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import FileOrigin, SkipReason
from swarm_tasks.review.languages import (
    Language,
    is_binary_name,
    language_for_name,
    language_for_shebang,
    looks_binary,
)
from swarm_tasks.review.records import Record
from swarm_tasks.review.scope import SYMLINK_OUT, OutsideRoot, scope_for
from swarm_tasks.review.source import SkippedPath, SourceFile, count_lines, decode_source, fs_relpath

SNIFF_BYTES = 8192


class ThirdPartyRoots(Record):
    """Directories holding installed third-party code: Python site-packages and node_modules."""

    python: list[str] = Field(default_factory=list)
    node: list[str] = Field(default_factory=list)


class Inventory(Record):
    """The repository's reviewable files and what was left out."""

    root: str
    files: list[SourceFile] = Field(default_factory=list)
    skipped: list[SkippedPath] = Field(default_factory=list)
    third_party: ThirdPartyRoots = Field(default_factory=ThirdPartyRoots)
    changed: list[str] | None = Field(default=None, description="With ReviewConfig.since: the files changed "
                                      "since that ref, the only ones scanned (all files stay for imports).")

    _by_path: dict[str, SourceFile] | None = PrivateAttr(default=None)

    def by_path(self) -> dict[str, SourceFile]:
        """Files keyed by their path (built once: a batch scan looks up 100 files in an inventory of 20,000)."""
        if self._by_path is None:
            self._by_path = {f.path: f for f in self.files}
        return self._by_path

    def to_scan(self) -> list[SourceFile]:
        """The files the review starts from: every file, or only those changed since ``config.since``."""
        if self.changed is None:
            return list(self.files)
        wanted = set(self.changed)
        return [f for f in self.files if f.path in wanted]


def check_root(root: Path | str) -> Path:
    """The absolute repository root; :class:`ReviewError` if it is missing or not a directory."""
    path = Path(root)
    if not path.exists():
        raise ReviewError(f"review root does not exist: {path}")
    if not path.is_dir():
        raise ReviewError(f"review root is not a directory: {path}")
    return path.resolve()


def detect_third_party_roots(root: Path, config: ReviewConfig) -> ThirdPartyRoots:
    """site-packages (``.venv``/``venv``/``env`` layouts, ``lib/python*``, a bare ``site-packages/``) and
    ``node_modules`` under the root, plus the configured roots. Detected roots must really be inside the
    root: a symlink to the system's site-packages is not the repository's dependencies."""
    python: list[Path] = []
    node: list[Path] = []

    def inside(path: Path) -> bool:
        return path.is_dir() and path.resolve().is_relative_to(root)

    if config.auto_detect_third_party:
        for pattern in ("site-packages", "dist-packages", "lib/python*/site-packages",
                        "*/lib/python*/site-packages", "*/Lib/site-packages"):
            python.extend(p for p in sorted(root.glob(pattern)) if inside(p))
        if inside(root / "node_modules"):
            node.append(root / "node_modules")
    for extra in config.resolved_third_party_roots(root):
        if extra.is_dir():
            (node if extra.name == "node_modules" else python).append(extra)
    return ThirdPartyRoots(python=_unique(python), node=_unique(node))


def _unique(paths: list[Path]) -> list[str]:
    seen: dict[str, None] = {}
    for path in paths:
        seen.setdefault(str(path.resolve()), None)
    return list(seen)


@dataclass
class _Walk:
    root: Path
    config: ReviewConfig
    ignore: GitIgnoreSpec | None
    files: list[SourceFile]
    skipped: list[SkippedPath]
    node_roots: list[Path]


def build_inventory(root: Path | str, config: ReviewConfig) -> Inventory:
    """Every source file under ``root`` and every skipped path with its reason. An empty directory
    gives an empty inventory; a missing root or a file raises :class:`ReviewError`."""
    base = check_root(root)
    extra = GitIgnoreSpec.from_lines(config.ignore) if config.ignore else None
    third_party = detect_third_party_roots(base, config)
    walk = _Walk(base, config, extra, [], [], [Path(p) for p in third_party.node])
    specs: list[tuple[str, GitIgnoreSpec]] = []
    if config.respect_gitignore:
        exclude = base / ".git" / "info" / "exclude"
        if exclude.is_file():
            specs.append(("", _load_gitignore(exclude)))
    _walk_dir(walk, "", specs)
    changed = None
    if config.since is not None:
        try:
            changed = changed_since(base, config.since, [f.path for f in walk.files])
        except GitError as exc:
            raise ReviewError(f"--since {config.since}: {exc}") from None
    return Inventory(root=str(base), files=walk.files, skipped=walk.skipped, third_party=third_party,
                     changed=changed)


def _load_gitignore(path: Path) -> GitIgnoreSpec:
    if path.is_symlink():  # a .gitignore -> /etc/shadow is not the repository's to read
        return GitIgnoreSpec.from_lines([])
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return GitIgnoreSpec.from_lines([])
    return GitIgnoreSpec.from_lines(text.splitlines())


def _ignored(rel: str, is_dir: bool, specs: list[tuple[str, GitIgnoreSpec]]) -> bool:
    """Deepest .gitignore with an opinion wins, as in git (negations included)."""
    for base, spec in reversed(specs):
        sub = rel[len(base) + 1:] if base else rel
        result = spec.check_file(sub + "/" if is_dir else sub)
        if result.include is not None:
            return bool(result.include)
    return False


def _skip(walk: _Walk, rel: str, reason: SkipReason, detail: str, is_dir: bool = False) -> None:
    walk.skipped.append(SkippedPath(path=fs_relpath(rel)[0], reason=reason, detail=detail, is_dir=is_dir))


def _walk_dir(walk: _Walk, rel_dir: str, specs: list[tuple[str, GitIgnoreSpec]]) -> None:
    """Depth-first, entries in byte order, with an explicit stack: a repository's nesting must not decide
    whether the review runs (500 nested directories made a recursive walk raise RecursionError). A
    directory deeper than ``max_dir_depth`` is skipped and named."""
    stack: list[tuple[str, list[tuple[str, GitIgnoreSpec]], Iterator[os.DirEntry[str]]]] = []
    _open_dir(walk, rel_dir, specs, stack)
    while stack:
        rel_dir, specs, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        if entry.is_symlink():
            _skip_symlink(walk, rel, Path(entry.path))
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_file = entry.is_file(follow_symlinks=False)
        except OSError:
            is_dir = is_file = False
        if is_dir:
            if _visit_dir(walk, rel, entry.name, specs):
                if len(stack) > walk.config.max_dir_depth:
                    _skip(walk, rel, SkipReason.TOO_DEEP, f"more than {walk.config.max_dir_depth} directories deep "
                          "(max_dir_depth); nothing below it was reviewed", is_dir=True)
                else:
                    _open_dir(walk, rel, specs, stack)
        elif not is_file:  # reading a FIFO would block the review forever
            _skip(walk, rel, SkipReason.UNREADABLE, "not a regular file (fifo, socket or device)")
        elif _ignored(rel, False, specs):
            _skip(walk, rel, SkipReason.IGNORED, ".gitignore")
        elif walk.ignore is not None and walk.ignore.match_file(rel):
            _skip(walk, rel, SkipReason.IGNORED, "config ignore pattern")
        else:
            result = describe_file(walk.root, rel, walk.config, node_roots=walk.node_roots, walked=True)
            if isinstance(result, SourceFile):
                walk.files.append(result)
            else:
                walk.skipped.append(result)


def _open_dir(walk: _Walk, rel_dir: str, specs: list[tuple[str, GitIgnoreSpec]],
              stack: list[tuple[str, list[tuple[str, GitIgnoreSpec]], Iterator[os.DirEntry[str]]]]) -> None:
    directory = walk.root / rel_dir
    if walk.config.respect_gitignore and (directory / ".gitignore").is_file():
        specs = [*specs, (rel_dir, _load_gitignore(directory / ".gitignore"))]
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: os.fsencode(e.name))
    except OSError as exc:
        _skip(walk, rel_dir or ".", SkipReason.UNREADABLE, exc.strerror or str(exc), is_dir=True)
        return
    stack.append((rel_dir, specs, iter(entries)))


def _visit_dir(walk: _Walk, rel: str, name: str, specs: list[tuple[str, GitIgnoreSpec]]) -> bool:
    """Whether to descend into the directory ``rel`` (else it is skipped, with its reason unless it is .git)."""
    config = walk.config
    if name in config.tool_dirs:
        if name != ".git":  # always present in a checkout: listing it is noise
            _skip(walk, rel, SkipReason.IGNORED, "tool directory", is_dir=True)
        return False
    installed = name in config.installed_dirs or (walk.root / rel / "pyvenv.cfg").is_file()
    if config.skip_vendored and (installed or (name in config.vendored_dirs and not config.include_vendored)):
        _skip(walk, rel, SkipReason.VENDORED, "installed third-party packages (followed only as imported "
              "dependencies)" if installed else "vendored third-party code (--include-vendored reviews it)",
              is_dir=True)
        return False
    if _ignored(rel, True, specs):
        _skip(walk, rel, SkipReason.IGNORED, ".gitignore", is_dir=True)
        return False
    if walk.ignore is not None and walk.ignore.match_file(rel + "/"):
        _skip(walk, rel, SkipReason.IGNORED, "config ignore pattern", is_dir=True)
        return False
    return True


def _skip_symlink(walk: _Walk, rel: str, link: Path) -> None:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on older Pythons
        _skip(walk, rel, SkipReason.SYMLINK, f"broken or looping symlink ({type(exc).__name__})")
        return
    if not target.is_relative_to(walk.root):
        _skip(walk, rel, SkipReason.SYMLINK, SYMLINK_OUT)
    else:
        shown = fs_relpath(str(target.relative_to(walk.root)))[0]
        _skip(walk, rel, SkipReason.SYMLINK, f"reviewed at its target {shown}", is_dir=target.is_dir())


def describe_file(root: Path, rel: str, config: ReviewConfig, origin: FileOrigin = FileOrigin.REPOSITORY,
                  package: str | None = None, node_roots: list[Path] | None = None,
                  walked: bool = False) -> SourceFile | SkippedPath:
    """A :class:`SourceFile` for ``root/rel`` or the reason it is not reviewable. ``rel`` may be absolute
    for files under an external third-party root. The repository's own JS/TS files are also checked for
    vendored or bundled content (vendored.py); ``node_roots`` are where to look for identical copies.
    ``walked``: the inventory's walk reached ``rel`` from the root through no symlink (it follows none),
    so it is inside by construction and read directly; any other path goes through the read scope."""
    shown, raw_hex = fs_relpath(rel)
    name = rel.rsplit("/", 1)[-1]
    path = root / rel

    def skipped(reason: SkipReason, detail: str) -> SkippedPath:
        return SkippedPath(path=shown, reason=reason, detail=detail)

    if is_binary_name(name):
        return skipped(SkipReason.BINARY, "binary file type")
    lock = vendored.lock_file(name)
    if lock is not None:
        return skipped(SkipReason.GENERATED, lock)
    language = language_for_name(name)
    if language is not None and language not in config.languages:
        return skipped(SkipReason.NOT_SOURCE, f"{language} is not reviewed")
    if language is None and "." in name.lstrip("."):
        return skipped(SkipReason.NOT_SOURCE, "not a source file type")
    try:  # the one door for reading: a symlink out, '..' past the root or an absolute path elsewhere stop here
        with (path.open("rb") if walked else scope_for(root, config).open(rel)) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > config.max_file_bytes:
                return skipped(SkipReason.TOO_LARGE, f"{size} bytes > max {config.max_file_bytes}")
            data = fh.read()
    except OutsideRoot as exc:
        return skipped(SkipReason.SYMLINK if exc.symlink else SkipReason.OUTSIDE, exc.detail)
    except OSError as exc:
        return skipped(SkipReason.UNREADABLE, exc.strerror or str(exc))
    if language is None:
        language = language_for_shebang(data[:128])
        if language is None or language not in config.languages:
            reason = SkipReason.BINARY if looks_binary(data[:SNIFF_BYTES]) else SkipReason.NOT_SOURCE
            return skipped(reason, "no source extension or shebang")
    if looks_binary(data[:SNIFF_BYTES]):
        return skipped(SkipReason.BINARY, "contains binary data")
    text, encoding = decode_source(data, language)
    lines = count_lines(text)
    own = origin is FileOrigin.REPOSITORY and not config.include_vendored
    if config.skip_generated and own:
        marker = _generated_marker(name, text, config)
        if marker:
            return skipped(SkipReason.GENERATED, marker)
    if config.skip_minified and language is not Language.PYTHON:
        if any(fnmatch.fnmatch(name, g) for g in config.minified_globs):
            return skipped(SkipReason.MINIFIED, "minified file name")
        if lines and len(text) / lines > config.minified_avg_line_length:
            return skipped(SkipReason.MINIFIED, f"average line length {len(text) // lines}")
    sha256 = hashlib.sha256(data).hexdigest()
    if own and language is not Language.PYTHON:
        found = _vendored_content(path, text, sha256, len(data), config, node_roots or [])
        if found is not None:
            return skipped(*found)
    return SourceFile(path=shown, raw_path_hex=raw_hex, language=language, size=len(data), line_count=lines,
                      sha256=sha256, encoding=encoding, origin=origin, package=package)


def _vendored_content(path: Path, text: str, sha256: str, size: int, config: ReviewConfig,
                      node_roots: list[Path]) -> tuple[SkipReason, str] | None:
    """(reason, detail) when a JS/TS file of the repository is someone else's or a machine's code."""
    if config.skip_vendored:
        reason = vendored.vendored_reason(path, text)
        if reason is None and size >= 1024 and node_roots:
            reason = vendored.identical_installed(path, sha256, size, node_roots)
        if reason is not None:
            return SkipReason.VENDORED, f"{reason} (--include-vendored reviews it)"
    if config.skip_generated:
        bundle = vendored.bundle_signature(text)
        if bundle is not None:
            return SkipReason.GENERATED, f"{bundle} (--include-vendored reviews it)"
    return None


def _generated_marker(name: str, text: str, config: ReviewConfig) -> str | None:
    for glob in config.generated_globs:
        if fnmatch.fnmatch(name, glob):
            return f"generated file name ({glob})"
    head = "\n".join(text[:config.generated_head_bytes].splitlines()[:10]).lower()
    for marker in config.generated_markers:
        if marker in head:
            return f"generated-code marker {marker!r}"
    return None
