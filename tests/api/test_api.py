"""The Python API (``swarm_tasks.api``) for real: a real Redis, real worker processes, a deterministic
review end to end, and the steering calls (wait, cancel, resume) on a run that cannot finish."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.api import Progress, RunHandle, Swarm
from swarm_tasks.errors import JobSpecError, RunNotFound
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import QUEUES, SwarmSettings
from tests.builder_swarm.helpers import make_remote
from tests.review.helpers import EXAMPLE, write_tree

TINY = {"app.py": 'import subprocess\n\nPASSWORD = "hunter22-secret"\n\n\ndef run(cmd):\n'
                  '    return subprocess.call(cmd, shell=True)\n\n\ndef calc(expr):\n    return eval(expr)\n'}


def queued(client: redis.Redis) -> dict[str, int]:
    """Messages waiting on every queue of the swarm."""
    return {q: int(client.llen(q)) for q in QUEUES}


def all_keys(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(match="*"))


@pytest.fixture
def idle_swarm(swarm_settings: SwarmSettings) -> Iterator[Swarm]:
    """A client of the test Redis with no worker at all: what it submits waits on its queue."""
    with Swarm(swarm_settings, workers=0) as swarm:
        assert swarm.cluster is None
        yield swarm


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "tiny", TINY)


@pytest.mark.slow
def test_review_end_to_end_status_progress_results_report_and_cost(swarm_settings, redis_client):
    with Swarm(swarm_settings, workers=1, concurrency=8) as swarm:
        assert swarm.cluster is not None and len(swarm.cluster.workers) == 1
        run = swarm.review(EXAMPLE, title="api test")
        assert isinstance(run, RunHandle) and run.status in (RunStatus.RUNNING, RunStatus.FINALIZING,
                                                             RunStatus.COMPLETED)
        assert isinstance(run.progress(), Progress)
        record = run.wait(timeout_s=100)
        assert record.status is RunStatus.COMPLETED, record.reason
        assert run.status is RunStatus.COMPLETED and record.title == "api test"

        progress = run.progress()
        assert progress.status is RunStatus.COMPLETED
        # without models: the inventory and at least four groups of files, each reviewed whole by one agent
        assert progress.started == progress.ended == progress.agents["done"] >= 5
        assert progress.tokens == 0 and progress.cost_usd == 0.0  # analyzers: no model was called
        assert {"scanner", "reviewer"} == set(progress.roles)

        results = run.results()
        assert isinstance(results, dict) and results["mode"] == "deterministic" and results["findings"] > 15
        assert Path(str(results["report_dir"]), "report.md").is_file()
        report = run.report()
        assert len(report.findings) == results["findings"]
        assert {s.value: n for s, n in report.by_severity().items()} == results["by_severity"]

        agents = run.agents()
        assert len(agents) == progress.started and all(a.status is AgentStatus.DONE for a in agents)
        by_role = run.cost(by="role")
        assert set(by_role) == set(run.roles()) == {a.role for a in agents}
        for usage in by_role.values():
            assert all(isinstance(v, float) for v in usage.values()), usage
            assert usage["cost_usd"] == 0.0 == usage["tokens"] and usage["agents_ended"] == usage["agents"] >= 1
        assert {r: int(u["agents"]) for r, u in by_role.items()} == dict(Counter(a.role for a in agents))

        by_agent = run.cost(by="agent")
        assert set(by_agent) == {a.id for a in agents}
        for agent in agents:
            row = by_agent[agent.id]
            assert row["role"] == agent.role and row["role"] in by_role  # the agent's real role, not 0.0
            assert all(isinstance(row[k], float) for k in ("tokens", "cost_usd", "model_calls"))
            assert row["cost_usd"] == 0.0 and row["tokens"] == 0.0
        with pytest.raises(ValueError, match="'role' or 'agent'"):
            run.cost(by="node")

        assert run.id in {r.id for r in swarm.runs()}
        again = swarm.run(run.id)  # a fresh handle on the same run, as another process would get
        assert again.status is RunStatus.COMPLETED and again.results() == results
        assert again.cancel() is False and again.status is RunStatus.COMPLETED  # an ended run stays ended
        with pytest.raises(JobSpecError, match="only a running run can be resumed"):
            again.resume()


@pytest.mark.slow
def test_cancel_ends_a_run_that_workers_are_running(swarm_settings, tmp_path):
    # Without models, groups of files review them, a few files at a time: enough files that the cancel lands
    # while groups work, and they stop between two of their pieces of work.
    tree = tmp_path / "tree"
    shutil.copytree(EXAMPLE, tree)
    write_tree(tree, {f"jobs/task{i}.py": f'"""Task {i}."""\nimport os\n\n\ndef run{i}(cmd):\n    """Run it."""\n'
                                          "    os.system(cmd)\n" for i in range(600)})
    with Swarm(swarm_settings, workers=1, concurrency=4) as swarm:
        run = swarm.review(tree)
        deadline = time.monotonic() + 30
        while run.progress().started < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.cancel("enough") is True
        record = run.wait(timeout_s=5)
        assert record.status is RunStatus.CANCELLED and record.reason == "enough"
        deadline = time.monotonic() + 60  # agents mid-turn end at their next step
        while any(not a.status.terminal for a in run.agents()) and time.monotonic() < deadline:
            time.sleep(0.2)
        statuses = Counter(a.status for a in run.agents())
        assert all(s.terminal for s in statuses) and statuses[AgentStatus.CANCELLED] >= 1, statuses
        cancelled = [a for a in run.agents() if a.status is AgentStatus.CANCELLED]
        # a group cancelled mid-turn stopped between two pieces of its work, and says so
        assert all(a.reason.startswith("the run was cancelled: its files not yet taken on were left")
                   for a in cancelled if a.spec == "review.group" and a.started_at), [(a.reason, a.started_at)
                                                                                      for a in cancelled]
        time.sleep(1.0)
        assert run.status is RunStatus.CANCELLED  # no late worker completes it
        report = run.report()  # what it found until then, marked as what it is
        assert report.outcome is not None and report.outcome.status in (RunStatus.PARTIAL, RunStatus.FAILED)
        assert report.outcome.reason.startswith("the review was cancelled (enough) before it ended")
        assert run.report().finished_at == report.finished_at  # stored once every agent ended: the same report


def test_wait_times_out_resume_resends_and_cancel_ends_a_stalled_run(idle_swarm, tiny_repo, redis_client):
    run = idle_swarm.review(tiny_repo)
    assert run.status is RunStatus.RUNNING
    assert queued(redis_client)["scan"] == 1  # the inventory step waits for a worker that never comes

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"run {run.id} is still running after 0.3s"):
        run.wait(timeout_s=0.3, poll_s=0.05)
    assert time.monotonic() - started < 5 and run.status is RunStatus.RUNNING
    with pytest.raises(JobSpecError, match="no report"):
        run.report()

    assert run.resume() == 1  # the lost step is re-sent, once
    assert queued(redis_client)["scan"] == 2 and run.status is RunStatus.RUNNING
    (agent,) = run.agents()
    assert agent.status is AgentStatus.READY and agent.resent == 1

    assert run.cancel("stop it") is True
    record = run.wait(timeout_s=1)
    assert record.status is RunStatus.CANCELLED and record.reason == "stop it"
    assert [a.status for a in run.agents()] == [AgentStatus.CANCELLED]
    assert run.cancel() is False  # already ended
    with pytest.raises(JobSpecError, match="cancelled; only a running run can be resumed"):
        run.resume()
    assert run.id in {r.id for r in idle_swarm.runs()}


def test_unknown_run_is_a_typed_error(idle_swarm):
    with pytest.raises(RunNotFound, match="no run 'review-does-not-exist'") as caught:
        idle_swarm.run("review-does-not-exist")
    assert isinstance(caught.value, LookupError)


@pytest.mark.parametrize(("bad", "says"), [
    ({"config": {"no_such_option": 1}}, "no_such_option"), ({"limits": {"max_agents": "lots"}}, "max_agents"),
    ({"models": ["not", "a", "map"]}, "models"), ({"models": {"reviewer": ""}}, "no model named for reviewer"),
    ({"models": {"reviwer": "openai/gpt-5.2"}}, "unknown role(s) reviwer")],
    ids=["unknown-field", "wrong-type", "models", "empty-model", "unknown-role"])
def test_a_bad_review_job_raises_and_enqueues_nothing(idle_swarm, tiny_repo, redis_client, bad, says):
    before = all_keys(redis_client)
    with pytest.raises(JobSpecError, match="invalid review job") as caught:
        idle_swarm.review(tiny_repo, **bad)
    assert says in str(caught.value)
    assert all_keys(redis_client) == before
    assert queued(redis_client) == dict.fromkeys(QUEUES, 0) and idle_swarm.runs() == []


@pytest.mark.parametrize("bad", [{"no_such_field": 1}, {"builders": "many"}], ids=["unknown-field", "wrong-type"])
def test_a_bad_build_job_raises_and_enqueues_nothing(idle_swarm, tmp_path, redis_client, bad):
    remote = make_remote(tmp_path / "git", {"notes.txt": "a\n"})
    before = all_keys(redis_client)
    with pytest.raises(JobSpecError, match="invalid build job"):
        idle_swarm.build(remote, goal="format", codemod="true {path}", **bad)
    assert all_keys(redis_client) == before
    assert queued(redis_client) == dict.fromkeys(QUEUES, 0) and idle_swarm.runs() == []


def test_the_good_jobs_do_enqueue(idle_swarm, tiny_repo, tmp_path, redis_client):
    """The control of the two tests above: the same jobs without the fault reach the queues."""
    idle_swarm.review(tiny_repo)
    idle_swarm.build(make_remote(tmp_path / "git", {"notes.txt": "a\n"}), goal="format", codemod="true {path}")
    assert sum(queued(redis_client).values()) == 2 and len(idle_swarm.runs()) == 2
