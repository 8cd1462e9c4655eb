"""``python -m bench faults``: runs with faults injected, and what was lost or duplicated.

Every run is a model-mode review of the shipped example on three worker processes; faults cycle
through kill -9 of workers, a Redis restart with AOF, dropped connections and a broker outage, each
injected mid-run. Each run is compared with an undisturbed run. Default 8 runs with faults; ``--full`` 50.
(Build-swarm faults — commits lost or duplicated — are covered by tests/build_swarm.)
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from bench.common import BenchResult, Row, machine_info, progress
from bench.faultlib import Fault, FaultHarness, table


def run(full: bool, *, runs: int | None = None) -> BenchResult:
    runs = runs or (50 if full else 8)
    kinds = [f for f in Fault if f is not Fault.NONE]
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        harness = FaultHarness(Path(tmp), seed=5)
        try:
            progress("faults: undisturbed reference run")
            outcomes = [harness.run(Fault.NONE)]
            for index in range(runs):
                fault = kinds[index % len(kinds)]
                progress(f"faults: run {index + 1}/{runs}: {fault.value}")
                outcomes.append(harness.run(fault))
            import redis

            machine = machine_info(redis.Redis.from_url(harness.redis.url))
        finally:
            harness.close()
    faulted = outcomes[1:]
    lost = sum(o.lost for o in faulted)
    duplicated = sum(o.duplicated for o in faulted)
    wrong = sum(1 for o in faulted if not o.same_findings or o.status != "completed")
    by_kind = Counter(o.fault.value for o in faulted)
    rows = [Row("runs with faults", float(len(faulted)), unit="runs"),
            *(Row(f"faults injected: {kind}", float(n), unit="runs") for kind, n in sorted(by_kind.items())),
            Row("tasks (agents) lost", float(lost), goal="0", goal_met=lost == 0),
            Row("findings duplicated", float(duplicated), goal="0", goal_met=duplicated == 0),
            Row("runs ending differently from the undisturbed run", float(wrong), goal="0", goal_met=wrong == 0),
            Row("leases left held", float(sum(o.leases_left for o in faulted)), goal="0",
                goal_met=all(o.leases_left == 0 for o in faulted)),
            Row("turns redone after a fault", float(sum(o.turns_lost for o in faulted)), unit="turns")]
    return BenchResult(name="faults", rows=rows, machine=machine, params={"runs": runs},
                       notes=["Model-mode review of examples/vulnerable-shop (scripted model, 0.3 s per reply) on 3 "
                              "worker processes; Redis embedded with AOF. Table of every run:", table(outcomes)],
                       details={"runs": [o.__dict__ | {"fault": o.fault.value, "ok": o.ok} for o in outcomes]})
