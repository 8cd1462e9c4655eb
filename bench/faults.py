"""``python -m bench faults``: runs with faults injected, and what was lost or duplicated.

Runs alternate between a model-mode review of the shipped example and a codemod build that counts
every file once (a change applied twice shows), on three worker processes; faults cycle through kill -9
of workers, a Redis restart with AOF, dropped connections, a broker outage, a warm stop (SIGTERM) of
workers and, for reviews, poison files (the example plus files that used to hang a review forever and a
directory nested 500 deep), each injected mid-run. A review is compared with an undisturbed review (with
poison files: its findings on the example, every poison file reviewed); a build with the codemod run file
by file, and its branch must hold exactly one commit per task. Default one run per kind; ``--full`` 50.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from bench.common import BenchResult, Row, machine_info, progress
from bench.faultlib import Fault, FaultHarness, Workflow, table


def schedule(runs: int) -> list[tuple[Workflow, Fault]]:
    """``runs`` (workflow, fault) pairs, alternating workflows; the first runs inject every kind once, and
    every kind meets every workflow it applies to (poison files are a review's) before any pair repeats."""
    kinds = [f for f in Fault if f is not Fault.NONE]
    first = [((Workflow.REVIEW, Workflow.BUILD)[i % 2], kind) for i, kind in enumerate(kinds)]
    first = [(w if kind.applies_to(w) else Workflow.REVIEW, kind) for w, kind in first]
    rest = [(w, kind) for kind in kinds for w in Workflow if kind.applies_to(w) and (w, kind) not in first]
    cycle = first + rest
    return [cycle[i % len(cycle)] for i in range(runs)]


def run(full: bool, *, runs: int | None = None) -> BenchResult:
    runs = runs or (50 if full else len(Fault) - 1)
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        harness = FaultHarness(Path(tmp), seed=5)
        try:
            progress("faults: undisturbed reference runs")
            references = [harness.run(Fault.NONE, workflow=w) for w in Workflow]
            outcomes = list(references)
            for index, (workflow, fault) in enumerate(schedule(runs)):
                progress(f"faults: run {index + 1}/{runs}: {workflow.value}, {fault.value}")
                outcomes.append(harness.run(fault, workflow=workflow))
            import redis

            machine = machine_info(redis.Redis.from_url(harness.redis.url))
        finally:
            harness.close()
    faulted = outcomes[len(references):]
    lost = sum(o.lost for o in faulted)
    duplicated = sum(o.duplicated for o in faulted)
    wrong = sum(1 for o in faulted if not o.same_findings or o.status != o.expected_status)
    commits_lost = sum(o.commits_lost for o in faulted)
    commits_duplicated = sum(o.commits_duplicated for o in faulted)
    by_kind = Counter(f"{o.workflow.value}, {o.fault.value}" for o in faulted)
    rows = [Row("runs with faults", float(len(faulted)), unit="runs", goal=">= 50 (--full)",
                goal_met=len(faulted) >= 50 if full else None),
            *(Row(f"faults injected: {kind}", float(n), unit="runs") for kind, n in sorted(by_kind.items())),
            Row("tasks lost (review agents, build tasks)", float(lost), goal="0", goal_met=lost == 0),
            Row("findings duplicated", float(duplicated), goal="0", goal_met=duplicated == 0),
            Row("commits lost", float(commits_lost), goal="0", goal_met=commits_lost == 0),
            Row("commits duplicated", float(commits_duplicated), goal="0", goal_met=commits_duplicated == 0),
            Row("runs ending differently from the undisturbed run", float(wrong), goal="0", goal_met=wrong == 0),
            Row("leases left held", float(sum(o.leases_left for o in faulted)), goal="0",
                goal_met=all(o.leases_left == 0 for o in faulted)),
            Row("turns redone after a fault", float(sum(o.turns_lost for o in faulted)), unit="turns")]
    return BenchResult(name="faults", rows=rows, machine=machine, params={"runs": runs},
                       notes=["Reviews: model mode on examples/vulnerable-shop (scripted model, 0.3 s per reply); "
                              "builds: a counting codemod on 18 files, 3 builders, 9 tasks; 3 worker processes; Redis "
                              "embedded with AOF. A review with poison files ends partial: the quality reviewer of "
                              "the file with 3,000 undefined names is stopped by the findings budget, as designed "
                              "(not counted as lost). Every run is in the table below."],
                       tables=[f"**faults**: every run\n\n{table(outcomes)}"],
                       details={"runs": [o.__dict__ | {"fault": o.fault.value, "workflow": o.workflow.value, "ok": o.ok}
                                         for o in outcomes]})
