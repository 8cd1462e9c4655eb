"""Codemod mode: the deterministic build that needs no model. A shell command is run once per file
(``ruff format {path}``, ``sed -i ... {path}``); tasks are groups of files; workers land them on the
shared branch concurrently.

The invariant: the final tree equals running the command on every task's files one after another
(:func:`sequential_reference`). A rebase cannot keep it by merging (two workers that applied the
command to the same file produce the same edit, which git merges into ONE application), so a file
changed both upstream and by the task is re-done instead: take the upstream version and run the
command on it again (:func:`codemod_resolver`, used with ``overlaps_conflict=True``).
"""

from __future__ import annotations

import os
import random
import shlex
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pathspec

from swarm_tasks.build.check import CheckResult, run_process, truncate
from swarm_tasks.build.gitops import Clone, commit_all, run_git, split_z
from swarm_tasks.build.rebase import Backoff, PushOutcome, PushStatus, push_with_rebase
from swarm_tasks.build.replay import RebaseConflict
from swarm_tasks.errors import WorkspaceError

PLACEHOLDER = "{path}"


def render_command(command: str, path: str) -> str:
    """``command`` with ``{path}`` replaced by the shell-quoted path (appended if there is none).

    A plain replace rather than ``str.format``: commands are full of braces (awk, sed, find).
    """
    quoted = shlex.quote(path)
    return command.replace(PLACEHOLDER, quoted) if PLACEHOLDER in command else f"{command} {quoted}"


def split_by_file(clone_root: Path, globs: Sequence[str]) -> list[str]:
    """Tracked files under ``clone_root`` matching any of ``globs`` (gitignore syntax), sorted."""
    tracked = split_z(run_git(["ls-files", "-z"], cwd=clone_root).stdout)
    spec = pathspec.PathSpec.from_lines("gitignore", globs)
    return sorted(spec.match_files(tracked))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _apply(root: Path, command: str, files: Sequence[str], timeout_s: float) -> list[str]:
    changed: list[str] = []
    for rel in files:
        target = root / rel
        if not target.resolve().is_relative_to(root.resolve()):
            raise WorkspaceError(f"{rel!r} is outside {root}")
        before = _read(target)
        result = run_process(render_command(command, rel), root, timeout_s)
        if not result.ok:
            what = "timed out" if result.timed_out else f"exit {result.exit_code}"
            output = (result.stderr or result.stdout).decode("utf-8", "replace")
            raise WorkspaceError(f"codemod command failed on {rel} ({what}): {truncate(output.strip(), 2000)}")
        if _read(target) != before and rel not in changed:
            changed.append(rel)
    return changed


def apply_codemod(clone: Clone, command: str, files: Sequence[str], timeout_s: float) -> list[str]:
    """Run ``command`` on each of ``files`` (relative to the clone, in order); return those it changed.

    A failing or hanging command raises :class:`WorkspaceError` (the group is killed at ``timeout_s``).
    """
    return _apply(clone.path, command, files, timeout_s)


def codemod_resolver(command: str, timeout_s: float) -> Callable[[RebaseConflict], bool]:
    """The resolver of codemod mode: each conflicted or overlapping file becomes the upstream version
    with the command run on it once more (a file deleted upstream stays deleted)."""

    def resolve(conflict: RebaseConflict) -> bool:
        for rel in conflict.all_files:
            target = conflict.path / rel
            upstream = conflict.upstream_version(rel)
            if upstream is None:
                target.unlink(missing_ok=True)
                continue
            target.write_bytes(upstream)
            _apply(conflict.path, command, [rel], timeout_s)
        return True

    return resolve


def land_codemod(clone: Clone, command: str, files: Sequence[str], *, message: str, timeout_s: float,
                 check: Callable[[], CheckResult] | None = None, max_attempts: int = 10,
                 backoff: Backoff | None = None, refresh_first: bool = False,
                 rng: random.Random | None = None) -> PushOutcome:
    """One codemod task end to end: apply, commit the changed files, push with codemod rebases."""
    changed = apply_codemod(clone, command, files, timeout_s)
    if commit_all(clone, message, paths=changed) is None:
        return PushOutcome(status=PushStatus.UP_TO_DATE, landed=True, sha=clone.head(), attempts=0, rebases=0,
                           conflicts_resolved=0, first_try=True, conflicted_files=[], contended_files=[],
                           reason="the command changed nothing")
    return push_with_rebase(clone, resolve=codemod_resolver(command, timeout_s), check=check,
                            max_attempts=max_attempts, backoff=backoff, overlaps_conflict=True,
                            refresh_first=refresh_first, rng=rng)


def working_tree_id(repo_dir: Path) -> str:
    """The git tree id of ``repo_dir``'s working tree (tracked and untracked, not ignored), computed
    in a temporary index so the repository's own index is not touched."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        run_git(["read-tree", "HEAD"], cwd=repo_dir, extra_env=env)
        run_git(["add", "--all"], cwd=repo_dir, extra_env=env)
        return run_git(["write-tree"], cwd=repo_dir, extra_env=env).stdout.decode().strip()


def sequential_reference(repo_dir: Path, command: str, files: Sequence[str], *, timeout_s: float = 60.0) -> str:
    """Run ``command`` on ``files`` one after another in ``repo_dir`` (a scratch checkout of the
    starting commit; changed in place) and return the resulting tree id: what the concurrent build
    must produce, byte for byte (compare with ``git rev-parse <branch>^{tree}``)."""
    _apply(repo_dir, command, files, timeout_s)
    return working_tree_id(repo_dir)
