"""What a review may read: the repository and the third-party roots the user configured, nothing else.

Every reader of the review (the inventory's file descriptions, import and ``require`` following,
analyzers, evidence quotes, the tools a model calls) goes through :class:`ReadScope`, which resolves a
path with the host's :class:`~swarm_tasks.host.workspace.Workspace`: ``..`` climbing past the root,
absolute paths elsewhere and symlinks leading out are refused with a reason, so a reviewed repository
cannot make a report quote ``/etc/shadow`` through ``shadow.py -> /etc/shadow`` or
``from ........etc import passwd``. The rule is the inventory's: a symlink out is skipped, with its reason.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path, PurePath

from swarm_tasks.errors import ReviewError, WorkspaceError
from swarm_tasks.host.workspace import Workspace
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
    """The repository root and the configured third-party roots (each used as a confining workspace)."""

    def __init__(self, root: Path, extra_roots: tuple[Path, ...] = ()) -> None:
        try:
            self.repo = Workspace(root)
        except WorkspaceError as exc:
            raise ReviewError(str(exc)) from None
        self.extra = [Workspace(p) for p in extra_roots if p.is_dir()]
        given = [Path(os.path.abspath(p)) for p in (root, *extra_roots)]
        self._bases = {str(b) for b in [*given, self.repo.root, *(s.root for s in self.extra)]}

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """The real path of ``path`` (relative to the repository root, or absolute inside a root it may
        read); :class:`OutsideRoot` when it leads anywhere else."""
        text = os.fspath(path)
        spaces = [self.repo] if not PurePath(text).is_absolute() else [self.repo, *self.extra]
        for space in spaces:
            try:
                return space.resolve(text)
            except WorkspaceError:
                continue
        raise OutsideRoot(text, symlink=self._lexically_inside(text))

    def allows(self, path: str | os.PathLike[str]) -> bool:
        try:
            self.resolve(path)
        except OutsideRoot:
            return False
        return True

    def read_bytes(self, path: str | os.PathLike[str], limit: int = -1) -> bytes:
        """The bytes of a file inside the scope, opened without following a symlink swapped in meanwhile."""
        real = self.resolve(path)
        for space in [self.repo, *self.extra]:
            if space.contains(real):
                try:
                    with space.open(real) as fh:
                        return fh.read(limit)
                except WorkspaceError as exc:
                    raise OSError(str(exc)) from None
        raise OutsideRoot(os.fspath(path), symlink=True)

    def _lexically_inside(self, text: str) -> bool:
        """Whether ``text`` names a place inside a root before symlinks are followed (then a symlink is
        what leads out)."""
        full = os.path.normpath(self.repo.root / text)
        return any(full == base or full.startswith(base.rstrip(os.sep) + os.sep) for base in self._bases)


@lru_cache(maxsize=64)
def _scope(root: str, extra: tuple[str, ...]) -> ReadScope:
    return ReadScope(Path(root), tuple(Path(p) for p in extra))


def repo_scope(root: Path) -> ReadScope:
    """The repository alone: for paths relative to its root."""
    return _scope(str(root), ())


def scope_for(root: Path, config: ReviewConfig) -> ReadScope:
    """The read scope of a review of ``root`` (shared in the process: every file description asks)."""
    return _scope(str(root), tuple(str(p) for p in config.resolved_third_party_roots(root)))
