"""A host cut off mid-run (its link down for longer than a lease, then up again): nothing is lost or
done twice, and the work it held is taken over once its leases expire."""

from __future__ import annotations

import pytest

from bench.faultlib import Fault, Workflow, table
from bench.multihost import MultiHostHarness
from swarm_tasks.agents.state import AgentStatus

pytestmark = pytest.mark.slow

DOWN_S = 8.0  # over the turn lease (3 s) and the task lease (4 s) of the harness's runs


@pytest.mark.timeout(600)
def test_host_cut_off_mid_build_loses_nothing_and_its_work_is_taken_over(hosts: MultiHostHarness) -> None:
    hosts.use_hosts([0, 1, 2])
    held: list[str] = []
    outcome = hosts.run(Fault.NONE, timeout_s=240, workflow=Workflow.BUILD, injector=hosts.cut(1, DOWN_S, held),
                        scenario="host 1 cut off mid-run")
    print("\n" + table([outcome]))
    assert held and not any("FAILED" in i for i in outcome.injected), outcome.injected
    assert outcome.status == "completed", outcome
    assert outcome.same_findings, "the branch's tree differs from the codemod run file by file"
    assert outcome.commits_lost == 0 and outcome.commits_duplicated == 0, outcome
    assert outcome.lost == 0 and outcome.leases_left == 0, outcome
    agents = hosts.client.run(outcome.run_id).agents
    taken = [a for a in agents.get_many(held) if a is not None]
    assert all(a.turns_lost >= 1 for a in taken), "a turn the cut-off host held was never taken over"
    # Taken over, each ended its task, or (its task's lease having lapsed too, the task handed to a new
    # worker, which landed it: no task was lost above) gave up the claim it no longer had.
    assert all(a.status is AgentStatus.DONE or (a.status is AgentStatus.FAILED and "lost its claim" in (a.reason or ""))
               for a in taken), [(a.id, a.spec, a.status, a.reason) for a in taken]
    # The host came back: its workers are alive and live again in the registry.
    cluster = hosts.clusters[1]
    assert cluster is not None and all(w.alive() for w in cluster.workers)
    hosts.use_hosts([0, 1, 2])  # waits until they are registered again
