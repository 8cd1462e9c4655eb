"""The fault suite: a review run on three real worker processes, undisturbed and then with each kind of
fault injected mid-run (kill -9 of workers, a Redis restart with AOF, dropped connections, a broker
outage). Each must end exactly like the undisturbed run. The table of faults and outcomes is printed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faultlib import Fault, FaultHarness, Outcome, table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultHarness]:
    h = FaultHarness(Path(tmp_path_factory.mktemp("faults")), seed=11)
    yield h
    h.close()


@pytest.fixture(scope="module")
def outcomes(harness: FaultHarness) -> list[Outcome]:
    results = [harness.run(fault, timeout_s=180) for fault in Fault]
    print("\n" + table(results))
    return results


@pytest.mark.timeout(900)
def test_undisturbed_run_is_the_reference(outcomes: list[Outcome]) -> None:
    baseline = outcomes[0]
    assert baseline.fault is Fault.NONE and baseline.ok, baseline
    assert baseline.agents > 50


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fault", [f for f in Fault if f is not Fault.NONE])
def test_faulted_run_ends_like_the_undisturbed_one(outcomes: list[Outcome], fault: Fault) -> None:
    outcome = next(o for o in outcomes if o.fault is fault)
    assert outcome.injected and not any("FAILED" in i for i in outcome.injected), outcome.injected
    assert outcome.status == "completed", outcome
    assert outcome.same_findings, "findings differ from the undisturbed run"
    assert outcome.lost == 0 and outcome.duplicated == 0 and outcome.leases_left == 0, outcome
    assert outcome.agents == outcomes[0].agents
