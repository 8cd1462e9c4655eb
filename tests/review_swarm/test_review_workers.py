"""The review swarm on real Celery worker processes: work spreads over every worker, and killing one
mid-run changes nothing in the findings."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.review.workflow import load_report, submit_review
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.sources import SourceSpec
from swarm_tasks.worker.cluster import LocalCluster
from tests.review.helpers import EXAMPLE, write_tree

pytestmark = pytest.mark.slow


@pytest.fixture
def client(swarm_settings: SwarmSettings) -> Iterator[SwarmClient]:
    handle = use_settings(swarm_settings)
    yield SwarmClient.create(swarm_settings, handle.client, CeleryScheduler(app))


@pytest.fixture
def three_workers(swarm_settings: SwarmSettings, tmp_path: Path) -> Iterator[LocalCluster]:
    # Small concurrency so that no single process can take the whole review before the others start.
    settings = swarm_settings.model_copy(update={"agent_turn_lease_s": 3.0})
    cluster = LocalCluster(settings, workers=3, queues=("agents", "scan", "review", "control"), concurrency=2,
                           name_prefix="node", log_dir=tmp_path / "logs").start()
    yield cluster
    cluster.stop()


def wait(client: SwarmClient, run_id: str, timeout_s: float = 150.0) -> RunStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.runs.get(run_id).status
        if status.terminal:
            return status
        time.sleep(0.2)
    raise AssertionError(f"review {run_id} did not end in {timeout_s}s")


def findings_of(report) -> set[tuple[str, int, str, str]]:
    return {(f.file, f.start_line, f.rule, f.severity.value) for f in report.findings}


def test_work_spreads_over_three_workers_and_survives_a_kill(client, three_workers, tmp_path):
    # Without models the files are reviewed in groups, a group per agent, which help each other: enough files
    # that each group takes a while, and the kill lands while node1 runs one (a group whose turn is lost gives
    # each file it had claimed a scan agent of its own, on the workers left).
    tree = tmp_path / "tree"
    shutil.copytree(EXAMPLE, tree)
    write_tree(tree, {f"jobs/task{i}.py": f'"""Task {i}."""\nimport os\nfrom shop import db\n\n\n'
                                          f'def run{i}(cmd):\n    """Run it."""\n    os.system(cmd)\n'
                      for i in range(300)})
    reference = findings_of(review_locally(tree))
    run = submit_review(client, ReviewJob(source=SourceSpec(location=str(tree))))
    agents = client.run(run.id).agents
    deadline = time.monotonic() + 60

    def running_group() -> tuple[str, int] | None:  # a running agent names the node that holds its turn
        for agent in agents.get_many(agents.ids(AgentStatus.RUNNING)):
            if agent is not None and agent.spec == "review.group" and (agent.last_node or "").startswith("node"):
                return agent.id, int(agent.last_node.split("@")[0].removeprefix("node"))
        return None

    while (found := running_group()) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert found is not None and not client.runs.get(run.id).status.terminal  # the kill comes mid-run
    lost, victim = found
    time.sleep(0.3)  # it has claimed files by now
    three_workers.kill(victim)
    assert wait(client, run.id) is RunStatus.COMPLETED, client.runs.get(run.id).reason
    report = load_report(client, run.id)
    assert findings_of(report) == reference
    ids = [a for s in AgentStatus for a in agents.ids(s)]
    nodes = Counter((agent.last_node or "").split("@")[0] for agent in agents.get_many(ids) if agent)
    assert {f"node{n}" for n in range(3) if n != victim} <= set(nodes), nodes  # the workers left did the rest
    group = agents.get(lost)
    assert group.turns_lost >= 1 and "did not finish" in (group.result or {}).get("why", ""), group
    assert all(agents.get(a).status is AgentStatus.DONE for a in ids)
