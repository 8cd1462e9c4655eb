"""The agent loop on a real Redis with the scripted model behind litellm, in-process (no Celery)."""

from __future__ import annotations

import json

import pytest

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.spec import Limits
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.outcome import ReasonClass
from swarm_tasks.runs import RunStatus


def test_agent_edits_files_runs_shell_and_finishes(local, make_spec):
    run = local.start([make_spec("editor", "file_worker")], [ChildRequest("editor", "edit things", key="e")])
    local.drain()
    agents = local.agents(run.id)
    (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.DONE)]
    assert agent.turn == 4
    outputs = agent.result["result"]["tool_outputs"]
    assert "hello from the agent" in outputs[1] and "21" in outputs[1]  # wc -c then cat
    workspace = local.settings.state_dir / "workspaces" / run.id / agent.id
    assert (workspace / "notes" / "hello.txt").read_text() == "goodbye from the agent\n"
    conversation = agents.conversation(agent)
    assert [m["role"] for m in conversation].count("assistant") == 4
    assert agents.usage("run")["model_calls"] == 4
    assert agents.usage("role:agent")["tool_calls"] == 4
    assert local.services.runs.get(run.id).status is RunStatus.RUNNING  # the idle hook runs under Celery


def test_text_only_model_is_nudged_then_stopped_by_turn_budget(local, make_spec):
    spec = make_spec("talker", "chatter", limits=Limits(max_turns=3))
    run = local.start([spec], [ChildRequest("talker", "talk", key="t")])
    local.drain()
    agents = local.agents(run.id)
    (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.STOPPED)]
    assert agent.turn == 3
    assert "turns" in agent.reason and "3" in agent.reason
    nudges = [m for m in agents.conversation(agent) if m["role"] == "user" and "without calling a tool" in
              (m.get("content") or "")]
    assert len(nudges) == 3


def test_repeated_identical_call_is_stopped_as_a_loop(local, make_spec):
    run = local.start([make_spec("looper", "repeater")], [ChildRequest("looper", "loop", key="l")])
    local.drain()
    agents = local.agents(run.id)
    (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.STOPPED)]
    assert "loop detected" in agent.reason and "list_files" in agent.reason
    assert agent.turn == local.settings.agent_repeat_limit


def test_token_budget_stops_an_agent(local, make_spec):
    tokens = make_spec("hungry", "repeater", limits=Limits(max_tokens=50))
    run = local.start([tokens], [ChildRequest("hungry", "eat tokens", key="h")])
    local.drain()
    agents = local.agents(run.id)
    (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.STOPPED)]
    assert agent.reason.startswith("agent budget exceeded: tokens")


def test_wall_time_budget_stops_a_slow_agent(local, make_spec):
    # Each turn of slow_counter waits 1.5 s on its model; 2 s of wall time allows two turns, not four.
    spec = make_spec("slow", "slow_counter", tools=("finish", "read_notes"), limits=Limits(max_wall_s=2.0))
    run = local.start([spec], [ChildRequest("slow", "count slowly", key="s")])
    local.drain()
    agents = local.agents(run.id)
    (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.STOPPED)]
    assert agent.reason.startswith("agent budget exceeded: wall_s"), agent.reason
    assert agent.turn == 2
    assert agents.ids(AgentStatus.DONE) == []


def test_two_agents_ping_ponging_messages_are_stopped(local, make_spec):
    from swarm_tasks.agents.children import child_id

    a_id, b_id = child_id("root", "root", "a"), child_id("root", "root", "b")
    tools = ("finish", "send_message", "read_messages")
    spec = make_spec("chatty", "chatty", tools=tools, limits=Limits(max_turns=200))
    run = local.start([spec], [ChildRequest("chatty", f"peer: {b_id}", key="a"),
                               ChildRequest("chatty", f"peer: {a_id}", key="b")])
    local.drain()
    agents = local.agents(run.id)
    stopped = agents.get_many(agents.ids(AgentStatus.STOPPED))
    assert {a.id for a in stopped} == {a_id, b_id}
    for agent in stopped:  # stopped by the ping-pong guard (limit 40 per pair), long before max_turns
        assert agent.reason.startswith("loop detected: ") and "ping-ponging" in agent.reason, agent.reason
        assert agent.turn <= 25
        conversation = agents.conversation(agent)
        assert conversation[-1]["role"] == "tool" and "ping-ponging" in conversation[-1]["content"]
    assert sum(a.turn for a in stopped) == 42  # 40 messages delivered, the 41st and 42nd refused


def test_context_is_compacted_and_the_agent_goes_on(local, make_spec):
    spec = make_spec("reader", "compactor", tools=("finish", "read_file", "write_file"))
    run = local.start([spec], [ChildRequest("reader", "read a big file", key="r")])
    local.drain()
    agents = local.agents(run.id)
    (agent,) = agents.get_many(agents.ids(AgentStatus.DONE))
    assert agent.result["result"] == {"went_on_after_compaction": True}
    assert agent.compactions == 1
    conversation = agents.conversation(agent)
    assert any("SUMMARY: wrote big.txt" in (m.get("content") or "") for m in conversation)  # the model's summary
    # Every tool result still follows the assistant message that called it.
    called: set[str] = set()
    for message in conversation:
        if message["role"] == "assistant":
            called |= {c["id"] for c in message.get("tool_calls") or []}
        if message["role"] == "tool":
            assert message["tool_call_id"] in called
    notes = local.services.run(run.id).state.notes.latest(agent.id, limit=20)
    assert sum(n.kind == "compaction" for n in notes) == agent.compactions


def test_run_caps_on_total_and_concurrent_agents(swarm_settings, make_spec):
    from swarm_tasks.runs import RunLimits
    from tests.runtime.conftest import Local

    parent = make_spec("boss", "capped_spawner", subagents=("adder",), tools=("finish", "spawn_agents"))
    child = make_spec("adder", "adder", tools=("finish",))
    rt = Local(swarm_settings)
    try:
        # At most 3 agents in all: the boss and two adders start, the third adder is refused, and the
        # boss is told so.
        run = rt.start([parent, child], [ChildRequest("boss", "sum", key="b")], limits=RunLimits(max_agents=3))
        rt.drain()
        agents = rt.agents(run.id)
        (boss,) = [a for a in agents.get_many(agents.ids(AgentStatus.DONE)) if a.spec == "boss"]
        assert sorted(boss.result["result"]["statuses"]) == ["done", "done", "refused"]
        assert agents.usage("run")["agents_started"] == 3

        # At most 2 alive at once: the waiting boss holds one slot, so adders run one at a time.
        run = rt.start([parent, child], [ChildRequest("boss", "sum", key="b")],
                       limits=RunLimits(max_concurrent_agents=2))
        agents = rt.agents(run.id)
        alive_most, queued_seen = 0, 0
        step = rt.runtime.run_step

        def watched(run_id: str, agent_id: str, seq: int):
            nonlocal alive_most, queued_seen
            outcome = step(run_id, agent_id, seq)
            live = (AgentStatus.READY, AgentStatus.RUNNING, AgentStatus.WAITING)
            alive = [agent_id for status in live for agent_id in agents.ids(status)]
            queued_seen = max(queued_seen, len(agents.ids(AgentStatus.QUEUED)))
            alive_most = max(alive_most, len(alive))
            return outcome

        rt.runtime.run_step = watched  # type: ignore[method-assign]
        rt.drain()
        (boss,) = [a for a in agents.get_many(agents.ids(AgentStatus.DONE)) if a.spec == "boss"]
        assert boss.result["result"]["statuses"] == ["done", "done", "done"]
        assert alive_most == 2 and queued_seen >= 1
    finally:
        rt.close()


def test_cost_budgets_of_agent_role_and_run_hold_for_a_priced_model(swarm_settings, make_spec):
    """A model litellm cannot price gets its price from settings; each cost budget then stops agents."""
    from swarm_tasks.runs import RunLimits
    from swarm_tasks.settings import ModelPrice
    from tests.runtime.conftest import Local

    spec = make_spec("spender", "counter", tools=("finish", "read_notes"))
    price = ModelPrice(input_usd_per_mtok=1_000.0, output_usd_per_mtok=4_000.0)
    settings = swarm_settings.model_copy(update={"model_prices": {spec.model: price}})
    rt = Local(settings)
    try:
        agent_capped = spec.model_copy(update={"name": "capped", "limits": Limits(max_cost_usd=0.05)})
        run = rt.start([spec, agent_capped], [ChildRequest("spender", "spend", key="free"),
                                              ChildRequest("capped", "spend", key="capped")])
        rt.drain()
        agents = rt.agents(run.id)
        by_spec = {a.spec: a for a in agents.get_many(agents.ids(AgentStatus.DONE) + agents.ids(AgentStatus.STOPPED))}
        free, capped = by_spec["spender"], by_spec["capped"]
        assert free.status is AgentStatus.DONE and free.turn == 5
        # The cost is the settings' price of the tokens the agent used.
        assert free.usage.cost_usd == pytest.approx(price.cost_usd(free.usage.prompt_tokens,
                                                                   free.usage.completion_tokens))
        assert free.usage.cost_usd > 0.05
        assert capped.status is AgentStatus.STOPPED and capped.reason.startswith("agent budget exceeded: cost_usd")
        assert capped.reason_class is ReasonClass.BUDGET and "SWARM_AGENT_MAX_COST_USD" in capped.reason
        assert agents.usage("run")["cost_usd"] == pytest.approx(free.usage.cost_usd + capped.usage.cost_usd)

        for limits, scope in ((RunLimits(max_cost_usd=0.05), "run"),
                              (RunLimits(role_max_cost_usd={"agent": 0.05}), "role agent")):
            run = rt.start([spec], [ChildRequest("spender", "spend", key="s")], limits=limits)
            rt.drain()
            agents = rt.agents(run.id)
            (stopped,) = agents.get_many(agents.ids(AgentStatus.STOPPED))
            assert stopped.turn < 5 and f"the {scope}'s cost cap was reached: $" in stopped.reason
            assert stopped.reason_class is ReasonClass.COST_CAP
    finally:
        rt.close()


def test_subagents_run_and_report_back(local, make_spec):
    parent = make_spec("boss", "spawner", subagents=("adder",), tools=("finish", "spawn_agents"))
    child = make_spec("adder", "adder", tools=("finish",))
    run = local.start([parent, child], [ChildRequest("boss", "sum things", key="b")])
    local.drain()
    agents = local.agents(run.id)
    done = [agents.get(a) for a in agents.ids(AgentStatus.DONE)]
    boss = next(a for a in done if a.spec == "boss")
    assert boss.result["result"] == {"total": 12, "children": 3}
    kids = [a for a in done if a.spec == "adder"]
    assert len(kids) == 3 and all(k.parent == boss.id and k.depth == 1 for k in kids)


def test_malformed_calls_come_back_as_errors_and_the_agent_goes_on(local, make_spec):
    run = local.start([make_spec("clumsy", "bad_caller")], [ChildRequest("clumsy", "try things", key="c")])
    local.drain()
    agents = local.agents(run.id)
    (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.DONE)]
    errors = agent.result["result"]["errors"]
    assert "invalid arguments for read_file" in errors[0]
    assert "unknown tool 'launch_missiles'" in errors[1]
    assert "wrong_field" in errors[2]
    assert "invalid arguments for finish" in errors[3]


def test_configured_secrets_never_reach_a_transcript(swarm_settings, make_spec, tmp_path):
    from pydantic import SecretStr

    from tests.runtime.conftest import Local

    secret = "sk-test-9f8e7d6c5b4a3210"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "secret.txt").write_text(f"key={secret}\n")
    local = Local(swarm_settings.model_copy(update={"api_key": SecretStr(secret)}))
    try:
        run = local.start([make_spec("reader", "secret_reader")],
                          [ChildRequest("reader", f"read it (the key is {secret})", key="r",
                                        labels={"workspace": str(workspace)})])
        local.drain()
        agents = local.agents(run.id)
        (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.DONE)]
        tool_results = [m["content"] for m in agents.conversation(agent) if m["role"] == "tool"]
        assert "key=***" in tool_results[0]
        # The model repeats the key in its text and its finish call: both are masked in the transcript
        # (the task text is the caller's own, kept as given).
        assistant = [m for m in agents.conversation(agent) if m["role"] == "assistant"]
        assert "the key was ***" in (assistant[-1].get("content") or "")
        assert "read ***" in assistant[-1]["tool_calls"][0]["function"]["arguments"]
        assert all(secret not in json.dumps(m) for m in agents.conversation(agent) if m["role"] != "user")
    finally:
        local.close()


def test_an_agent_going_on_takes_its_next_turns_in_the_same_step(local, make_spec):
    """A step may chain the agent's following turns (what a Celery worker does for up to CHAIN_S):
    each is still acquired and recorded as its own turn, and no step message is sent between them."""
    run = local.start([make_spec("editor", "file_worker")], [ChildRequest("editor", "edit things", key="e")])
    (step,) = local.scheduler.steps
    local.scheduler.steps.clear()
    sent = local.scheduler.sent
    assert local.runtime.run_step(*step, chain_s=60.0).value == "ran"
    agents = local.agents(run.id)
    (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.DONE)]
    assert agent.turn == 4 and agent.seq == step[2] + 3  # four turns, each recorded under its own seq
    assert local.scheduler.sent == sent and not local.scheduler.steps


def test_a_worker_shutting_down_sends_the_next_step_instead_of_chaining_it(local, make_spec):
    run = local.start([make_spec("editor", "file_worker")], [ChildRequest("editor", "edit things", key="e")])
    (step,) = local.scheduler.steps
    local.scheduler.steps.clear()
    assert local.runtime.run_step(*step, chain_s=60.0, stopping=lambda: True).value == "ran"
    assert list(local.scheduler.steps) == [(run.id, step[1], step[2] + 1)]  # one turn, the next one sent
    local.drain()
    agents = local.agents(run.id)
    (agent,) = [agents.get(a) for a in agents.ids(AgentStatus.DONE)]
    assert agent.turn == 4
