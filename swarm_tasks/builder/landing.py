"""Landing a task's change exactly once, and learning from the races it took.

Every task commit carries a ``Swarm-Task: <run>/<task>`` trailer. Whoever takes a task over (its
previous worker died, its lease expired) first looks for that trailer on the branch: a change that
already landed is never applied twice. A push that must replay onto an upstream that already holds
the task's commit gives up instead of merging the same change in again (a codemod would run twice).
Files contended or conflicted in rebases are counted per run: the hot spots fed back to planners.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from pydantic import JsonValue

from coordination.keys import GLOBAL_SCOPE, Keys
from coordination.landing import LandingTurns
from coordination.run import RunState
from swarm_tasks.builder.gitops import Clone, RemoteSpec, prepare_clone
from swarm_tasks.builder.rebase import PushOutcome, PushStatus
from swarm_tasks.builder.replay import RebaseConflict, Resolver

TRAILER = "Swarm-Task"
EMAIL_DOMAIN = "swarm-tasks.invalid"  # reserved TLD: clearly not a real mailbox


def trailer(run_id: str, task_id: str) -> str:
    return f"{TRAILER}: {run_id}/{task_id}"


def commit_message(title: str, run_id: str, task_id: str, body: str = "") -> str:
    """The message of a task's commit: its title, an optional body, and the task trailer."""
    text = title.strip().splitlines()[0][:200] if title.strip() else f"task {task_id}"
    parts = [text, body.strip(), trailer(run_id, task_id)]
    return "\n\n".join(p for p in parts if p) + "\n"


def landed_commit(clone: Clone, since: str, upto: str, run_id: str, task_id: str) -> str | None:
    """The commit in ``since..upto`` (all of ``upto`` without ``since``) that carries the task's trailer."""
    rev = f"{since}..{upto}" if since else upto
    found = clone.git("log", "--format=%H", "-n", "1", "--fixed-strings", f"--grep={trailer(run_id, task_id)}",
                      rev, "--", check=False)
    sha = found.stdout.decode().strip()
    return sha or None


def worker_clone(spec: RemoteSpec, dest: Path, agent_id: str, union: Sequence[str] = ()) -> Clone:
    """The agent's clone at the branch tip (a fresh one, or ``dest`` reset to the tip); files matching
    ``union`` merge with git's union driver in it."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", agent_id).strip("-") or "agent"
    return prepare_clone(spec, dest, author_name=agent_id, author_email=f"{name}@{EMAIL_DOMAIN}", union=union)


def open_clone(spec: RemoteSpec, path: Path) -> Clone | None:
    """The existing clone at ``path``, None if there is none (a worker moved to another machine)."""
    return Clone(path, spec) if (path / ".git").is_dir() else None


def once_only(resolve: Resolver, run_id: str, task_id: str, base: str) -> Resolver:
    """``resolve``, except that it declines when upstream already holds this task's commit."""

    def guarded(conflict: RebaseConflict) -> bool:
        if landed_commit(conflict.clone, base, conflict.onto, run_id, task_id):
            return False
        return resolve(conflict)

    return guarded


def decline(conflict: RebaseConflict) -> bool:
    """A resolver that resolves nothing: a model worker resolves its conflicts itself, in later turns."""
    return False


def landed_commits(clone: Clone, since: str, upto: str, run_id: str) -> list[tuple[str, str]]:
    """``(sha, task id)`` of every commit of this run in ``since..upto``, oldest first."""
    rev = f"{since}..{upto}" if since else upto
    out = clone.git("log", "--reverse", "--format=%H %(trailers:key=Swarm-Task,valueonly,separator=%x2C)",
                    "--fixed-strings", f"--grep={TRAILER}: {run_id}/", rev, "--", check=False)
    found = []
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        sha, _, tasks = line.partition(" ")
        task = next((t.split("/", 1)[1] for t in tasks.split(",") if t.startswith(f"{run_id}/")), "")
        found.append((sha, task))
    return found


def outcome_record(outcome: PushOutcome) -> dict[str, JsonValue]:
    """A push's outcome as kept in its task's result. ``commit``: the commit that landed (None when
    nothing new did); ``checked_on_landed_tree``: whether the gate check ran on exactly what landed."""
    return {"landed": outcome.landed, "status": outcome.status.value, "sha": outcome.sha,
            "commit": outcome.sha if outcome.status is PushStatus.LANDED else None,
            "checked_on_landed_tree": outcome.checked, "attempts": outcome.attempts, "rebases": outcome.rebases,
            "first_try": outcome.first_try, "conflicted_files": list(outcome.conflicted_files),
            "hot_spots": outcome.hot_spots, "reason": outcome.reason}


def landing_turns(state: RunState, clone: Clone) -> Callable[[], AbstractContextManager[bool]]:
    """The queue for landing on the clone's remote branch, shared by every run pushing there (global
    scope): each push attempt waits for its turn instead of racing the others (coordination/landing.py)."""
    keys = Keys(state.settings.key_prefix, GLOBAL_SCOPE)
    # The server's clock, as every other lease: hosts whose clocks are minutes apart agree on when a turn lapses.
    return LandingTurns(state.redis, keys, f"{clone.spec.display_url}#{clone.spec.branch}",
                        now=state.records.now).turn


def record_hotspots(state: RunState, outcome: PushOutcome) -> None:
    """Count the files this push was contended or conflicted on (conflicts count double)."""
    key = state.keys.hotspots()
    if not outcome.hot_spots:
        return
    pipe = state.redis.pipeline(transaction=False)
    for path in outcome.hot_spots:
        pipe.hincrby(key, path, 2 if path in outcome.conflicted_files else 1)
    pipe.execute()


def top_hotspots(state: RunState, limit: int = 10) -> list[tuple[str, int]]:
    """The files that caused most rebases and conflicts so far, most first."""
    raw = state.redis.hgetall(state.keys.hotspots())
    counts = sorted(((k.decode(), int(v)) for k, v in raw.items()), key=lambda kv: (-kv[1], kv[0]))
    return counts[:limit]


def describe_hotspots(spots: list[tuple[str, int]]) -> str:
    if not spots:
        return "none yet"
    return ", ".join(f"{path} ({count})" for path, count in spots)
