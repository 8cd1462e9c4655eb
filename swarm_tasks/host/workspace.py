"""Workspace confinement: every path an agent names is resolved inside one root directory.

Resolution follows the kernel's rules component by component on the real (symlink-free) path, so
``..`` and symlinks are judged by where they really lead: a symlink inside the workspace that points
outside it is refused, one that points elsewhere inside is followed. :meth:`Workspace.open` checks
the opened file descriptor again, which closes the race where a concurrent shell command swaps a
directory for a symlink between the check and the open.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import BinaryIO

from swarm_tasks.errors import WorkspaceError

SKIP_DIRS = frozenset({".git"})
MAX_WALK_DEPTH = 64  # directory levels a file listing descends


def git_alternates(git_dir: Path) -> list[Path]:
    """The object directories a git repository borrows from (``objects/info/alternates``, as made by
    ``git clone --shared``), absolute: they live outside a workspace yet its git needs them."""
    objects = git_dir / "objects"
    try:
        lines = (objects / "info" / "alternates").read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [(objects / line.strip()).resolve() for line in lines if line.strip() and not line.startswith("#")]


class Workspace:
    """One agent's working directory; the only part of the file system its tools may touch."""

    def __init__(self, root: Path | str) -> None:
        try:
            real = Path(os.path.realpath(root, strict=True))
        except OSError as exc:
            raise WorkspaceError(f"workspace root {str(root)!r} cannot be used: {exc.strerror}") from None
        if not real.is_dir():
            raise WorkspaceError(f"workspace root {str(root)!r} is not a directory")
        self.root = real
        self._given = Path(os.path.abspath(root))

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def contains(self, path: Path | str) -> bool:
        """Whether an already resolved (real) path is the root or lies under it."""
        return Path(path) == self.root or self.root in Path(path).parents

    def resolve(self, path: str | os.PathLike[str], *, for_write: bool = False) -> Path:
        """The real path ``path`` names inside the workspace (it need not exist yet).

        Relative paths are taken from the workspace root; absolute ones only if they lie inside it.
        Raises :class:`WorkspaceError` for NUL bytes, escapes through ``..`` or symlinks, symlink
        loops and (with ``for_write``) targets that cannot be written as a file.
        """
        text = os.fspath(path)
        if "\x00" in text:
            raise WorkspaceError(f"path {text!r} contains a NUL byte")
        rel = self._relative_parts(text if text.strip() else ".")
        current = self.root
        for part in rel:
            if part in ("", "."):
                continue
            if part == "..":
                if current == self.root:
                    raise WorkspaceError(
                        f"path {text!r} goes above the workspace root with '..'; paths must stay inside it")
                current = current.parent  # current is real, so its parent is what the kernel would use
                continue
            candidate = current / part
            current = self._follow(candidate, text) if candidate.is_symlink() else candidate
        if for_write:
            self._check_writable(current, text)
        return current

    def relative(self, path: Path | str) -> str:
        """``path`` relative to the workspace root, in POSIX form (``"."`` for the root itself)."""
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        for base in (self.root, self._given):
            try:
                return p.relative_to(base).as_posix() or "."
            except ValueError:
                continue
        real = Path(os.path.realpath(p))
        if self.contains(real):
            return real.relative_to(self.root).as_posix() or "."
        raise WorkspaceError(f"{str(path)!r} is outside the workspace")

    def iter_files(self, start: str = ".", *, skip_dirs: frozenset[str] = SKIP_DIRS) -> Iterator[Path]:
        """Files under ``start`` in sorted order, without following directory symlinks at all.

        A symlinked file is yielded only when its target is a file inside the workspace; ``.git``
        (and any other name in ``skip_dirs``) is not entered.
        """
        base = self.resolve(start)
        if base.is_file():
            yield base
            return
        if not base.is_dir():
            raise WorkspaceError(f"{start!r} does not exist in the workspace")
        top = len(base.parts)
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            # os.walk recurses once per level (Python 3.11): a repository nested thousands deep must not
            # raise RecursionError in a tool, so nothing past MAX_WALK_DEPTH levels is listed.
            deep = len(Path(dirpath).parts) - top >= MAX_WALK_DEPTH
            dirnames[:] = [] if deep else sorted(d for d in dirnames if d not in skip_dirs)
            for name in sorted(filenames):
                full = Path(dirpath) / name
                if full.is_symlink():
                    target = Path(os.path.realpath(full))
                    if not (self.contains(target) and target.is_file()):
                        continue
                elif not full.is_file():
                    continue  # sockets, fifos, devices: nothing a tool should read
                yield full

    def open(self, path: str | os.PathLike[str], *, write: bool = False) -> BinaryIO:
        """Open a file confined to the workspace: binary, read or (truncating) write.

        The parent directories of a file opened for writing are created.
        """
        target = self.resolve(path, for_write=write)
        if not write and target.is_dir():
            raise WorkspaceError(f"{os.fspath(path)!r} is a directory, not a file")
        flags = os.O_CLOEXEC | os.O_NOFOLLOW
        created = False
        try:
            if not write:
                fd = os.open(target, flags | os.O_RDONLY)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(target, flags | os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    created = True
                except FileExistsError:
                    fd = os.open(target, flags | os.O_WRONLY)
        except OSError as exc:
            raise WorkspaceError(f"cannot open {self.relative(target)!r}: {exc.strerror}") from None
        real = _fd_path(fd, target)
        if not self.contains(real):
            os.close(fd)
            if created:
                _unlink_quietly(real)
            raise WorkspaceError(f"{os.fspath(path)!r} changed while being opened and now leads outside "
                                 "the workspace (a symlink was swapped in); refused")
        if write:
            os.ftruncate(fd, 0)
        return os.fdopen(fd, "wb" if write else "rb")

    # -- internals ------------------------------------------------------------------------------

    def _relative_parts(self, text: str) -> tuple[str, ...]:
        p = PurePath(text)
        if not p.is_absolute():
            return p.parts
        for base in (self.root, self._given):
            # a plain prefix match: any '..' after the root is then walked exactly like a relative path
            if p.parts[: len(base.parts)] == base.parts:
                return p.parts[len(base.parts):]
        raise WorkspaceError(
            f"absolute path {text!r} is outside the workspace; use a path relative to the workspace "
            f"root ({self.root})")

    def _follow(self, link: Path, text: str) -> Path:
        try:
            os.stat(link)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise WorkspaceError(
                    f"path {text!r} runs into a symlink loop at {self.relative(link)!r}") from None
            # dangling: judge where it would lead once its target is created
        target = Path(os.path.realpath(link))
        if not self.contains(target):
            raise WorkspaceError(
                f"path {text!r} leads outside the workspace: {self.relative(link)!r} is a symlink to "
                f"{os.readlink(link)!r}; only paths inside the workspace may be used")
        return target

    def _check_writable(self, target: Path, text: str) -> None:
        if target == self.root or target.is_dir():
            raise WorkspaceError(f"{text!r} is a directory; give the path of a file to write")
        rel = target.relative_to(self.root).parts
        if ".git" in rel:
            raise WorkspaceError(f"{text!r} is inside a .git directory; change the repository with git tools")


def _fd_path(fd: int, fallback: Path) -> Path:
    """Where an open descriptor really points (Linux /proc; elsewhere the checked path)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(os.path.realpath(fallback))


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
