"""The deterministic judge's rules, and a worker that finds its clone gone (another machine took its turn)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordination.run import RunState
from swarm_tasks.agents.program import ProgramContext
from swarm_tasks.agents.spec import AgentSpec
from swarm_tasks.agents.state import AgentState
from swarm_tasks.builder.agents import prepare_worker
from swarm_tasks.builder.cycles import CheckSummary, Decision
from swarm_tasks.builder.gate import check_counts
from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.judge import decide, first_failing
from swarm_tasks.errors import WorkspaceError
from swarm_tasks.host.workspace import git_alternates
from swarm_tasks.runs import RunRecord
from swarm_tasks.settings import SwarmSettings
from tests.builder import clone_of, edit, make_remote

MODEL = BuildJob(repo="r", goal="g", check="make test", models={"planner": "m", "worker": "m"})
CODEMOD = BuildJob(repo="r", goal="g", codemod="ruff format {path}", check="ruff check")


def check(passed: bool, status: str | None = None) -> CheckSummary:
    return CheckSummary(passed=passed, status=status or ("passed" if passed else "failed"),
                        exit_code=None if status == "timed_out" else int(not passed), duration_s=1.0)


def test_model_mode_stops_when_the_check_passes_and_continues_while_it_fails() -> None:
    assert decide(MODEL, check(True), [], ["a task failed"]) == (Decision.STOP, "the check passes on the tip")
    assert decide(MODEL, check(False), [], [])[0] is Decision.CONTINUE
    assert "TIMED OUT" in decide(MODEL, check(False, "timed_out"), [], [])[1]
    unchecked = MODEL.model_copy(update={"check": None})
    assert decide(unchecked, None, [], [])[0] is Decision.STOP
    assert decide(unchecked, None, [], ["x: failed"])[0] is Decision.CONTINUE


def test_codemod_mode_stops_at_the_fixpoint() -> None:
    assert decide(CODEMOD, check(False), ["a.py"], [])[0] is Decision.CONTINUE
    assert decide(CODEMOD, check(True), [], []) == (Decision.STOP, "the codemod changes nothing more on the tip")
    stop, why = decide(CODEMOD, check(False), [], [])
    assert stop is Decision.STOP and "the check FAILED" in why  # more cycles of the codemod cannot help
    stop, why = decide(CODEMOD, check(True), ["a.py", "b.py"], [], repeated=["a.py"])
    assert stop is Decision.STOP and why.startswith("the codemod is not idempotent: run again on the tip it changes 1")
    stop, why = decide(CODEMOD, check(True), [], [], file_failures={"a.py": "exit 2"})
    assert stop is Decision.STOP and "fails on 1 file(s)" in why


def test_a_cycle_in_which_nothing_landed_and_tasks_failed_is_the_last() -> None:
    for job in (MODEL, CODEMOD):
        stop, why = decide(job, check(False), ["a.py"], ["t: remote refused the push"], landed=0)
        assert stop is Decision.STOP and why.startswith("no task of this cycle landed and 1 failed")


def worker_context(state: RunState, job: BuildJob, workspace: Path, settings: SwarmSettings, *,
                   turn: int) -> ProgramContext:
    """What a build worker's prepare hook is given before turn ``turn``."""
    run = RunRecord(id=state.run_id, kind="build", spec=job.model_dump(mode="json"), created_at=0.0)
    agent = AgentState(id="a-1", run=state.run_id, spec="build.worker", role="worker", input={"task": "t-1"},
                       created_at=0.0, updated_at=0.0, turn=turn)
    return ProgramContext(agent=agent, spec=AgentSpec(name="build.worker", role="worker", model="m"), run=run,
                          state=state, workspace=workspace, settings=settings)


def test_a_worker_whose_clone_is_on_another_machine_fails_instead_of_starting_over(make_run, swarm_settings,
                                                                                   tmp_path: Path) -> None:
    pctx = worker_context(make_run(), MODEL, tmp_path / "empty", swarm_settings, turn=3)
    with pytest.raises(WorkspaceError, match="is not on this machine"):
        prepare_worker(pctx)


def test_a_workers_prepare_vouches_for_the_objects_its_clone_borrows(make_run, swarm_settings,
                                                                      tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r", {"a.txt": "a\n"})
    job = MODEL.model_copy(update={"repo": remote.url})
    vouched = prepare_worker(worker_context(make_run(), job, tmp_path / "ws", swarm_settings, turn=0))
    assert vouched == [(Path(remote.url) / "objects").resolve()]
    assert git_alternates(tmp_path / "ws" / ".git") == vouched  # the clone borrows exactly those


def test_a_red_tip_is_bisected_to_the_first_commit_that_fails_the_check(make_run, tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "r", {"a.txt": "fine\n"})
    clone = clone_of(remote, tmp_path, "w")
    base = clone.head()
    commits = [edit(clone, f"f{i}.txt", "BROKEN\n" if i == 3 else "ok\n", f"c{i}") for i in range(6)]
    state = make_run()
    check = "! grep -rq BROKEN --exclude-dir=.git ."
    assert first_failing(state, clone, base, commits, check, 30) == commits[3]
    assert check_counts(state)["full"] <= 4  # the base and a binary search over six commits
    assert first_failing(state, clone, commits[3], commits[4:], check, 30) == ""  # red from before: no culprit
