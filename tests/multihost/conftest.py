"""Several hosts on this machine (network namespaces made by the tests, workers in each, Redis and git
over the bridge), skipped with the reason where namespaces cannot be made; and the undisturbed review
on one host, which every review over several hosts must end like."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faultlib import Fault, Outcome
from bench.multihost import MultiHostHarness
from bench.netns import netns_unavailable


@pytest.fixture(scope="package")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiHostHarness]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"no multi-host tests here: {reason}")
    harness = MultiHostHarness(Path(tmp_path_factory.mktemp("multihost")), hosts=3, seed=5)
    yield harness
    harness.close()


@pytest.fixture(scope="package")
def one_host_review(hosts: MultiHostHarness) -> Outcome:
    """The reference: the review with workers on host 0 only."""
    hosts.use_hosts([0])
    outcome = hosts.run(Fault.NONE, timeout_s=240, scenario="workers on 1 host")
    assert outcome.ok and outcome.agents > 50, outcome
    assert set(hosts.hosts_that_ran(outcome.run_id)) == {0}
    return outcome
