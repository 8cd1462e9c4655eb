"""What a review may read: the repository and the third-party roots the user configured, nothing else.

Every reader of the review (the inventory's file descriptions, import and ``require`` following,
analyzers, evidence quotes, the tools a model calls) goes through :class:`ReadScope`, which applies the
rule of the host's :class:`~swarm_tasks.host.workspace.Workspace` (the real path must lie inside a
root; the model's file tools use that class itself): ``..`` climbing past the root,
absolute paths elsewhere and symlinks leading out are refused with a reason, so a reviewed repository
cannot make a report quote ``/etc/shadow`` through ``shadow.py -> /etc/shadow`` or
``from ........etc import passwd``. The rule is the inventory's: a symlink out is skipped, with its reason.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from swarm_tasks.errors import ReviewError
from swarm_tasks.review.config import ReviewConfig

OUTSIDE = "resolves outside the repository; not read"
SYMLINK_OUT = "points outside the repository"


class OutsideRoot(ReviewError):
    """A path leads outside every root the review may read. ``symlink``: a symlink took it out."""

    def __init__(self, path: str, symlink: bool) -> None:
        super().__init__(f"{path}: {SYMLINK_OUT if symlink else OUTSIDE}")
        self.path = path
        self.symlink = symlink

    @property
    def detail(self) -> str:
        return SYMLINK_OUT if self.symlink else OUTSIDE


class ReadScope:
    """The repository root and the configured third-party roots: a path may be read when its real path
    (every symlink and ``..`` followed, as the kernel would) lies under one of them. The host's
    :class:`~swarm_tasks.host.workspace.Workspace` applies the same rule to the model's file tools; this
    one works on strings (``os.path.realpath``), since it runs for every file of a 20,000-file review."""

    def __init__(self, root: Path, extra_roots: tuple[Path, ...] = ()) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise ReviewError(f"review root {str(root)!r} is not a directory")
        self.root = Path(real)
        self._reals = [real, *(os.path.realpath(p) for p in extra_roots if os.path.isdir(p))]
        self._given = os.path.abspath(root)
        self._bases = {*self._reals, self._given, *(os.path.abspath(p) for p in extra_roots)}

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path of ``path`` (relative to the repository root, or absolute inside a root it may
        read); :class:`OutsideRoot` when it leads anywhere else."""
        text = os.fspath(path)
        if "\x00" in text:
            raise OutsideRoot(text.replace("\x00", "\\x00"), symlink=False)
        real = os.path.realpath(text if os.path.isabs(text) else os.path.join(self._given, text))
        if not _under(real, self._reals):
            raise OutsideRoot(text, symlink=_under(os.path.normpath(os.path.join(self._given, text)), self._bases))
        return Path(real)

    def allows(self, path: str | os.PathLike[str]) -> bool:
        try:
            self.resolve(path)
        except OutsideRoot:
            return False
        return True

    def open(self, path: str | os.PathLike[str]) -> BinaryIO:
        """A regular file inside the scope, opened for reading. The kernel resolves the path and the check
        is made on what it opened (``/proc/self/fd``), so it is one open, not a walk, and no symlink swapped
        in meanwhile gets past it; a FIFO never blocks."""
        text = os.fspath(path)
        if "\x00" in text:
            raise OutsideRoot(text.replace("\x00", "\\x00"), symlink=False)
        fd = os.open(text if os.path.isabs(text) else os.path.join(self._given, text),
                     os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # no /proc: the path as resolved now
                real = os.path.realpath(os.path.join(self._given, text))
            if not _under(real, self._reals):
                raise OutsideRoot(text, symlink=_under(os.path.normpath(os.path.join(self._given, text)),
                                                       self._bases))
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    def read_bytes(self, path: str | os.PathLike[str], limit: int = -1) -> bytes:
        """The bytes (at most ``limit``) of a regular file inside the scope (see :meth:`open`)."""
        with self.open(path) as fh:
            return fh.read(limit)


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


@lru_cache(maxsize=64)
def _scope(root: str, extra: tuple[str, ...]) -> ReadScope:
    return ReadScope(Path(root), tuple(Path(p) for p in extra))


def repo_scope(root: Path) -> ReadScope:
    """The repository alone: for paths relative to its root."""
    return _scope(str(root), ())


def scope_for(root: Path, config: ReviewConfig) -> ReadScope:
    """The read scope of a review of ``root`` (shared in the process: every file description asks)."""
    return _scope(str(root), tuple(str(p) for p in config.resolved_third_party_roots(root)))
