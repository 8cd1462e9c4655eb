"""Landing commits on the shared branch: races, conflicts, checks, refusals, many pushers at once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import redis

from coordination.backoff import Backoff
from coordination.keys import GLOBAL_SCOPE, Keys
from coordination.landing import LandingTurns
from swarm_tasks.builder import (
    CheckResult,
    Clone,
    PushStatus,
    RebaseConflict,
    Recheck,
    RemoteSpec,
    commit_all,
    find_conflict_markers,
    prepare_clone,
    push_with_rebase,
    run_check,
    run_git,
)
from swarm_tasks.errors import GitError
from tests.builder import (
    FAST,
    SHARED,
    assert_sane,
    clone_of,
    edit,
    git,
    make_remote,
    refuse,
    remote_file,
    remote_tip,
)


@pytest.fixture
def remote(tmp_path: Path) -> RemoteSpec:
    return make_remote(tmp_path, {"README.md": "hello\n", "shared.txt": SHARED})


def test_racing_on_different_files_rebases_and_both_land(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "a.txt", "from a\n", "a")
    mine = edit(b, "b.txt", "from b\n", "b")
    first = push_with_rebase(a, resolve=refuse, max_attempts=3, backoff=FAST)
    second = push_with_rebase(b, resolve=refuse, check=lambda: run_check("test -f a.txt", b.path, 30),
                              max_attempts=3, backoff=FAST)
    assert first.status is PushStatus.LANDED and first.first_try and first.rebases == 0
    assert second.status is PushStatus.LANDED and not second.first_try
    assert (second.attempts, second.rebases, second.conflicts_resolved) == (2, 1, 0)
    assert second.check is not None and second.check.passed
    assert remote_tip(remote) == second.sha == b.head()
    assert git(b.path, "log", "-1", "--format=%an <%ae> %ad %s", "--date=raw") == git(
        b.path, "log", "-1", "--format=%an <%ae> %ad %s", "--date=raw", mine)  # author kept by the replay
    # The replay is written in-process (no commit-tree): committed by the clone's identity, now, and whole.
    assert git(b.path, "log", "-1", "--format=%cn <%ce> %P") == f"b <b@example.invalid> {first.sha}"
    assert abs(int(git(b.path, "log", "-1", "--format=%ct")) - time.time()) < 60
    git(b.path, "fsck", "--strict", "--no-dangling")
    git(Path(remote.url), "fsck", "--strict", "--no-dangling")
    assert remote_file(remote, "a.txt") == "from a" and remote_file(remote, "b.txt") == "from b"
    assert_sane(b)


def racing_on_shared_line(remote: RemoteSpec, tmp_path: Path) -> tuple[Clone, Clone, str]:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "shared.txt", SHARED.replace("line 5", "line 5 by a"), "a edits line 5")
    mine = edit(b, "shared.txt", SHARED.replace("line 5", "line 5 by b"), "b edits line 5")
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    return a, b, mine


def test_conflict_on_the_same_lines_goes_to_the_resolver(remote: RemoteSpec, tmp_path: Path) -> None:
    _, b, mine = racing_on_shared_line(remote, tmp_path)
    seen: list[RebaseConflict] = []

    def resolve(conflict: RebaseConflict) -> bool:
        seen.append(conflict)
        text = (conflict.path / "shared.txt").read_text()
        assert "<<<<<<< " in text and "line 5 by a" in text and "line 5 by b" in text
        (conflict.path / "shared.txt").write_text(SHARED.replace("line 5", "line 5 by a and b"))
        return True

    outcome = push_with_rebase(b, resolve=resolve, max_attempts=3, backoff=FAST)
    assert outcome.landed and outcome.conflicts_resolved == 1
    assert [c.files for c in seen] == [["shared.txt"]] and seen[0].commit == mine
    assert seen[0].subject == "b edits line 5" and seen[0].replayed_version("shared.txt") is not None
    assert outcome.conflicted_files == ["shared.txt"] and outcome.hot_spots == ["shared.txt"]
    assert "line 5 by a and b" in remote_file(remote, "shared.txt")
    assert git(Path(remote.url), "log", "--format=%s", "main").splitlines()[:2] == ["b edits line 5",
                                                                                  "a edits line 5"]


def test_declined_conflict_leaves_remote_and_local_commit_intact(remote: RemoteSpec, tmp_path: Path) -> None:
    _, b, mine = racing_on_shared_line(remote, tmp_path)
    tip = remote_tip(remote)
    outcome = push_with_rebase(b, resolve=lambda c: False, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.CONFLICT_UNRESOLVED and not outcome.landed
    assert "shared.txt" in outcome.reason and outcome.conflicted_files == ["shared.txt"]
    assert remote_tip(remote) == tip and b.head() == mine
    assert_sane(b)


def test_resolver_that_leaves_markers_or_raises_changes_nothing(remote: RemoteSpec, tmp_path: Path) -> None:
    _, b, mine = racing_on_shared_line(remote, tmp_path)
    tip = remote_tip(remote)
    outcome = push_with_rebase(b, resolve=lambda c: True, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.CONFLICT_MARKERS and "shared.txt:" in outcome.reason

    def explode(conflict: RebaseConflict) -> bool:
        raise RuntimeError("agent crashed")

    with pytest.raises(RuntimeError, match="agent crashed"):
        push_with_rebase(b, resolve=explode, max_attempts=3, backoff=FAST)
    assert remote_tip(remote) == tip and b.head() == mine
    assert_sane(b)


def test_markers_committed_behind_our_back_are_not_pushed(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w")
    (clone.path / "x.txt").write_text("<<<<<<< HEAD\n")
    git(clone.path, "add", "x.txt")
    git(clone.path, "commit", "-q", "-m", "sneaky")
    outcome = push_with_rebase(clone, resolve=refuse, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.CONFLICT_MARKERS and "x.txt:1" in outcome.reason
    assert remote_tip(remote) != clone.head()


def test_failing_check_after_rebase_does_not_land(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "a.txt", "a\n", "a")
    edit(b, "b.txt", "b\n", "b")
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    tip = remote_tip(remote)
    outcome = push_with_rebase(b, resolve=refuse, check=lambda: run_check("sleep 30", b.path, 0.3),
                               max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.CHECK_FAILED and "timed out" in outcome.reason
    assert outcome.check is not None and outcome.check.timed_out
    assert remote_tip(remote) == tip
    assert git(b.path, "log", "--format=%s", "-2").splitlines() == ["b", "a"]  # replayed, kept
    assert_sane(b)


def test_refusals_and_exhausted_retries(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "a.txt", "a\n", "a")
    edit(b, "b.txt", "b\n", "b")
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    exhausted = push_with_rebase(b, resolve=refuse, max_attempts=1)
    assert exhausted.status is PushStatus.RETRIES_EXHAUSTED and exhausted.attempts == 1
    hook = Path(remote.url) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    b = clone_of(remote, tmp_path, "b")  # at the tip again: the hook is the only obstacle
    edit(b, "b.txt", "b\n", "b")
    refused = push_with_rebase(b, resolve=refuse, max_attempts=5, backoff=FAST)
    assert refused.status is PushStatus.REJECTED and refused.attempts == 1
    (b.path / "README.md").write_text("dirty\n")
    with pytest.raises(GitError, match="uncommitted changes"):
        push_with_rebase(b, resolve=refuse, max_attempts=1)


def test_unreachable_remote_is_retried_then_reported(remote: RemoteSpec, tmp_path: Path) -> None:
    # A clone with its own objects (as of any remote not on this machine): each attempt tries again.
    run_git(["clone", "--quiet", "--", remote.url, str(tmp_path / "own")], cwd=tmp_path)
    clone = prepare_clone(remote, tmp_path / "own", author_name="w", author_email="w@example.invalid")
    assert clone.borrowed_remote() is None
    edit(clone, "a.txt", "a\n", "a")
    os.rename(remote.url, remote.url + ".gone")
    outcome = push_with_rebase(clone, resolve=refuse, max_attempts=2, sleep=lambda s: None)
    assert outcome.status is PushStatus.REMOTE_ERROR and outcome.attempts == 2 and not outcome.landed


def test_vanished_local_remote_of_a_shared_clone_is_reported(remote: RemoteSpec, tmp_path: Path) -> None:
    clone = clone_of(remote, tmp_path, "w")
    assert clone.borrowed_remote() == Path(remote.url).resolve()
    edit(clone, "a.txt", "a\n", "a")
    mine = clone.head()
    os.rename(remote.url, remote.url + ".gone")
    outcome = push_with_rebase(clone, resolve=refuse, max_attempts=2, sleep=lambda s: None)
    assert outcome.status is PushStatus.REMOTE_ERROR and not outcome.landed and outcome.sha == mine
    assert "is gone" in outcome.reason and "put the remote back" in outcome.reason
    os.rename(remote.url + ".gone", remote.url)  # back again: the commit was kept and now lands
    assert clone.head() == mine
    assert push_with_rebase(clone, resolve=refuse, sleep=lambda s: None).status is PushStatus.LANDED


def test_many_pushers_at_once_lose_nothing(tmp_path: Path) -> None:
    _many_pushers(tmp_path, None)


def test_pushers_taking_turns_lose_no_push(tmp_path: Path, redis_client: redis.Redis) -> None:
    # One turn at a time: whoever holds it fetches, replays and pushes, so no push can find the branch moved.
    turns = LandingTurns(redis_client, Keys("push-test", GLOBAL_SCOPE), "shared#main", width=1, max_wait_s=120)
    _many_pushers(tmp_path, turns.turn)


def _many_pushers(tmp_path: Path, turns: Callable[[], AbstractContextManager[bool]] | None) -> None:
    workers, commits = 8, 3
    sections = "".join(f"[w{i}]\nnothing yet\n\n\n" for i in range(workers))
    spec = make_remote(tmp_path, {"shared.txt": sections})
    clones = [clone_of(spec, tmp_path, f"w{i}") for i in range(workers)]
    outcomes: list[list[object]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def union(worker: int) -> object:
        def resolve(conflict: RebaseConflict) -> bool:
            # Upstream's file with this worker's own section taken from the commit being replayed.
            mine = (conflict.replayed_version("shared.txt") or b"").decode().split("\n\n\n")
            text = (conflict.upstream_version("shared.txt") or b"").decode().split("\n\n\n")
            text[worker] = mine[worker]
            (conflict.path / "shared.txt").write_text("\n\n\n".join(text))
            return True
        return resolve

    def work(worker: int) -> None:
        try:
            clone = clones[worker]
            barrier.wait()
            for n in range(commits):
                (clone.path / f"own-{worker}-{n}.txt").write_text(f"{worker}/{n}\n")
                text = (clone.path / "shared.txt").read_text()
                marker = f"[w{worker}]\n"
                start = text.index(marker) + len(marker)
                end = text.index("\n", start)
                (clone.path / "shared.txt").write_text(f"{text[:start]}commit {n}{text[end:]}")
                commit_all(clone, f"w{worker} c{n}")
                outcome = push_with_rebase(clone, resolve=union(worker), max_attempts=60,
                                           backoff=Backoff(base_s=0.005, cap_s=0.1), turns=turns)
                outcomes[worker].append(outcome)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert not errors, errors
    assert all(o.landed for per in outcomes for o in per), [o.reason for per in outcomes for o in per]
    if turns is not None:
        assert all(o.attempts == 1 for per in outcomes for o in per)  # type: ignore[attr-defined]
    checkout = clone_of(spec, tmp_path, "final")
    subjects = set(git(checkout.path, "log", "--format=%s").splitlines())
    assert {f"w{w} c{n}" for w in range(workers) for n in range(commits)} <= subjects
    for w in range(workers):
        for n in range(commits):
            assert (checkout.path / f"own-{w}-{n}.txt").read_text() == f"{w}/{n}\n"
    shared = (checkout.path / "shared.txt").read_text()
    assert all(f"[w{w}]\ncommit {commits - 1}\n" in shared for w in range(workers)), shared
    tracked = git(checkout.path, "ls-files").splitlines()
    assert find_conflict_markers(checkout.path, tracked) == []


def test_refresh_first_replays_before_pushing(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "a.txt", "a\n", "a")
    edit(b, "b.txt", "b\n", "b")
    assert push_with_rebase(a, resolve=refuse, refresh_first=True).first_try  # nothing moved: no replay
    outcome = push_with_rebase(b, resolve=refuse, refresh_first=True, max_attempts=3, backoff=FAST)
    assert outcome.first_try and (outcome.attempts, outcome.rebases) == (1, 1)
    assert git(Path(remote.url), "log", "--format=%s", "main").splitlines() == ["b", "a", "seed"]
    assert_sane(b)


def test_recheck_contended_skips_the_check_when_files_are_disjoint(remote: RemoteSpec, tmp_path: Path) -> None:
    runs: list[str] = []
    scratch = tmp_path / "check"  # a workspace of its own: a root worker lends it to the check's sandbox uid,
    scratch.mkdir()  # which the remote beside it must never be

    def check() -> CheckResult:
        runs.append("ran")
        return run_check("true", scratch, 30)

    for upstream_file, expected in (("a.txt", []), ("shared.txt", ["ran"])):
        runs.clear()
        a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
        text = (a.path / "shared.txt").read_text()
        edit(a, upstream_file, text.replace("line 1\n", f"line 1 {upstream_file}\n"), f"a edits {upstream_file}")
        edit(b, "shared.txt", text.replace("line 9", f"line 9 {upstream_file}"), "b edits line 9")
        assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
        outcome = push_with_rebase(b, resolve=refuse, check=check, recheck=Recheck.CONTENDED,
                                   max_attempts=3, backoff=FAST)
        assert outcome.landed and runs == expected
        assert outcome.contended_files == ([] if upstream_file == "a.txt" else ["shared.txt"])


def test_identical_change_already_upstream_lands_as_up_to_date(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "same.txt", "same\n", "a")
    edit(b, "same.txt", "same\n", "b")
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    outcome = push_with_rebase(b, resolve=refuse, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.UP_TO_DATE and outcome.landed
    assert b.head() == remote_tip(remote) and outcome.sha == remote_tip(remote)
    assert_sane(b)


def test_several_local_commits_are_replayed_one_by_one(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "a.txt", "a\n", "a")
    for n in range(3):
        edit(b, f"b{n}.txt", f"{n}\n", f"b{n}")
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    outcome = push_with_rebase(b, resolve=refuse, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.LANDED and outcome.rebases == 1
    log = git(Path(remote.url), "log", "--format=%s %an", "main").splitlines()
    assert log == ["b2 b", "b1 b", "b0 b", "a a", "seed Seed"]
    assert_sane(b)


def test_untracked_file_where_upstream_adds_one_does_not_break_landing(remote: RemoteSpec, tmp_path: Path) -> None:
    a, b = clone_of(remote, tmp_path, "a"), clone_of(remote, tmp_path, "b")
    edit(a, "generated.txt", "from upstream\n", "a adds generated.txt")
    edit(b, "b.txt", "b\n", "b")
    (b.path / "generated.txt").write_text("local scratch\n")  # untracked, in the way
    assert push_with_rebase(a, resolve=refuse, max_attempts=1).landed
    outcome = push_with_rebase(b, resolve=refuse, max_attempts=3, backoff=FAST)
    assert outcome.status is PushStatus.LANDED and b.head() == remote_tip(remote)
    assert (b.path / "generated.txt").read_text() == "from upstream\n"
    assert_sane(b)
