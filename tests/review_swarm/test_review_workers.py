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
    # Without models the files are reviewed in groups, a group per agent: enough files that each group takes
    # a while, so the kill lands while groups are in flight (the killed one's files then get an agent each).
    tree = tmp_path / "tree"
    shutil.copytree(EXAMPLE, tree)
    write_tree(tree, {f"jobs/task{i}.py": f'"""Task {i}."""\nimport os\nfrom shop import db\n\n\n'
                                          f'def run{i}(cmd):\n    """Run it."""\n    os.system(cmd)\n'
                      for i in range(300)})
    reference = findings_of(review_locally(tree))
    run = submit_review(client, ReviewJob(source=SourceSpec(location=str(tree))))
    agents = client.run(run.id).agents
    deadline = time.monotonic() + 60

    def node1_finished_one() -> bool:  # an ended agent keeps the node that ran its last turn
        done = agents.get_many(agents.ids(AgentStatus.DONE))
        return any(a is not None and (a.last_node or "").startswith("node1@") and a.spec == "review.group"
                   for a in done)

    while not node1_finished_one() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.runs.get(run.id).status.terminal  # the kill comes mid-run
    three_workers.kill(1)  # mid-run: groups still to go
    assert wait(client, run.id) is RunStatus.COMPLETED, client.runs.get(run.id).reason
    report = load_report(client, run.id)
    assert findings_of(report) == reference
    ids = [a for s in AgentStatus for a in agents.ids(s)]
    nodes = Counter((agent.last_node or "").split("@")[0] for agent in agents.get_many(ids) if agent)
    assert {"node0", "node1", "node2"} <= set(nodes), nodes  # every worker did some of the work
    assert all(agents.get(a).status is AgentStatus.DONE for a in ids)
