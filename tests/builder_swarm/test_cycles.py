"""Cycles in one process (steps drained in order, the idle hook called by hand): the judge, the bound on
cycles, the record of each cycle, sub-planners, dependencies, conflicts resolved by a sub-agent, and a
check that hangs."""

from __future__ import annotations

import json
from pathlib import Path

from coordination.tasks import TaskStatus
from swarm_tasks.builder.codemod import sequential_reference, split_by_file
from swarm_tasks.builder.cycles import CycleBook, Phase
from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.specs import RESOLVER, WORKER
from swarm_tasks.builder.workflow import agents_of, submit_build
from swarm_tasks.runs import RunStatus
from tests.builder_swarm.helpers import (
    NOTES_CHECK,
    SCRIPTED,
    checkout,
    drive,
    git,
    make_remote,
    refs,
    show,
    tip,
)

MODELS = {"planner": f"{SCRIPTED}:planner", "worker": f"{SCRIPTED}:worker"}
# Strips trailing blanks: idempotent, as formatters are, so the judge sees nothing left to change.
STRIP = "sed -i 's/[[:space:]]*$//' {path}"


def test_codemod_stops_when_nothing_changes_and_matches_the_sequential_run(local, tmp_path: Path) -> None:
    files = {f"src/m{i:02d}.txt": f"line {i}   \nkeep\t\n" for i in range(9)} | {"README.md": "readme  \n"}
    bare = make_remote(tmp_path / "r", files)
    reference = checkout(bare, tmp_path / "reference")
    expected = sequential_reference(reference, STRIP, split_by_file(reference, ["src/*.txt"]))
    job = BuildJob(repo=str(bare), goal="strip trailing blanks", codemod=STRIP, files=("src/*.txt",),
                   check="! git grep -n '[[:space:]]$' -- src", builders=2, max_cycles=3, batch_size=2)
    record = drive(local, submit_build(local.services, job).id)
    assert record.status is RunStatus.COMPLETED, record.reason
    result = record.result
    assert result["stopped_because"] == "judge" and len(result["cycles"]) == 1 and result["check_passed"] is True
    assert result["cycles"][0]["reason"] == "the codemod changes nothing more on the tip"
    assert git(bare, "rev-parse", "main^{tree}") == expected
    assert show(bare, "README.md") == "readme"  # git show strips the newline: the file itself is untouched
    assert result["tasks"] == {"done": 5}
    assert f"refs/tags/swarm/{record.id}/cycle-1" in refs(bare)
    assert tip(bare, f"refs/tags/swarm/{record.id}/cycle-1") == tip(bare)
    doc, _ = local.services.run(record.id).state.progress.read()
    assert "Cycle 1:" in doc.sections["cycle 1"] and "check passed" in doc.sections["cycle 1"]


def test_the_judge_continues_while_the_check_fails_then_stops_when_it_passes(local, tmp_path: Path) -> None:
    bare = make_remote(tmp_path / "r", {"TODO.md": "notes/log.txt | cycle {cycle}\n", "notes/log.txt": ""})
    job = BuildJob(repo=str(bare), goal="log two cycles", check="test $(wc -l < notes/log.txt) -ge 2",
                   models=MODELS, builders=2, max_cycles=5)
    record = drive(local, submit_build(local.services, job).id)
    assert record.status is RunStatus.COMPLETED, record.reason
    cycles = record.result["cycles"]
    assert [c["decision"] for c in cycles] == ["continue", "stop"]
    assert [c["check"]["passed"] for c in cycles] == [False, True]
    assert all(c["judged_by"] == "deterministic judge (program)" for c in cycles)
    assert show(bare, "notes/log.txt").splitlines() == ["cycle 1", "cycle 2"]
    tags = [r for r in refs(bare) if r.startswith(f"refs/tags/swarm/{record.id}/")]
    assert tags == [f"refs/tags/swarm/{record.id}/cycle-2"] and tip(bare, tags[0]) == tip(bare)  # only the green one
    assert [c["tag"] for c in cycles] == ["", tags[0]] and [c["accepted"] for c in cycles] == [False, True]
    assert [c["landed_count"] for c in cycles] == [1, 1] and record.result["commits_landed"] == 2
    # The second planner started with a fresh context that tells it what the first cycle did.
    ctx = local.services.run(record.id)
    planner = ctx.agents.get(next(a for a in agents_of(ctx, "build.planner")
                                  if ctx.agents.get(a).input == {"cycle": 2}))
    task_text = ctx.agents.conversation(planner)[1]["content"]
    assert "Cycle 2 of at most 5" in task_text and "Cycle 1: tasks 1 done" in task_text
    assert CycleBook(ctx.state).current().phase is Phase.DONE


def test_cycles_are_bounded_and_a_failing_check_fails_the_run(local, tmp_path: Path) -> None:
    bare = make_remote(tmp_path / "r", {"TODO.md": "notes/log.txt | cycle {cycle}\n", "notes/log.txt": ""})
    job = BuildJob(repo=str(bare), goal="never good enough", check="exit 3", models=MODELS, max_cycles=3)
    record = drive(local, submit_build(local.services, job).id)
    assert record.status is RunStatus.FAILED
    assert record.result["stopped_because"] == "max_cycles" and len(record.result["cycles"]) == 3
    assert record.reason.startswith("the check FAILED (exit 3")
    assert "on the final tip, after 3 cycle(s) (max_cycles (3)); 3 commit(s) landed" in record.reason
    assert record.result["tagged"] == [] and record.result["commits_landed"] == 3  # no cycle was green
    # The tip was red from the start, so a red check did not block the workers' pushes.
    assert show(bare, "notes/log.txt").splitlines() == ["cycle 1", "cycle 2", "cycle 3"]


def test_planning_workers_and_a_model_judge(local, tmp_path: Path) -> None:
    """Sub-planners for a large area, a dependency, overlapping edits whose conflicts a resolver
    sub-agent resolves in the worker's clone, and a (scripted) model judge."""
    todo = ["RESOLVE-WITH-SUBAGENT", *(f"shared.txt | entry {i:02d}" for i in range(5)),
            "first: b.txt | beta", "b.txt | gamma | after first", *(f"area/x{i}.txt | x {i}" for i in range(4))]
    bare = make_remote(tmp_path / "r", {"TODO.md": "\n".join(todo) + "\n", "shared.txt": "", "b.txt": "alpha\n"})
    job = BuildJob(repo=str(bare), goal="add the TODO lines", check=NOTES_CHECK, builders=3, max_cycles=2,
                   models={**MODELS, "judge": f"{SCRIPTED}:judge", "resolver": f"{SCRIPTED}:resolver"},
                   mechanical_merge=False)  # every conflict goes to a model: the resolvers are what is tested
    record = drive(local, submit_build(local.services, job).id)
    assert record.status is RunStatus.COMPLETED, record.reason
    assert show(bare, "shared.txt").splitlines() == [f"entry {i:02d}" for i in range(5)]
    assert show(bare, "b.txt").splitlines() == ["alpha", "beta", "gamma"]
    assert [show(bare, f"area/x{i}.txt") for i in range(4)] == [f"x {i}" for i in range(4)]
    verdict = record.result["cycles"][0]
    assert verdict["judged_by"] == f"model judge ({SCRIPTED}:judge)" and verdict["decision"] == "stop"
    ctx = local.services.run(record.id)
    planners = [ctx.agents.get(a) for a in agents_of(ctx, "build.planner")]
    assert sorted(p.depth for p in planners) == [0, 1]  # the root and one sub-planner for area/
    board = ctx.state.board
    assert {t.parent for t in board.tasks()} == {p.id for p in planners}  # each planner filed its own
    for planner in planners:
        assert_woken_after_its_tasks(ctx, planner)
    gamma = next(t for t in board.tasks() if "gamma" in t.title)
    beta = next(t for t in board.tasks() if "beta" in t.title)
    assert gamma.depends_on == (beta.id,) and gamma.created_at <= beta.ended_at  # filed early, ran after
    assert record.result["hot_spots"][0][0] == "shared.txt"
    resolvers = [ctx.agents.get(a) for a in agents_of(ctx, RESOLVER)]
    assert resolvers and all(r.status.value == "done" and r.parent for r in resolvers)
    assert {ctx.agents.get(r.parent).spec for r in resolvers} == {WORKER}
    assert all(t.status is TaskStatus.DONE for t in board.tasks())


def assert_woken_after_its_tasks(ctx, planner) -> None:
    """The planner's wait_for_tasks held it until every task it filed had ended: the answer lists each
    one's outcome, and its turn after its last wait began once the last of them had ended. A planner
    whose tasks were all still open when it waited (the sub-planner) proves the wait really blocked."""
    filed = ctx.state.board.children(planner.id)
    assert filed
    conversation = ctx.agents.conversation(planner)
    waits = [c["id"] for m in conversation if m["role"] == "assistant" for c in m.get("tool_calls") or []
             if c["function"]["name"] == "wait_for_tasks"]
    assert len(waits) == 1
    answer = next(m for m in conversation if m["role"] == "tool" and m.get("tool_call_id") == waits[0])
    outcomes = json.loads(answer["content"])
    assert sorted(o["task"] for o in outcomes) == sorted(t.id for t in filed)
    assert all(o["status"] == "done" and o["result"]["landed"] for o in outcomes)
    last_end = max(t.ended_at for t in filed)
    events = [e for e in ctx.state.events.read(count=100_000) if e.subject == planner.id]
    waited = max(i for i, e in enumerate(events) if e.type == "agent.waiting")
    woken = next(e for e in events[waited:] if e.type == "agent.ready")
    assert woken.ts >= last_end
    if planner.depth == 1:  # filed, then waited at once: nothing had ended yet
        assert events[waited].ts < min(t.ended_at for t in filed)


def test_a_check_that_hangs_is_killed_and_nothing_is_pushed(local, tmp_path: Path) -> None:
    bare = make_remote(tmp_path / "r", {"TODO.md": "notes/a.txt | one\n", "notes/a.txt": ""})
    before = tip(bare)
    job = BuildJob(repo=str(bare), goal="g", check="sleep 600", check_timeout_s=0.5, models=MODELS, max_cycles=1,
                   task_attempts=1)
    record = drive(local, submit_build(local.services, job).id)
    assert record.status is RunStatus.FAILED
    assert "TIMED OUT after" in record.reason
    failed = local.services.run(record.id).state.board.tasks()
    assert [t.status for t in failed] == [TaskStatus.FAILED]
    assert tip(bare) == before  # the branch never moved
