"""Conflicts no model needs to see: both sides only added lines at the same place.

Most conflicts in a busy swarm are two tasks appending to one file (a registry, ``__init__`` exports,
a list of routes): git stops because both insertions start at the same line, though keeping both is
plainly right. Such a conflict is resolved here, before any model is asked: the branch's lines, then
the replayed commit's (the order they land in). A conflict in which either side changed or removed a
line that was there before is left alone: that needs judgement. Files listed for git's union driver
(``BuildJob.union_merge``) never conflict at all; this covers every other file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from swarm_tasks.builder.gitops import find_conflict_markers, run_git
from swarm_tasks.builder.replay import RebaseConflict
from swarm_tasks.host.git import marker_lines

_OURS, _BASE, _THEIRS, _END = b"<<<<<<< ", b"||||||| ", b"=======", b">>>>>>> "


def _insert_only(merged: bytes) -> bytes | None:
    """``merged`` (``git merge-file --diff3`` output) with every conflict resolved by keeping both
    sides' lines, or None if a conflict is more than two insertions at one place."""
    out: list[bytes] = []
    state, ours, theirs, base = "text", [], [], []  # type: ignore[var-annotated]
    for line in merged.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if state == "text" and bare.startswith(_OURS):
            state, ours, base, theirs = "ours", [], [], []
        elif state == "ours" and bare.startswith(_BASE):
            state = "base"
        elif state in ("ours", "base") and bare == _THEIRS:
            state = "theirs"
        elif state == "theirs" and bare.startswith(_END):
            if base:
                return None  # a line both sides started from was changed: not mechanical
            out += ours + theirs
            state = "text"
        elif state == "ours":
            ours.append(line)
        elif state == "base":
            base.append(line)
        elif state == "theirs":
            theirs.append(line)
        else:
            out.append(line)
    return b"".join(out) if state == "text" else None


def _resolve_file(conflict: RebaseConflict, rel: str) -> bytes | None:
    versions = [conflict.upstream_version(rel), conflict.base_version(rel), conflict.replayed_version(rel)]
    if any(v is None for v in versions):
        return None  # added or deleted on a side: not two insertions
    if any(marker_lines(v) for v in versions if v is not None):
        return None  # marker-like lines in the content itself: the parse would be ambiguous
    with tempfile.TemporaryDirectory(prefix="merge-") as scratch:
        paths = []
        for name, data in zip(("ours", "base", "theirs"), versions, strict=True):
            path = Path(scratch) / name
            path.write_bytes(data or b"")
            paths.append(str(path))
        merged = run_git(["merge-file", "-p", "--diff3", "-L", "branch", "-L", "base", "-L", "commit", *paths],
                         cwd=None, check=False)
    if merged.exit_code is None or merged.exit_code > 127:  # killed, or git failed (it exits -1 = 255)
        return None
    return _insert_only(merged.stdout)


def resolve_insertions(conflict: RebaseConflict) -> bool:
    """Resolve every conflicted file of ``conflict`` mechanically, or touch nothing and return False."""
    if conflict.overlapping_files:
        return False
    resolved: dict[str, bytes] = {}
    for rel in conflict.files:
        content = _resolve_file(conflict, rel)
        if content is None:
            return False
        resolved[rel] = content
    for rel, content in resolved.items():
        (conflict.path / rel).write_bytes(content)
    return not find_conflict_markers(conflict.path, list(resolved))

