"""Conflict hot spots: counted per file from push outcomes, fed to the next planner and to planners filing
tasks that would collide on them."""

from __future__ import annotations

import json

from coordination.tasks import TaskStatus
from swarm_tasks.builder.job import TASK_ROLE, BuildJob
from swarm_tasks.builder.landing import record_hotspots, top_hotspots
from swarm_tasks.builder.rebase import PushOutcome, PushStatus
from swarm_tasks.builder.specs import planner_task
from swarm_tasks.builder.staffing import claim_for, record_costly
from swarm_tasks.builder.tools import TaskDraft, hotspot_collisions


def outcome(conflicted: list[str], contended: list[str]) -> PushOutcome:
    return PushOutcome(status=PushStatus.LANDED, landed=True, sha="0" * 40, attempts=2, rebases=1,
                       conflicts_resolved=len(conflicted), first_try=False, conflicted_files=conflicted,
                       contended_files=contended, reason="")


def test_hotspots_are_counted_and_ranked(make_run) -> None:
    state = make_run()
    record_hotspots(state, outcome(["a.py"], ["a.py", "b.py"]))  # a conflict counts double
    record_hotspots(state, outcome([], ["b.py"]))
    record_hotspots(state, outcome([], ["c.py"]))
    record_hotspots(state, outcome([], []))
    assert top_hotspots(state) == [("a.py", 2), ("b.py", 2), ("c.py", 1)]
    assert top_hotspots(state, 1) == [("a.py", 2)]
    job = BuildJob(repo="r", goal="refactor", check="make test", models={"planner": "m", "worker": "m"})
    text = planner_task(job, 2, [], top_hotspots(state))
    assert "Cycle 2 of at most 3" in text and '"a.py" (2), "b.py" (2), "c.py" (1)' in text
    assert "none yet" in planner_task(job, 1, [], [])


def test_tasks_that_would_edit_a_hot_spot_at_once_are_flagged() -> None:
    hot = {"core.py": 5}
    apart = [TaskDraft(title="one", files=["core.py"]), TaskDraft(title="two", files=["core.py", "x.py"])]
    warnings = hotspot_collisions(apart, hot)
    assert len(warnings) == 1 and "core.py (hot spot, 5) is edited by 2 tasks" in warnings[0]
    chained = [TaskDraft(key="one", title="one", files=["core.py"]),
               TaskDraft(title="two", files=["core.py"], depends_on=["one"])]
    assert hotspot_collisions(chained, hot) == []
    assert hotspot_collisions(apart, {}) == []  # overlapping, but not (yet) a hot spot


def test_a_task_waits_while_a_running_task_owns_a_file_whose_conflicts_cost_a_model(make_run) -> None:
    state = make_run()
    board = state.board
    for priority, name, files in ((3, "first", ["registry.py"]), (2, "second", ["registry.py", "b.py"]),
                                  (1, "third", ["c.py"])):
        board.create(TASK_ROLE, name, priority=priority, labels={"files": json.dumps(files)}, task_id=f"t-{name}")
    first = claim_for(state, "w1", 60.0, ownership=True)
    assert first is not None and first.task.title == "first"
    record_costly(state, ["registry.py"])  # its rebase conflicts needed a model: from now on it is owned
    assert claim_for(state, "w2", 60.0, ownership=True).task.title == "third"  # "second" is passed over
    assert claim_for(state, "w3", 60.0, ownership=True) is None  # and waits, untouched
    assert board.get("t-second").status is TaskStatus.PENDING and board.get("t-second").attempts == 0
    board.complete(first)
    assert claim_for(state, "w4", 60.0, ownership=True).task.title == "second"
