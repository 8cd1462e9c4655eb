"""The agents benchmark at a toy size: every agent finishes, the rows of the 50,000-agent goals are there
(judged only at that size), and the baseline runs at the turns our workers can have in flight."""

from __future__ import annotations

from bench import agents


def test_agents_bench_small_run_reports_the_goal_rows_unjudged() -> None:
    result = agents.run(False, agents=20, turns=2, latency_s=0.05)
    rows = {row.metric: row for row in result.rows}
    finished = rows["agents finished"]
    assert finished.ours == finished.baseline == 20 and finished.goal_met
    for metric in ("agent turns per second", "peak memory of workers", "Redis memory per ended agent"):
        assert rows[metric].goal is not None and "50,000 agents" in rows[metric].goal
        assert rows[metric].goal_met is None  # a quick run is dominated by launch and tail
    assert (rows["Redis memory per ended agent"].ours or 0) > 0
    assert result.details["bare"]["ok"] == 40  # all 20 x 2 calls, at most 20 in flight
    assert any("concurrency 20" in note for note in result.notes)
