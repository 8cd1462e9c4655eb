"""Poison input ends its agent, never its redelivery: a turn that cannot be recorded, or that takes its
worker down, is tried a bounded number of times and the agent fails with the reason. A result too large
for its record is stored apart with it, within a size budget checked before anything is written."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.spec import AgentKind, AgentSpec
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolResult, run_tool
from swarm_tasks.errors import StoppedBySignal
from swarm_tasks.worker.control_loop import sweep_agents
from tests.runtime.conftest import Local
from tests.runtime.programs import WorkerDied

PROGRAMS = "tests.runtime.programs"


def program(name: str, fn: str) -> AgentSpec:
    return AgentSpec(name=name, role="agent", kind=AgentKind.PROGRAM, program=f"{PROGRAMS}:{fn}", tools=())


@pytest.fixture
def small_records(swarm_settings, request):
    local = Local(swarm_settings.model_copy(update={"max_record_bytes": 64_000, "max_result_bytes": 400_000}))
    yield local
    local.close()


def test_a_result_too_large_for_its_record_is_stored_apart_and_read_back(small_records):
    roots = [ChildRequest("big", "make a big result", key="big", input=300_000),
             ChildRequest("big", "make a small result", key="small", input=2_000)]
    run = small_records.start([program("big", "huge_result")], roots)
    small_records.drain()
    agents = small_records.agents(run.id)
    done = agents.get_many(agents.ids(AgentStatus.DONE))
    assert len(done) == 2
    big = next(a for a in done if len(a.result["rows"]) == 300)
    assert big.result_apart > 64_000 and big.result["rows"][299].startswith("00000299")
    assert agents.get(big.id).result == big.result  # one record or many: the same result
    raw = agents.redis.hget(agents.keys.agent(big.id), "d")
    assert len(raw) < 64_000  # the record itself stayed within its budget
    small = next(a for a in done if a.id != big.id)
    assert small.result_apart == 0 and len(small.result["rows"]) == 2
    assert not agents.redis.exists(agents.keys.agent_result(small.id))


def test_a_result_past_the_budget_fails_its_agent_after_bounded_attempts(small_records):
    run = small_records.start([program("big", "huge_result")],
                              [ChildRequest("big", "make a result too big to keep", key="big", input=900_000)])
    outcomes = small_records.drain()
    limit = small_records.settings.agent_max_turn_attempts
    assert outcomes.count("failed") == limit - 1 and outcomes.count("gave_up") == 1, outcomes
    agents = small_records.agents(run.id)
    (agent,) = agents.get_many(agents.ids(AgentStatus.FAILED))
    assert agent.reason.startswith(f"its turn failed {limit} times in a row, the last time with PayloadTooLarge")
    assert "result of agent" in agent.reason and "over the limit of 400000 bytes" in agent.reason
    assert agent.result is None and agent.attempts == limit
    assert agents.usage("run")["active"] == 0  # its slot was given back: the run can go idle


def test_a_turn_cut_by_a_stop_signal_is_redone_not_reported(swarm_settings, request):
    """A program whose analyzer was stopped by a warm stop of its worker is neither failed nor given a
    result about it: the turn is handed back and redone (counted like any attempt, so never endless)."""
    local = Local(swarm_settings)
    request.addfinalizer(local.close)
    run = local.start([program("stopped", "stopped_once")], [ChildRequest("stopped", "work", key="s")])
    assert local.drain() == ["failed", "ran", f"idle:{run.id}"]
    agents = local.agents(run.id)
    (agent,) = agents.get_many(agents.ids(AgentStatus.DONE))
    assert agent.result == {"attempt": 2} and agent.reason is None and agent.attempts == 0


def test_a_model_agent_tool_cut_by_a_stop_signal_raises_to_its_turn() -> None:
    """A model never hears "run_analyzer failed" for a stop of its worker: the tool raises to its turn
    (which is redone, as above), where a tool's own error is the model's to read."""


    class Raising(Tool):
        name = "run_analyzer"
        description = "analyze"
        Args = ToolArgs

        def __init__(self, error: Exception) -> None:
            self.error = error

        def run(self, args: object, ctx: object) -> ToolResult:
            raise self.error

    with pytest.raises(StoppedBySignal):
        run_tool(Raising(StoppedBySignal("ESLint was stopped by SIGTERM (the worker is stopping)")), {}, None)  # type: ignore[arg-type]
    told = run_tool(Raising(ValueError("a bug")), {}, None)  # type: ignore[arg-type]
    assert told.is_error and "ValueError: a bug" in told.content


def test_a_turn_that_raises_after_it_was_recorded_is_not_run_again(swarm_settings, request):
    """Sending the step of an agent it started fails (a dropped connection) after the parent's end was
    recorded: the parent stays ended. Retrying its turn made a DONE agent READY and run again, counted it
    ended twice, and the run went idle (and ended partial) while an agent was still running. The step not
    sent is re-sent by the sweeper after its grace."""
    local = Local(swarm_settings)
    request.addfinalizer(local.close)
    sent = local.scheduler.enqueue

    def drop_the_leafs(agent, queue, *, countdown_s=0.0):  # the first is the root's own step
        if local.scheduler.sent in (1, 2):  # sent as the parent ends, and again after its end is recorded
            local.scheduler.sent += 1
            raise redis.ConnectionError("Connection closed by server.")
        sent(agent, queue, countdown_s=countdown_s)

    local.scheduler.enqueue = drop_the_leafs  # type: ignore[method-assign]
    run = local.start([program("parent", "parent_of_one"), program("leaf", "leaf")],
                      [ChildRequest("parent", "start a leaf", key="p")])
    ctx = local.services.run(run.id)
    assert local.drain() == ["ran"]  # the leaf's step was lost with the connection: nothing is idle
    assert sweep_agents(local.services, ctx, now=ctx.state.records.now() + 3600) == 1  # re-sent
    assert local.drain() == ["ran", f"idle:{run.id}"]
    agents = local.agents(run.id)
    assert len(agents.get_many(agents.ids(AgentStatus.DONE))) == 2
    usage = agents.usage("run")
    assert usage["agents_done"] == 2 and usage["active"] == 0  # each end counted once
    ended = [e for e in ctx.state.events.read() if e.type == "agent.done"]
    assert len(ended) == 2


def test_the_agents_an_ending_starts_are_sent_before_the_ending_is_written(local):
    """A chain of agents each starting the next waits one write less per link; a send that fails there is
    made again once the ending is recorded, and nothing runs twice."""
    seen: list[tuple[str, str]] = []
    sent = local.scheduler.enqueue

    def watch(agent, queue, *, countdown_s=0.0):
        if agent.spec == "leaf":
            parent = local.agents(agent.run).get(agent.parent)
            seen.append((parent.status.value, "failed" if len(seen) == 0 and fail_first else "sent"))
            if len(seen) == 1 and fail_first:
                raise redis.ConnectionError("Connection closed by server.")
        sent(agent, queue, countdown_s=countdown_s)

    local.scheduler.enqueue = watch  # type: ignore[method-assign]
    for fail_first in (False, True):
        seen.clear()
        run = local.start([program("parent", "parent_of_one"), program("leaf", "leaf")],
                          [ChildRequest("parent", "start a leaf", key=f"p{fail_first}")])
        assert local.drain() == ["ran", "ran", f"idle:{run.id}"]
        # sent while the parent still held its turn; after a failed send, again once the parent had ended
        assert seen == ([("running", "failed"), ("done", "sent")] if fail_first else [("running", "sent")])
        agents = local.agents(run.id)
        assert agents.usage("run")["agents_done"] == 2


def test_an_agent_that_kills_its_worker_every_time_fails_with_that_reason(swarm_settings, request, caplog):
    caplog.set_level(logging.WARNING, logger="swarm_tasks.worker.control_loop")
    local = Local(swarm_settings.model_copy(update={"agent_turn_lease_s": 0.2}))
    request.addfinalizer(local.close)
    run = local.start([program("crasher", "dies")], [ChildRequest("crasher", "crash", key="c")])
    ctx = local.services.run(run.id)
    limit = local.settings.agent_max_turn_attempts
    for attempt in range(1, limit + 1):
        run_id, agent_id, seq = local.scheduler.steps.popleft()
        with pytest.raises(WorkerDied):
            local.runtime.run_step(run_id, agent_id, seq)
        agent = ctx.agents.get(agent_id)
        assert agent.status is AgentStatus.RUNNING and agent.attempts == attempt
        time.sleep(0.3)  # the worker is gone: its lease lapses and a sweeper hands the turn on
        assert sweep_agents(local.services, ctx, now=ctx.state.records.now() + 3600) == 1
    assert local.drain() == ["gave_up", f"idle:{run.id}"]  # and with it ended, the run is idle
    agent = ctx.agents.get(agent_id)
    assert agent.status is AgentStatus.FAILED and agent.turns_lost == limit and agent.attempts == limit
    assert agent.reason == (f"its turn was started {limit} times and never finished: the worker running it died or "
                            "stalled each time (killed, out of memory, or a crash on this agent's input)")
    # each hand-over is logged with whose turn it was and by how much its lease had lapsed
    handed = [r.getMessage() for r in caplog.records if "handed on" in r.getMessage()]
    assert len(handed) == limit and all(f"agent {agent_id}: the turn held by {local.services.node}#" in m
                                        and "lapsed" in m for m in handed), handed


def test_a_step_redelivered_after_its_worker_died_takes_the_lapsed_turn_over_and_says_so(swarm_settings, request,
                                                                                         caplog):
    caplog.set_level(logging.WARNING, logger="swarm_tasks.agents")
    local = Local(swarm_settings.model_copy(update={"agent_turn_lease_s": 2.0}))
    request.addfinalizer(local.close)
    run = local.start([program("crasher", "dies")], [ChildRequest("crasher", "crash", key="c")])
    ctx = local.services.run(run.id)
    run_id, agent_id, seq = local.scheduler.steps.popleft()
    with pytest.raises(WorkerDied):
        local.runtime.run_step(run_id, agent_id, seq)
    local.runtime.run_step(run_id, agent_id, seq)  # re-delivered while the turn is held: left alone
    assert ctx.agents.get(agent_id).attempts == 1 and not [r for r in caplog.records if "took over" in r.getMessage()]
    time.sleep(2.2)
    with pytest.raises(WorkerDied):  # once the lease has lapsed, the same step takes the turn over
        local.runtime.run_step(run_id, agent_id, seq)
    agent = ctx.agents.get(agent_id)
    assert agent.turns_lost == 1 and agent.attempts == 2
    taken = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
    assert len(taken) == 1, taken
    assert f"agent {agent_id}: took over the turn held by {local.services.node}#1" in taken[0], taken


@pytest.mark.slow
def test_on_real_workers_the_attempts_and_result_budgets_hold(swarm_settings, tmp_path):
    from swarm_tasks.agents.services import SwarmClient
    from swarm_tasks.celery import CeleryScheduler, app, use_settings
    from swarm_tasks.launch import start_agents
    from swarm_tasks.worker.cluster import LocalCluster

    settings = swarm_settings.model_copy(update={"max_record_bytes": 64_000})
    client = SwarmClient.create(settings, use_settings(settings).client, CeleryScheduler(app))
    # The two budgets reach the workers only through their environment, as the README documents them.
    documented = {"SWARM_AGENT_MAX_TURN_ATTEMPTS": "2", "SWARM_MAX_RESULT_BYTES": "400000"}
    with LocalCluster(settings, workers=1, queues=("agents", "control"), concurrency=4, name_prefix="poison",
                      log_dir=tmp_path / "logs", extra_env=documented):
        run = start_agents(client, [program("big", "huge_result")],
                           [ChildRequest("big", "a result for beside the record", key="apart", input=300_000),
                            ChildRequest("big", "a result past the budget", key="over", input=900_000)])
        deadline = time.monotonic() + 120
        while not client.runs.get(run.id).status.terminal:
            assert time.monotonic() < deadline, "the run did not end: a poison step is being redelivered"
            time.sleep(0.2)
    agents = client.run(run.id).agents
    (done,) = agents.get_many(agents.ids(AgentStatus.DONE))
    (failed,) = agents.get_many(agents.ids(AgentStatus.FAILED))
    assert done.result_apart > 64_000 and len(done.result["rows"]) == 300  # stored beside its record, read back
    assert failed.attempts == 2 and failed.reason.startswith(
        "its turn failed 2 times in a row, the last time with PayloadTooLarge")
    record = client.runs.get(run.id)  # it ended: its own record did not overflow with the roots' results
    assert record.status.value == "partial" and "1 of 2" in (record.reason or ""), record.reason
    roots = {r["agent"]: r["result"] for r in record.result["roots"]}
    assert roots[done.id] == {"stored_with_agent": done.id, "bytes": done.result_apart}
