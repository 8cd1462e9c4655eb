"""The fault suite's kill -9 and broker-restart cases with RabbitMQ as the Celery broker (quorum
queues, publisher confirms) and Redis for coordination only: a review ends exactly like the undisturbed
one, a build lands every task exactly once. Needs the machine's RabbitMQ (skipped, with the reason,
elsewhere); it runs in a vhost of its own, created and deleted here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faultlib import Fault, FaultHarness, Outcome, Workflow, table
from bench.rabbitmq import Vhost, rabbitmq_unavailable
from swarm_tasks.settings import QUEUES

pytestmark = pytest.mark.slow

CASES = [(Workflow.REVIEW, Fault.NONE), (Workflow.REVIEW, Fault.KILL_WORKERS), (Workflow.REVIEW, Fault.BROKER_OUTAGE),
         (Workflow.BUILD, Fault.KILL_WORKERS), (Workflow.BUILD, Fault.BROKER_OUTAGE)]


@pytest.fixture(scope="module")
def vhost() -> Iterator[Vhost]:
    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    with Vhost("swarm-faults") as vh:
        yield vh


@pytest.fixture(scope="module")
def outcomes(vhost: Vhost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Outcome]]:
    harness = FaultHarness(Path(tmp_path_factory.mktemp("faults-amqp")), seed=7, rabbit=vhost)
    try:
        results = [harness.run(fault, timeout_s=180, workflow=workflow) for workflow, fault in CASES]
        print("\n" + table(results))
        yield results
    finally:
        harness.close()


def _outcome(outcomes: list[Outcome], workflow: Workflow, fault: Fault) -> Outcome:
    return next(o for o in outcomes if o.workflow is workflow and o.fault is fault)


@pytest.mark.timeout(900)
def test_every_queue_is_a_quorum_queue(outcomes: list[Outcome], vhost: Vhost) -> None:
    types = vhost.queue_types()
    assert {name: types.get(name) for name in QUEUES} == dict.fromkeys(QUEUES, "quorum")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fault", [Fault.KILL_WORKERS, Fault.BROKER_OUTAGE])
def test_faulted_review_on_rabbitmq_ends_like_the_undisturbed_one(outcomes: list[Outcome], fault: Fault) -> None:
    reference = _outcome(outcomes, Workflow.REVIEW, Fault.NONE)
    assert reference.ok and reference.agents > 50, reference
    outcome = _outcome(outcomes, Workflow.REVIEW, fault)
    assert outcome.injected and not any("FAILED" in i for i in outcome.injected), outcome.injected
    assert outcome.status == "completed", outcome
    assert outcome.same_findings, "findings differ from the undisturbed run"
    assert outcome.lost == 0 and outcome.duplicated == 0 and outcome.leases_left == 0, outcome
    assert outcome.agents == reference.agents


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fault", [Fault.KILL_WORKERS, Fault.BROKER_OUTAGE])
def test_faulted_build_on_rabbitmq_lands_every_task_exactly_once(outcomes: list[Outcome], fault: Fault) -> None:
    outcome = _outcome(outcomes, Workflow.BUILD, fault)
    assert outcome.injected and not any("FAILED" in i for i in outcome.injected), outcome.injected
    assert outcome.status == "completed", outcome
    assert outcome.same_findings, "the branch's tree differs from the codemod run file by file"
    assert outcome.commits_lost == 0 and outcome.commits_duplicated == 0, outcome
    assert outcome.lost == 0 and outcome.leases_left == 0, outcome
