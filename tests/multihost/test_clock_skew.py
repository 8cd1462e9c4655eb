"""A host whose clock is five minutes off does not break leases: they are judged by the Redis server's
clock (``coordination.store.ServerClock``), never by a worker's.

Host 1 runs five minutes ahead and host 2 five minutes behind (libfaketime when installed, else an
offset on Python's clock: the test prints which). Judged by their own clocks, host 2's turns would look
expired to everyone at once (taken from it while it works: turns redone, work done twice) and host 1's
would last five minutes more: killed mid-run, the run would wait that long. Neither happens.

The turn lease here is 10 s (the harness's other runs use 3 s): still thirty times shorter than the skew,
and long enough that a worker process starved of CPU for a few seconds on a loaded CI box (all its turns
lapse at once) is not mistaken for the skew stealing them.
"""

from __future__ import annotations

import pytest

from bench.faultlib import Fault, Outcome, table
from bench.multihost import MultiHostHarness
from swarm_tasks.agents.state import AgentStatus

pytestmark = pytest.mark.slow

SKEW_S = 300.0
TURN_LEASE_S = 10.0


@pytest.mark.timeout(600)
def test_hosts_five_minutes_off_keep_leases_by_the_server_clock(hosts: MultiHostHarness,
                                                                 one_host_review: Outcome) -> None:
    hosts.use_hosts([0, 1, 2], skews={1: SKEW_S, 2: -SKEW_S}, turn_lease_s=TURN_LEASE_S)
    held: list[str] = []
    outcome = hosts.run(Fault.NONE, timeout_s=240, injector=hosts.kill(1, held),
                        scenario="host 1 +5 min (killed), host 2 -5 min")
    print(f"\nclock skew by: {hosts.skew_mechanism}\n" + table([one_host_review, outcome]))
    assert held and not any("FAILED" in i for i in outcome.injected), outcome.injected
    # The skew was real: events carry each writer's wall clock, their stream ids the server's.
    offsets = hosts.clock_offsets_min(outcome.run_id)
    assert {-5, 0, 5} <= set(offsets), f"events by clock offset in minutes: {dict(offsets)}"
    assert outcome.status == "completed" and outcome.same_findings, outcome
    assert outcome.agents == one_host_review.agents
    assert outcome.lost == 0 and outcome.duplicated == 0 and outcome.leases_left == 0, outcome
    # Host 1's turns were taken over when their leases ran out by the server's clock, not 5 minutes on.
    assert outcome.wall_s < SKEW_S / 2, f"the run took {outcome.wall_s:.0f} s"
    agents = hosts.client.run(outcome.run_id).agents
    everyone = [a for a in agents.get_many(sorted({i for st in AgentStatus for i in agents.ids(st)})) if a]
    assert all(a.turns_lost >= 1 for a in everyone if a.id in held)
    # Nobody took a turn from a live host: host 2's, judged by its clock five minutes behind, would all
    # look expired (a third of the run's turns). One may go to a heartbeat starved on a loaded CI box.
    stolen = sum(a.turns_lost for a in everyone if a.id not in held)
    assert stolen <= 1, f"{stolen} turns taken from live workers; the workers logged:\n" + "\n".join(hosts.takeovers())
    assert 2 in hosts.hosts_that_ran(outcome.run_id)
