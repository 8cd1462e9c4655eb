"""Codemod mode: the deterministic build that needs no model. A shell command is run once per file
(``ruff format {path}``, ``sed -i ... {path}``); tasks are groups of files; workers land them on the
shared branch concurrently.

The invariant: the final tree equals running the command on every task's files one after another
(:func:`sequential_reference`). Everything the command changes lands, not only the file it was given:
a command that also appends to a changelog or regenerates an index commits those edits too. A rebase
cannot keep the invariant by merging (two workers that applied the command to the same file produce
the same edit, which git merges into ONE application; two appends to one changelog conflict), so a
task whose commit meets upstream changes to any file it touched is redone instead: the command is
run again on all the task's files, on the new tip (:func:`codemod_resolver`, used with
``overlaps_conflict=True``).

A file the command fails on fails alone: whatever that one run changed is put back, the other files
of the task still land, and the failure is reported with the file and the command's own words.
"""

from __future__ import annotations

import os
import random
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec

from coordination.backoff import Backoff
from swarm_tasks.builder.check import CheckResult, truncate
from swarm_tasks.builder.gitops import JUNK_GLOBS, Clone, commit_all, run_git, split_z
from swarm_tasks.builder.rebase import PushOutcome, PushStatus, push_with_rebase
from swarm_tasks.builder.replay import RebaseConflict
from swarm_tasks.errors import WorkspaceError
from swarm_tasks.host.commands import run_confined
from swarm_tasks.host.sandbox import CommandResult

if TYPE_CHECKING:
    from swarm_tasks.settings import SwarmSettings

PLACEHOLDER = "{path}"
MAX_REASON = 600
# Untracked files a command may leave that are never the command's edit (interpreter and tool caches).
_JUNK = pathspec.PathSpec.from_lines("gitignore", JUNK_GLOBS)


@dataclass(frozen=True, slots=True)
class Codemod:
    """The command, the exit statuses that mean it succeeded (pyupgrade exits 1 when it rewrote a
    file), the seconds it may take on one file, and the settings of the sandbox it runs in (None: this
    process's)."""

    command: str
    timeout_s: float = 120.0
    ok_exit_codes: tuple[int, ...] = (0,)
    settings: SwarmSettings | None = field(default=None, repr=False, compare=False)

    def render(self, path: str) -> str:
        return render_command(self.command, path)


@dataclass(slots=True)
class Applied:
    """What running a codemod on some files did. ``changed``: every file it changed (the files it was
    given and any other), in the order first changed; ``failures``: file given -> why the command
    failed on it (its own changes were put back)."""

    changed: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def describe_failures(self, limit: int = 5) -> str:
        shown = [f"{path}: {why}" for path, why in list(self.failures.items())[:limit]]
        more = len(self.failures) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def render_command(command: str, path: str) -> str:
    """``command`` with ``{path}`` replaced by the shell-quoted path (appended if there is none).

    A plain replace rather than ``str.format``: commands are full of braces (awk, sed, find).
    """
    quoted = shlex.quote(not_an_option(path))
    return command.replace(PLACEHOLDER, quoted) if PLACEHOLDER in command else f"{command} {quoted}"


def not_an_option(path: str) -> str:
    """``path`` as no tool can take for an option: ``-rf.py`` becomes ``./-rf.py``. The command is the user's,
    so ``--`` cannot be put before the name (not every tool knows it); the name is made unambiguous instead."""
    return f"./{path}" if path.startswith("-") else path


def split_by_file(clone_root: Path, globs: Sequence[str]) -> list[str]:
    """Tracked files under ``clone_root`` matching any of ``globs`` (gitignore syntax), sorted."""
    tracked = split_z(run_git(["ls-files", "-z"], cwd=clone_root).stdout)
    spec = pathspec.PathSpec.from_lines("gitignore", globs)
    return sorted(spec.match_files(tracked))


def run_on(root: Path, codemod: Codemod, rel: str) -> CommandResult:
    """One run of the command on one file, in ``root``, sandboxed (``.git`` read-only)."""
    return run_confined(codemod.render(rel), root=root, timeout_s=codemod.timeout_s, settings=codemod.settings)


def failure_reason(codemod: Codemod, result: CommandResult) -> str | None:
    """Why a run failed, in the command's own words; None if it succeeded."""
    if result.timed_out:
        return f"timed out after {codemod.timeout_s:g} s (killed)"
    if result.exit_code is None:
        return f"killed by the sandbox ({result.limit_hit or 'a limit'})"
    if result.exit_code in codemod.ok_exit_codes:
        return None
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    return truncate(f"exit {result.exit_code}" + (f": {' / '.join(lines[-4:])}" if lines else ""), MAX_REASON)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class _Tracker:
    """Which files each run of the command touched: the index holds everything accepted so far, so
    the work tree's differences from it (and new untracked files) are exactly the last run's edits."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.before = {p: _signature(root / p) for p in self._dirty()}  # not ours: there before we ran

    def _dirty(self) -> dict[str, bool]:
        """Files that differ from the index (or are untracked, the value True), caches aside."""
        out = run_git(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"], cwd=self.root)
        return {entry[3:]: entry[:2] == "??" for entry in split_z(out.stdout)
                if entry[1] != " " and not _JUNK.match_file(entry[3:])}

    def touched(self) -> dict[str, bool]:
        found = {}
        for path, untracked in self._dirty().items():
            if path in self.before:
                if self.before[path] == _signature(self.root / path):
                    continue
                del self.before[path]  # changed by the command after all: from now on it is ours
            found[path] = untracked
        return found

    def accept(self, paths: Sequence[str]) -> None:
        _git_paths(self.root, ["add", "--all"], paths)

    def put_back(self, touched: dict[str, bool]) -> None:
        """Undo a failed run: tracked files back to the index, files it created removed."""
        tracked = [p for p, untracked in touched.items() if not untracked]
        if tracked:
            _git_paths(self.root, ["checkout"], tracked)
        for path, untracked in touched.items():
            if untracked:
                (self.root / path).unlink(missing_ok=True)


def _git_paths(root: Path, args: list[str], paths: Sequence[str]) -> None:
    """``git <args>`` on exactly ``paths`` (literal, NUL-separated on stdin: any file name works)."""
    stdin = b"".join(os.fsencode(p) + b"\0" for p in paths)
    run_git(["--literal-pathspecs", *args, "--pathspec-from-file=-", "--pathspec-file-nul"], cwd=root, stdin=stdin)


def apply_in(root: Path, codemod: Codemod, files: Sequence[str]) -> Applied:
    """Run ``codemod`` on each of ``files`` (relative to the git work tree ``root``), in order.

    Each run's edits are staged when it succeeds and put back when it fails (a failure is recorded,
    never raised), so a run that fails on one file cannot leave half an edit behind or spoil the
    edits of another.
    """
    resolved_root = root.resolve()
    tracker = _Tracker(root)
    applied = Applied()
    seen: set[str] = set()
    for rel in files:
        if not (root / rel).resolve().is_relative_to(resolved_root):
            raise WorkspaceError(f"{rel!r} is outside {root}")
        why = failure_reason(codemod, run_on(root, codemod, rel))
        touched = tracker.touched()
        if why is not None:
            tracker.put_back(touched)
            applied.failures[rel] = why
            continue
        if touched:
            tracker.accept(list(touched))
            applied.changed += [p for p in touched if p not in seen]
            seen.update(touched)
    return applied


def apply_codemod(clone: Clone, codemod: Codemod, files: Sequence[str]) -> Applied:
    """:func:`apply_in` on a worker's clone."""
    return apply_in(clone.path, codemod, files)


def codemod_resolver(codemod: Codemod, files: Sequence[str],
                     failures: dict[str, str] | None = None) -> Callable[[RebaseConflict], bool]:
    """The resolver of codemod mode: a task whose commit conflicts or overlaps with upstream is redone
    on the new tip (its changes dropped, the command run again on all its ``files``). Files it now
    fails on are added to ``failures``."""

    def resolve(conflict: RebaseConflict) -> bool:
        run_git(["reset", "--quiet", "--hard", "HEAD"], cwd=conflict.path)  # the new tip, no half-applied pick
        redone = apply_in(conflict.path, codemod, files)
        if failures is not None:
            failures.update(redone.failures)
        return True

    return resolve


def land_codemod(clone: Clone, codemod: Codemod, files: Sequence[str], *, message: str,
                 check: Callable[[], CheckResult] | None = None, max_attempts: int = 10,
                 backoff: Backoff | None = None, refresh_first: bool = False,
                 rng: random.Random | None = None) -> tuple[Applied, PushOutcome]:
    """One codemod task end to end: apply, commit every change, push with codemod rebases."""
    applied = apply_codemod(clone, codemod, files)
    if commit_all(clone, message, paths=applied.changed) is None:
        return applied, PushOutcome(status=PushStatus.UP_TO_DATE, landed=True, sha=clone.head(), attempts=0,
                                    rebases=0, conflicts_resolved=0, first_try=True, conflicted_files=[],
                                    contended_files=[], reason="the command changed nothing")
    ok = [f for f in files if f not in applied.failures]
    outcome = push_with_rebase(clone, resolve=codemod_resolver(codemod, ok, applied.failures), check=check,
                               max_attempts=max_attempts, backoff=backoff, overlaps_conflict=True,
                               refresh_first=refresh_first, rng=rng)
    return applied, outcome


def working_tree_id(repo_dir: Path) -> str:
    """The git tree id of ``repo_dir``'s working tree (tracked and untracked, not ignored), computed
    in a temporary index so the repository's own index is not touched."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        run_git(["read-tree", "HEAD"], cwd=repo_dir, extra_env=env)
        run_git(["add", "--all"], cwd=repo_dir, extra_env=env)
        return run_git(["write-tree"], cwd=repo_dir, extra_env=env).stdout.decode().strip()


def sequential_reference(repo_dir: Path, command: str | Codemod, files: Sequence[str], *,
                         timeout_s: float = 60.0) -> str:
    """Run the command on ``files`` one after another in ``repo_dir`` (a scratch checkout of the
    starting commit; changed in place) and return the resulting tree id: what the concurrent build
    must produce, byte for byte (compare with ``git rev-parse <branch>^{tree}``)."""
    codemod = command if isinstance(command, Codemod) else Codemod(command, timeout_s)
    applied = apply_in(repo_dir, codemod, files)
    if applied.failures:
        raise WorkspaceError(f"the command failed: {applied.describe_failures()}")
    return working_tree_id(repo_dir)
