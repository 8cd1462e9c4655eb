"""The build-cost benchmark at a toy size: every feature lands, once, at each builder count, and the
table has its goal rows (speed and tokens are measured by `python -m bench build-cost`, not here)."""

from __future__ import annotations

import pytest

from bench import build_cost

pytestmark = pytest.mark.slow


def test_build_cost_small_run_lands_every_feature_and_states_its_goals() -> None:
    result = build_cost.run(False, features=3, latency_s=0.0, builders=(1, 2), compare_models=True)
    rows = {row.metric: row for row in result.rows}
    for label in ("1 builders", "2 builders", "2 builders, every conflict to a model"):
        landed = rows[f"features landed and verified, {label}"]
        assert landed.ours == landed.baseline == 3.0 and landed.goal_met, result.notes
        assert rows[f"tokens, {label}"].ours > 0 and rows[f"model calls, {label}"].ours >= 3 * 7
    assert rows["features landed per minute, 2 builders"].baseline_name == "1 builder"
    assert not [r.metric for r in result.rows if r.goal and r.goal != "all"]  # the speed goals are at 8 builders
    assert result.name == "build-cost" and result.params["builders"] == [1, 2]
