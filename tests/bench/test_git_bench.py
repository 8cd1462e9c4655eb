"""The git benchmark at a toy size: it runs, verifies what landed, and says where it ran."""

from __future__ import annotations

from bench import git as git_bench


def test_git_bench_small_run_lands_and_verifies_everything() -> None:
    result = git_bench.run(pushers=[1, 16, 32], commits=2, work_s=0.05, compare_blind=True)
    rows = {row.metric: row for row in result.rows}
    for n in (1, 16):
        landed = rows[f"commits landed and verified, {n} pushers"]
        assert landed.ours == landed.baseline == 2.0 * n and landed.goal_met
    storage = result.details["storage"]
    assert storage["kind"] in ("memory", "disk")
    if storage["kind"] == "memory":  # then the same counts ran on disk too, without a goal
        on_disk = rows["commits landed and verified, 16 pushers, on disk"]
        assert on_disk.ours == 32.0 and on_disk.goal_met
        assert rows["commits landed per minute, 16 pushers, on disk"].goal is None
    assert rows["commits landed per minute, 16 pushers"].goal == ">= 14x"
    assert rows["commits landed per minute, 32 pushers"].goal == ">= 20x"
    assert rows["push retries per commit, 32 pushers"].goal == "<= 1"
    assert rows["CPU per landed commit, 32 pushers"].goal == "<= 1.5x"
    # the comparison: the same pushers racing without turns, every commit landed too, no goal judged
    racing = rows["commits landed and verified, 32 pushers, racing without turns"]
    assert racing.ours == 64.0 and racing.goal_met
    assert rows["commits landed per minute, 32 pushers, racing without turns"].goal is None
    assert result.details["racing_without_turns"]["32"]["landed"] == 64
    assert "redis_url" not in result.params
    assert any("borrow its objects" in note for note in result.notes)
