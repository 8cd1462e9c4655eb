"""``python -m bench publish``: the README's table is rebuilt from the result files, row for row, with
where each benchmark's rows come from, and nothing outside the markers is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.__main__ as cli
from bench.common import BenchResult, Row, machine_info, write_result
from bench.publish import END, START, PublishError, publish

README = f"# Project\n\nIntro.\n\n{START}\nold table\n{END}\n\nReading it: people's words.\n"


def _result(name: str, *, full: bool | None, command: str = "", elapsed_s: float | None = None,
            tables: list[str] | None = None) -> BenchResult:
    return BenchResult(name, [Row("speed", 12.0, "/s", 3.0, "slow", 4.0, ">= 5x", False)], machine_info(),
                       {"size": 1}, tables=tables or [], command=command, full=full, elapsed_s=elapsed_s)


def test_publish_rebuilds_only_the_block_from_each_result(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    write_result(_result("git", full=True, command="python -m bench git --full", elapsed_s=300.0,
                         tables=["**git**: per round\n\n| a |\n|---|\n| 1 |"]), tmp_path)
    write_result(_result("faults", full=True, command="python -m bench all --full", elapsed_s=1200.0,
                         tables=["**faults**: runs\n\n" + "\n".join(f"| run {i} |" for i in range(50))]), tmp_path)
    publish(["git", "review", "faults"], optional=["timing"], readme=readme, directory=tmp_path)
    text = readme.read_text()
    assert text.startswith("# Project\n\nIntro.\n\n" + START + "\n")
    assert text.endswith(END + "\n\nReading it: people's words.\n")
    assert "old table" not in text
    assert "| git | speed | 12.0 /s | 3 /s (slow) | 4.00x | >= 5x | **NO** |" in text
    assert "| faults | speed |" in text
    assert "| 1 |" in text  # a short extra table is published
    assert "| run 7 |" not in text  # a long one is pointed at
    assert "the per-run table of **faults** is in `bench/results/faults.json`" in text
    assert "- **git**: `python -m bench git --full` on " in text and "took 5.0 min" in text
    assert "- **faults**: `python -m bench all --full` on " in text
    assert "- **review**: no result yet" in text
    assert "timing" not in text  # optional and absent: not mentioned


def test_a_result_from_before_sizes_were_recorded_says_so(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    raw = _result("scale", full=None).to_dict()
    for key in ("command", "full", "elapsed_s"):
        del raw[key]  # the shape of result files written before these fields existed
    (tmp_path / "scale.json").write_text(json.dumps(raw))
    publish(["scale"], readme=readme, directory=tmp_path)
    text = readme.read_text()
    assert "`python -m bench scale` (size not recorded: run before results said)" in text
    assert " during the run" in text and " at the start" not in text  # read by the benchmark, not before it


def test_the_load_published_is_the_one_at_the_start_of_the_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    finished = _result("git", full=None)
    finished.machine["load_average"] = [9.5, 2.0, 1.0]  # what the benchmark read as it ended
    loads = iter([(3.25, 1.0, 1.0)])  # bench's own reading, before the run
    monkeypatch.setattr(cli.os, "getloadavg", lambda: next(loads))
    monkeypatch.setattr(cli, "available", lambda name: name == "git")
    monkeypatch.setattr(cli, "run_one", lambda name, full: finished)
    assert cli.main(["git", "--out", str(tmp_path), "--json-only"]) == 0
    readme = tmp_path / "README.md"
    readme.write_text(README)
    publish(["git"], readme=readme, directory=tmp_path)
    assert "load 3.25 at the start" in readme.read_text() and "9.5" not in readme.read_text()


def test_a_readme_without_markers_or_a_broken_result_is_an_error(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no block here\n")
    with pytest.raises(PublishError, match="no <!-- bench:start -->"):
        publish([], readme=readme, directory=tmp_path)
    readme.write_text(README)
    (tmp_path / "git.json").write_text('{"rows": []}')
    with pytest.raises(PublishError, match=r"git\.json: not a benchmark result"):
        publish(["git"], readme=readme, directory=tmp_path)
    assert readme.read_text() == README  # nothing written on an error


def test_all_times_each_benchmark_and_judges_the_default_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "available", lambda name: name in ("coordination", "git"))
    monkeypatch.setattr(cli, "run_one", lambda name, full: _result(name, full=None))
    assert cli.main(["all", "--out", str(tmp_path)]) == 0
    timing = BenchResult.from_dict(json.loads((tmp_path / "timing.json").read_text()))
    assert [row.metric for row in timing.rows] == [
        "wall time of coordination", "wall time of git", "wall time of bench all (default sizes)"]
    total = timing.rows[-1]
    assert total.goal == "<= 600 s" and total.goal_met is True
    assert total.ours == pytest.approx(sum(row.ours or 0 for row in timing.rows[:-1]))
    git = BenchResult.from_dict(json.loads((tmp_path / "git.json").read_text()))
    assert git.command == "python -m bench all" and git.full is False and git.elapsed_s is not None
    assert "| timing | wall time of bench all (default sizes) |" in (tmp_path / "all.md").read_text()


def test_all_over_the_bound_is_not_met(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.timing({"review": 590.0, "git": 20.0}, full=False).rows[-1].goal_met is False
    full = cli.timing({"review": 5000.0}, full=True)
    assert full.name == "timing-full" and full.rows[-1].goal is None
