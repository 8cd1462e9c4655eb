"""The fault suite: a review and a build on three real worker processes, undisturbed and then with each
kind of fault injected mid-run (kill -9 of workers, a Redis restart with AOF, dropped connections, a
broker outage, a warm stop of workers by SIGTERM; for the review, poison files beside the example). Each
review must end exactly like the undisturbed one (with poison files: the same findings on the example, every
poison file reviewed, in bounded time, and partial: the findings budget stops one reviewer, with its reason);
each build with the tree of the codemod run file by file, one commit per task. The table of faults and
outcomes is printed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faultlib import Fault, FaultHarness, Outcome, Workflow, table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultHarness]:
    h = FaultHarness(Path(tmp_path_factory.mktemp("faults")), seed=11)
    yield h
    h.close()


@pytest.fixture(scope="module")
def outcomes(harness: FaultHarness) -> list[Outcome]:
    results = [harness.run(fault, timeout_s=180, workflow=workflow) for workflow in Workflow for fault in Fault
               if fault.applies_to(workflow)]
    print("\n" + table(results))
    return results


@pytest.mark.timeout(900)
def test_undisturbed_runs_are_the_reference(outcomes: list[Outcome]) -> None:
    review, build = (next(o for o in outcomes if o.fault is Fault.NONE and o.workflow is w) for w in Workflow)
    assert review.ok and review.agents > 50, review
    assert build.ok and build.agents > 9, build  # a planner, a judge, 9 tasks' workers


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fault", [f for f in Fault if f is not Fault.NONE])
def test_faulted_review_ends_like_the_undisturbed_one(outcomes: list[Outcome], fault: Fault) -> None:
    outcome = next(o for o in outcomes if o.fault is fault and o.workflow is Workflow.REVIEW)
    assert outcome.injected and not any("FAILED" in i for i in outcome.injected), outcome.injected
    assert outcome.same_findings, "findings differ from the undisturbed run"
    assert outcome.lost == 0 and outcome.duplicated == 0 and outcome.leases_left == 0, outcome
    if fault is Fault.POISON_FILES:  # the poisoned tree has more files, so more agents
        # the quality reviewer of the 3,000 undefined names is stopped by the findings budget: partial
        assert outcome.budget_stops == 1 and outcome.status == "partial", outcome
    else:
        assert outcome.status == "completed", outcome
        assert outcome.agents == outcomes[0].agents


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fault", [f for f in Fault if f is not Fault.NONE and f.applies_to(Workflow.BUILD)])
def test_faulted_build_lands_every_task_exactly_once(outcomes: list[Outcome], fault: Fault) -> None:
    outcome = next(o for o in outcomes if o.fault is fault and o.workflow is Workflow.BUILD)
    assert outcome.injected and not any("FAILED" in i for i in outcome.injected), outcome.injected
    assert outcome.status == "completed", outcome
    assert outcome.same_findings, "the branch's tree differs from the codemod run file by file"
    assert outcome.commits_lost == 0 and outcome.commits_duplicated == 0, outcome
    assert outcome.lost == 0 and outcome.leases_left == 0, outcome
