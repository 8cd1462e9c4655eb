"""A review and a build spread over three hosts end with the same result as on one."""

from __future__ import annotations

import pytest

from bench.faultlib import Fault, Outcome, Workflow, table
from bench.multihost import MultiHostHarness
from swarm_tasks.sources import checkout_dir

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_review_over_three_hosts_ends_as_on_one(hosts: MultiHostHarness, one_host_review: Outcome) -> None:
    hosts.use_hosts([0, 1, 2])
    outcome = hosts.run(Fault.NONE, timeout_s=240, scenario="workers on 3 hosts")
    print("\n" + table([one_host_review, outcome]))
    assert outcome.status == "completed" and outcome.same_findings, outcome
    assert outcome.agents == one_host_review.agents
    assert outcome.lost == 0 and outcome.duplicated == 0 and outcome.leases_left == 0, outcome
    ran = hosts.hosts_that_ran(outcome.run_id)
    assert set(ran) == {0, 1, 2}, f"agents per host: {dict(ran)}"
    for index in ran:  # each host cloned the source over the network into its own workspace root
        assert (checkout_dir(hosts.host_settings(index).state_dir, outcome.run_id) / ".git").is_dir()


@pytest.mark.timeout(600)
def test_build_over_three_hosts_lands_every_task_once(hosts: MultiHostHarness) -> None:
    hosts.use_hosts([0, 1, 2])
    outcome = hosts.run(Fault.NONE, timeout_s=240, workflow=Workflow.BUILD, scenario="workers on 3 hosts")
    print("\n" + table([outcome]))
    assert outcome.status == "completed", outcome
    assert outcome.same_findings, "the branch's tree differs from the codemod run file by file (as on one host)"
    assert outcome.commits_lost == 0 and outcome.commits_duplicated == 0, outcome
    assert outcome.lost == 0 and outcome.leases_left == 0, outcome
    ran = hosts.hosts_that_ran(outcome.run_id)
    assert len(ran) >= 2, f"the build ran on hosts {dict(ran)} only"
