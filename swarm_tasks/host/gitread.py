"""Read-only git queries on a repository under review (``swarm review --since REF``).

Only commands that read objects run (``rev-parse``, ``merge-base``, ``ls-tree``): none of them reads the
working tree or the index, so no filter, diff driver, fsmonitor or hook the repository configures runs;
and they go through the project's git wrapper (:func:`swarm_tasks.host.git.git`) all the same, in case a
future git reads more than today's. Which working-tree files changed is decided here
in Python, by hashing them as git hashes blobs: a file changed since REF when its blob differs from the
one at the merge base of REF and HEAD (committed or not, new or modified).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from swarm_tasks.errors import GitError
from swarm_tasks.host.git import git

TIMEOUT_S = 60.0


def _git(repo: Path, *args: str) -> str:
    try:
        done = git(args, cwd=repo, timeout_s=TIMEOUT_S, env={"GIT_OPTIONAL_LOCKS": "0", "HOME": "/nonexistent"},
                   objects_only=True)
    except OSError as exc:
        raise GitError(f"git {args[0]} did not run: {exc}") from None
    if done.timed_out:
        raise GitError(f"git {args[0]} did not finish within {TIMEOUT_S:g} s")
    if done.exit_code != 0:
        raise GitError(done.stderr.decode(errors="replace").strip()[-300:] or f"git {args[0]} failed")
    return done.stdout.decode(errors="surrogateescape")


def merge_base(repo: Path, ref: str) -> str:
    """The commit where HEAD's history meets ``ref``'s; :class:`GitError` naming what is wrong."""
    if ref.startswith("-"):
        raise GitError(f"not a git ref: {ref!r}")
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    except GitError:
        raise GitError(f"{ref!r} is not a commit in {repo} (a git URL is cloned without history: "
                       "use a local checkout to review changes since a ref)") from None
    return _git(repo, "merge-base", "--end-of-options", ref, "HEAD").strip()


def toplevel(repo: Path) -> Path:
    """The working tree's top directory; :class:`GitError` when ``repo`` is not in a git checkout."""
    try:
        return Path(_git(repo, "rev-parse", "--show-toplevel").strip())
    except GitError as exc:
        raise GitError(f"{repo} is not a git checkout: {exc}") from None


def tree_blobs(repo: Path, commit: str) -> dict[str, str]:
    """Path (from the top of the working tree) -> blob id of every file in ``commit``."""
    out: dict[str, str] = {}
    for entry in _git(repo, "ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit).split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob":
            out[path] = parts[2]
    return out


def blob_id(data: bytes, algorithm: str = "sha1") -> str:
    """The id git gives ``data`` as a blob."""
    return hashlib.new(algorithm, b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def changed_since(root: Path, ref: str, paths: Iterable[str]) -> list[str]:
    """Those of ``paths`` (relative to ``root``) whose content differs from the merge base of ``ref`` and
    HEAD, or that it does not have."""
    top = toplevel(root).resolve()
    base = tree_blobs(root, merge_base(root, ref))
    prefix = root.resolve().relative_to(top).as_posix()
    algorithm = "sha256" if base and len(next(iter(base.values()))) == 64 else "sha1"
    changed = []
    for rel in paths:
        key = rel if prefix == "." else f"{prefix}/{rel}"
        try:
            data = (root / rel).read_bytes()
        except OSError:
            continue
        if base.get(key) != blob_id(data, algorithm):
            changed.append(rel)
    return changed
