"""bench dispatch at a tiny size: the round-trip row is produced from both sides, measured on real workers."""

from __future__ import annotations

import pytest

from bench.dispatch import TURN_COST_GOAL, run


@pytest.mark.slow
def test_round_trip_row_compares_an_agent_turn_with_a_bare_task() -> None:
    result = run(False, count=20, workers=1, trips=5, rounds=1, rabbitmq=False)
    trip = result.rows[0]
    assert trip.metric.startswith("empty agent turn, one at a time (load ")
    assert trip.unit == "s" and trip.baseline_name == "Celery no-op round trip"
    # seconds per round trip, not minutes: both sides ran on the workers and finished
    assert trip.ours is not None and trip.baseline is not None
    assert 0 < trip.baseline < 10 and 0 < trip.ours < 10
    assert trip.ratio == trip.ours / trip.baseline
    assert trip.goal == f"<= {TURN_COST_GOAL}x" and trip.goal_met is (trip.ratio <= TURN_COST_GOAL)
    trips = result.details["round_trips"]
    assert len(trips["bare_s"]) == len(trips["ours_s"]) == len(trips["load_1m"]) == 1
    rates = {row.metric: row for row in result.rows[1:]}
    assert rates["program agent turns per second"].ours and rates["program agent turns per second"].baseline
