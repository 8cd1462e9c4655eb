"""How a plain agent run ends (``plain.ending.on_idle``): completed only if every agent finished; partial if
some did not (or the agent cap refused one); failed if no root agent finished."""

from __future__ import annotations

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.outcome import ReasonClass
from swarm_tasks.plain.ending import on_idle
from swarm_tasks.runs import RunLimits, RunStatus


def ended(local, run_id):
    on_idle(local.services, local.services.runs.get(run_id))
    return local.services.runs.get(run_id)


def test_all_roots_finished_is_completed(local, make_spec):
    run = local.start([make_spec("adder", "adder", tools=("finish",))],
                      [ChildRequest("adder", "add 1 and 1", key="a"), ChildRequest("adder", "add 2 and 2", key="b")])
    local.drain()
    record = ended(local, run.id)
    assert record.status is RunStatus.COMPLETED and record.reason is None
    assert record.outcome.agents == {"done": 2} and record.elapsed_s is not None and record.elapsed_s >= 0


def test_a_looping_agent_beside_a_finished_one_is_partial_and_alone_is_failed(local, make_spec):
    specs = [make_spec("adder", "adder", tools=("finish",)), make_spec("looper", "repeater")]
    run = local.start(specs, [ChildRequest("adder", "add 1 and 1", key="a"), ChildRequest("looper", "loop", key="l")])
    local.drain()
    record = ended(local, run.id)
    assert record.status is RunStatus.PARTIAL
    assert record.reason.startswith("1 of 2 agents was stopped: loop detected: the same call to list_files")
    assert record.outcome.stopped == {"loop": 1} and record.outcome.problems[0].reason_class is ReasonClass.LOOP

    run = local.start(specs, [ChildRequest("looper", "loop", key="l")])
    local.drain()
    record = ended(local, run.id)
    assert record.status is RunStatus.FAILED and record.reason.startswith("1 of 1 agent was stopped: loop")


def test_children_the_agent_cap_refused_make_the_run_partial(local, make_spec):
    parent = make_spec("boss", "capped_spawner", subagents=("adder",), tools=("finish", "spawn_agents"))
    run = local.start([parent, make_spec("adder", "adder", tools=("finish",))], [ChildRequest("boss", "sum", key="b")],
                      limits=RunLimits(max_agents=3))
    local.drain()
    record = ended(local, run.id)
    assert record.status is RunStatus.PARTIAL and record.outcome.refused == 1
    assert record.reason == ("1 agent(s) were never started: the run may start at most 3 agents "
                             "(raise --max-agents or SWARM_RUN_MAX_AGENTS)")
