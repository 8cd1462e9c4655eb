"""The check as a gate on landing, and how often it runs.

A build has up to two checks. The quick one gates every landing: ``check_changed`` (a command with
``{paths}`` standing for the files the change touched, e.g. ``ruff check {paths}``), or the full
``check`` when no quick one is configured. The full one also runs once per cycle, on the branch tip,
by the judge (see :mod:`swarm_tasks.builder.judge`).

A quick check is cheap, so it runs again after every replay onto a moved branch: each commit lands
on a tree it passed on. The full check as a gate runs before the first push, and after a replay only
when upstream changed a file this change touches or a conflict was resolved; a commit pushed after a
replay that did not re-run it says so in its task's record (``checked_on_landed_tree: false``), and
the judge's run on the tip covers it. Every run is counted per run (quick, full) for the result.

A change that fails the gate does not land, unless the branch tip fails the same check as well: then
the failure cannot be told from the old one, and blocking every push would stop all progress on a
red branch. A check that times out always blocks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coordination.run import RunState
from coordination.store import Write
from swarm_tasks.builder.check import CheckResult, run_check
from swarm_tasks.builder.codemod import not_an_option
from swarm_tasks.builder.gitops import Clone, borrowed_objects, split_z
from swarm_tasks.builder.rebase import Recheck

if TYPE_CHECKING:
    from swarm_tasks.settings import SwarmSettings

PATHS = "{paths}"
QUICK, FULL = "quick", "full"


def render_paths(template: str, paths: list[str]) -> str:
    """``template`` with ``{paths}`` replaced by the shell-quoted paths."""
    return template.replace(PATHS, " ".join(shlex.quote(not_an_option(p)) for p in paths))


def count_check(state: RunState, kind: str) -> None:
    state.redis.hincrby(state.keys.check_runs(), kind, 1)


def check_counts(state: RunState) -> dict[str, int]:
    raw = state.redis.hgetall(state.keys.check_runs())
    return {k.decode(): int(v) for k, v in raw.items()}


def run_counted(state: RunState, kind: str, command: str, cwd: Path, timeout_s: float, *,
                settings: SwarmSettings | None = None, reads: Sequence[Path] = ()) -> CheckResult:
    """Run the check (sandboxed: see :func:`~swarm_tasks.builder.check.run_check`) and count the run."""
    count_check(state, kind)
    return run_check(command, cwd, timeout_s, settings=settings, reads=reads)


def tip_passes(state: RunState, clone: Clone, sha: str, command: str, timeout_s: float, kind: str = FULL, *,
               settings: SwarmSettings | None = None) -> bool:
    """Whether ``command`` passes on commit ``sha`` (run once per commit, command and run, in a
    scratch worktree beside the clone: the sandbox lets it read the clone's git directory)."""
    digest = hashlib.sha1(command.encode(), usedforsecurity=False).hexdigest()[:12]
    key = state.keys.record("build", f"tip-check-{sha}-{digest}")
    rec = state.records.get(key)
    if rec is not None:
        return bool(json.loads(rec.data)["passed"])
    with tempfile.TemporaryDirectory(prefix="tip-", dir=clone.path.parent) as scratch:
        tree = Path(scratch) / "tip"
        clone.git("worktree", "add", "--detach", "--quiet", str(tree), sha)
        try:
            reads = [clone.git_dir(), *borrowed_objects(clone.spec)]
            passed = run_counted(state, kind, command, tree, timeout_s, settings=settings, reads=reads).passed
        finally:
            clone.git("worktree", "remove", "--force", str(tree), check=False)
            clone.git("worktree", "prune", check=False)
    data = json.dumps({"passed": passed}).encode()
    state.records.update(key, lambda cur: None if cur is not None else Write(data))
    return passed


@dataclasses.dataclass(frozen=True, slots=True)
class Gate:
    """The gate on landing the commits of ``clone`` (the quick check, or else the full one)."""

    state: RunState
    clone: Clone
    full: str | None
    quick: str | None
    timeout_s: float
    settings: SwarmSettings | None = None  # of the sandbox the check runs in (None: this process's)

    @property
    def configured(self) -> bool:
        return bool(self.quick or self.full)

    @property
    def recheck(self) -> Recheck:
        """After a replay: the quick check always, the full one only when contended."""
        return Recheck.ALWAYS if self.quick else Recheck.CONTENDED

    def changed_paths(self) -> list[str]:
        """Files the local commits change (relative to the shared branch) that still exist."""
        diff = self.clone.git("diff", "--name-only", "-z", "--no-renames", "--diff-filter=d",
                              f"{self.clone.upstream_ref}...HEAD")
        return split_z(diff.stdout)

    def __call__(self) -> CheckResult:
        if self.quick:
            paths = self.changed_paths()
            if not paths:
                return CheckResult(passed=True, exit_code=0, output="no changed file to check", timed_out=False,
                                   duration_s=0.0)
            return self._gated(QUICK, render_paths(self.quick, paths), paths)
        assert self.full is not None
        return self._gated(FULL, self.full, None)

    def _gated(self, kind: str, command: str, paths: list[str] | None) -> CheckResult:
        result = run_counted(self.state, kind, command, self.clone.path, self.timeout_s, settings=self.settings,
                             reads=borrowed_objects(self.clone.spec))
        if result.passed or result.timed_out:
            return result
        base = self.clone.out("rev-parse", self.clone.upstream_ref)
        if paths is not None:  # the same files as they are on the tip (a new file cannot fail there)
            assert self.quick is not None
            there = [p for p in paths if self.clone.git("cat-file", "-e", f"{base}:{p}", check=False).ok]
            if not there:
                return result
            command = render_paths(self.quick, there)
        if not tip_passes(self.state, self.clone, base, command, self.timeout_s, kind, settings=self.settings):
            note = (f"note: the check fails on the branch tip ({base[:12]}) as well, so this failure does not "
                    "block the push\n")
            return dataclasses.replace(result, passed=True, output=note + result.output)
        return result
