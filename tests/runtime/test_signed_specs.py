"""With SWARM_TASK_SIGNING_KEY the agent specs a run stores are signed: a signed run runs as before, and
a spec changed in Redis afterwards (its tools, instructions, hooks) is refused before any turn, failing
the run with the reason."""

from __future__ import annotations

from pydantic import SecretStr

from coordination.store import Write
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.runner import StepOutcome
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.runs import RunStatus
from tests.runtime.conftest import Local

KEY = "signed-specs-test-key-0a1b2c3d"


def test_signed_specs_run_and_a_changed_one_is_refused(swarm_settings, make_spec) -> None:
    rt = Local(swarm_settings.model_copy(update={"task_signing_key": SecretStr(KEY)}))
    try:
        adder = make_spec("adder", "adder", tools=("finish",))
        run = rt.start([adder], [ChildRequest("adder", "add 2 and 3", key="a")])
        assert run.signature
        rt.drain()
        (done,) = rt.agents(run.id).get_many(rt.agents(run.id).ids(AgentStatus.DONE))
        assert done.result["result"] == {"sum": 5}

        run = rt.start([adder], [ChildRequest("adder", "add 2 and 3", key="a")])
        ctx = rt.services.run(run.id)
        key = ctx.state.keys.record("spec", "adder")
        data = ctx.state.records.get(key).data.replace(b'"finish"', b'"finish","shell"')
        ctx.state.records.update(key, lambda _current: Write(data))  # what write access to Redis allows
        rt.services._contexts.clear()  # a fresh worker: nothing cached
        outcomes = [rt.runtime.run_step(*step) for step in rt.scheduler.steps]
        rt.scheduler.steps.clear()
        assert outcomes == [StepOutcome.REFUSED]
        record = rt.services.runs.get(run.id)
        assert record.status is RunStatus.FAILED
        assert "agent spec" in record.reason and "does not match its signature" in record.reason
        (failed,) = rt.agents(run.id).get_many(rt.agents(run.id).ids(AgentStatus.FAILED))
        assert failed.reason == record.reason and failed.turn == 0
    finally:
        rt.close()
