"""The uid a root worker's sandboxed commands run as, and what it may touch.

A root worker never runs what an agent wrote as root: each command runs as its workspace's own unused
uid with no capabilities (see :mod:`swarm_tasks.host.launcher`). That uid owns nothing of the worker's,
so the workspace is lent to it for the command (:func:`lend`, :func:`settle`), and in the fallback the
directories above the workspace and the worker's tools are made passable for it
(:func:`make_traversable`). :func:`running_as` counts the commands running as a uid in this process,
so the last one out does the sweep and the settling.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("swarm_tasks.host.sandbox")
_UID_HIGH = (2_100_000_000, 2_140_000_000)  # far above login users and subuid ranges
_ACTIVE: dict[int, int] = {}  # sandbox uid -> commands running as it in this process
_ACTIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def running_as(uid: int | None) -> Iterator[Callable[[], bool]]:
    """Count the commands running as ``uid``; yields whether this one is (now) the only one."""
    if uid is None:
        yield lambda: False
        return
    with _ACTIVE_LOCK:
        _ACTIVE[uid] = _ACTIVE.get(uid, 0) + 1

    def alone() -> bool:
        with _ACTIVE_LOCK:
            return _ACTIVE.get(uid) == 1

    try:
        yield alone
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE[uid] -= 1
            if not _ACTIVE[uid]:
                del _ACTIVE[uid]


def sandbox_uid() -> int:
    """A fresh uid, unused by anyone (see :func:`workspace_uid` for the one commands run as)."""
    lo, hi = _uid_range()
    return lo + secrets.randbelow(hi - lo + 1)


def workspace_uid(ws: Path) -> int:
    """The uid the commands of a root worker run as in workspace ``ws``: unused by anyone, the same for
    every command of the workspace (its files are lent to it: see :func:`lend`), different for
    different workspaces (their commands neither share a process count nor see each other's files)."""
    lo, hi = _uid_range()
    digest = hashlib.sha256(os.fsencode(ws)).digest()
    return lo + int.from_bytes(digest[:8], "big") % (hi - lo + 1)


def _uid_range() -> tuple[int, int]:
    """Uids far above login users and subuid ranges, inside the range this process's user namespace
    maps (containers often map only 65536)."""
    ranges: list[tuple[int, int]] = []
    try:
        for line in Path("/proc/self/uid_map").read_text().splitlines():
            inside, _outside, length = (int(x) for x in line.split())
            ranges.append((inside, inside + length - 1))
    except (OSError, ValueError):
        ranges = [(0, 65535)]
    lo, hi = _UID_HIGH
    if not any(start <= lo and hi <= end for start, end in ranges):
        start, end = max(ranges, key=lambda r: r[1] - r[0])
        hi = min(end, 65533) if end <= 65535 else end - 2  # not nobody, not the invalid uid
        lo = max(start + 1, (start + hi) // 2)
    return lo, hi


_SETTLED: dict[str, dict[str, int]] = {}  # workspace -> directory -> mtime (ns) when its last command ended
_SETTLED_LOCK = threading.Lock()
_RACY_NS = 2_000_000_000  # a directory changed this recently may change again within the same mtime tick


def _give(path: str, st: os.stat_result, owner: int, dir_fd: int | None = None) -> None:
    """``path`` to ``owner`` (links not followed); a file with several hard links is left alone: it may
    have a name outside the workspace."""
    if (st.st_uid, st.st_gid) != (owner, owner) and (stat.S_ISDIR(st.st_mode) or st.st_nlink == 1):
        with contextlib.suppress(FileNotFoundError):
            os.chown(path, owner, owner, dir_fd=dir_fd, follow_symlinks=False)


_REPOSITORY = frozenset({"HEAD", "objects", "refs"})  # what a bare git repository holds
_MAX_DEPTH = 400  # deeper directories are not lent (the command cannot write there); no recursion overflow


def _lend_dir(fd: int, path: str, owner: int, settled: dict[str, int], *, skip_git: bool, depth: int = 0) -> None:
    """Lend the directory open as ``fd`` (its name, for the mtime notes: ``path``). Subdirectories are
    opened relative to it without following links, so a command running meanwhile cannot turn a
    directory into a link and have a file elsewhere lent."""
    with os.scandir(fd) as entries:
        listed = list(entries)
    names = {entry.name for entry in listed}
    if depth and (".git" in names or names >= _REPOSITORY):
        return  # a repository of its own inside the workspace (a vendored clone, a bare one): not lent
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (owner, owner):
        os.fchown(fd, owner, owner)
    changed = settled.get(path) != st.st_mtime_ns
    for entry in listed:
        try:
            if entry.is_dir(follow_symlinks=False):
                if (skip_git and entry.name == ".git") or depth >= _MAX_DEPTH:
                    continue
                sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                try:
                    _lend_dir(sub, os.path.join(path, entry.name), owner, settled, skip_git=False, depth=depth + 1)
                finally:
                    os.close(sub)
            elif changed:
                _give(entry.name, os.stat(entry.name, dir_fd=fd, follow_symlinks=False), owner, dir_fd=fd)
        except OSError:  # gone, or turned into something else meanwhile: not lent
            continue


def _lend_tree(top: Path, owner: int, settled: dict[str, int] | None = None, *, skip_git: bool = False) -> None:
    try:
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        _lend_dir(fd, str(top), owner, settled or {}, skip_git=skip_git)
    finally:
        os.close(fd)


def lend(ws: Path, uid: int, *, git: bool = False) -> None:
    """Make the files of ``ws`` the sandbox ``uid``'s, so a command without capabilities can work in them;
    its ``.git`` too only with ``git`` (else it stays ours: the command cannot write it).

    Only directories whose entries changed since the workspace's last command ended are listed file by
    file (the worker's git checkouts and resets rename files into place, which changes the directory), so
    a command in a large clone costs a walk of its directories, not of its files."""
    with _SETTLED_LOCK:
        settled = dict(_SETTLED.get(str(ws), {}))
    _lend_tree(ws, uid, settled, skip_git=True)
    if git:
        _lend_tree(ws / ".git", uid)


def settle(ws: Path, *, git: bool = False) -> None:
    """After the last command of ``ws`` ended: the workspace's top directory (and with ``git`` its
    ``.git``) back to this process's uid, as git insists, and each directory's mtime noted for
    :func:`lend`. The files the command made stay the sandbox uid's: no other uid can touch them."""
    mine, key, now = os.geteuid(), str(ws), time.time_ns()
    with contextlib.suppress(FileNotFoundError):
        _give(key, os.lstat(key), mine)
    if git:
        _lend_tree(ws / ".git", mine)
    seen: dict[str, int] = {}
    for here, dirs, _files in os.walk(ws):
        if here == key and ".git" in dirs:
            dirs.remove(".git")
        with contextlib.suppress(FileNotFoundError):
            mtime = os.lstat(here).st_mtime_ns
            if now - mtime > _RACY_NS:  # else it is listed again next time
                seen[here] = mtime
    with _SETTLED_LOCK:
        _SETTLED.pop(key, None)
        _SETTLED[key] = seen
        while len(_SETTLED) > 256:
            del _SETTLED[next(iter(_SETTLED))]


def make_traversable(path: Path) -> None:
    """Let any uid pass through the directories above ``path`` (o+x, not o+r: nothing is listed), as
    the sandbox uid of the restricted subprocess must to reach its workspace and tools."""
    for parent in path.parents:
        with contextlib.suppress(OSError):
            st = parent.stat()
            if not st.st_mode & stat.S_IXOTH and st.st_uid == os.geteuid():
                os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
                log.info("made %s passable (o+x) for sandboxed commands: it lies above their workspace or "
                         "tools", parent)


__all__ = ["lend", "make_traversable", "running_as", "sandbox_uid", "settle", "workspace_uid"]
