"""The benchmark framework: result shape, JSON and Markdown output, the CLI, and a tiny real run of
the coordination benchmark. No speed is asserted here: speed is measured by benchmarks only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bench.__main__ as cli
from bench import coordination
from bench.common import BenchResult, Row, machine_info, markdown_table, render, write_result

ROW_FIELDS = {"metric", "ours", "unit", "baseline", "baseline_name", "ratio", "goal", "goal_met"}
MACHINE_FIELDS = {"cores", "memory_gb", "cpu_model", "python", "redis_version", "date"}


def _fake(name: str) -> BenchResult:
    return BenchResult(name, [Row("speed", 10.0, "/s", 2.0, "slow", 5.0, ">= 5x", True)],
                       machine_info(), {"size": 1}, ["a note"])


def test_tiny_coordination_run_writes_the_whole_result(tmp_path: Path) -> None:
    result = coordination.run(False, clients=(1, 2), window_s=0.3, rounds=1, max_tasks=400)
    path = write_result(result, tmp_path)
    assert path == tmp_path / "coordination.json"
    raw = json.loads(path.read_text())
    assert set(raw) >= {"name", "rows", "machine", "params", "notes", "details"}
    assert raw["name"] == "coordination"
    assert set(raw["machine"]) >= MACHINE_FIELDS
    assert raw["machine"]["redis_version"]
    assert raw["params"]["clients"] == [1, 2]
    assert len(raw["rows"]) == 4 * 2
    for row in raw["rows"]:
        assert set(row) == ROW_FIELDS
        assert isinstance(row["ours"], float)
    assert set(raw["details"]) == {"occ", "lock", "lua_cas", "lua_cas_shared"}
    for mode in raw["details"].values():
        assert set(mode) == {"1", "2"}
        assert all(run["ops"] > 0 for run in mode.values())
    assert any("ceiling" in note for note in raw["notes"])
    assert BenchResult.from_dict(raw).to_dict() == raw

    table = render(result)
    assert table.startswith("| benchmark | metric | ours | baseline | ratio | goal | met |")
    assert "occ claims/s vs lock, 2 clients" in table
    assert "lua_cas" in table


def test_goal_rows_appear_at_the_goal_client_counts() -> None:
    measured = {mode: {n: coordination.Measured(mode, n, 100, 0, 1.0, rate, 0.0, False, 1.0, None, None, 0.0)
                       for n in (16, 64)}
                for mode, rate in (("occ", 1000.0), ("lock", 100.0), ("lua_cas", 4000.0),
                                   ("lua_cas_shared", 50.0))}
    rows = coordination._rows(measured, (16, 64))
    goals = [(row.metric, row.goal_met) for row in rows if row.goal]
    assert goals == [("occ claims/s vs lock, 16 clients", True), ("occ claims/s vs lua_cas, 16 clients", False),
                     ("occ claims/s vs lock, 64 clients", True), ("occ claims/s vs lua_cas, 64 clients", False)]


def test_cli_prints_the_table_and_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "run_one", lambda name, full: _fake(name))
    assert cli.main(["coordination", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| coordination | speed | 10.0 /s | 2 /s (slow) | 5.00x | >= 5x | yes |" in out
    assert json.loads((tmp_path / "coordination.json").read_text())["rows"][0]["ratio"] == 5.0


def test_cli_json_only_prints_only_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "run_one", lambda name, full: _fake(name))
    assert cli.main(["coordination", "--json-only", "--out", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "coordination"


def test_missing_benchmark_is_reported_and_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "available", lambda name: False)
    assert cli.main(["agents", "--out", str(tmp_path)]) == cli.NOT_IMPLEMENTED
    assert "agents: not implemented yet" in capsys.readouterr().err
    assert not (tmp_path / "agents.json").exists()


def test_all_runs_what_exists_and_combines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "available", lambda name: name in ("coordination", "git"))
    monkeypatch.setattr(cli, "run_one", lambda name, full: _fake(name))
    assert cli.main(["all", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "review: not implemented yet" in captured.err
    combined = json.loads((tmp_path / "all.json").read_text())
    assert [r["name"] for r in combined] == ["coordination", "git", "timing"]  # timing: see test_publish.py
    table = (tmp_path / "all.md").read_text()
    assert table.startswith(markdown_table([_fake("coordination"), _fake("git")]) + "\n| timing |")
    assert "| git | speed |" in captured.out
    assert (tmp_path / "coordination.json").exists() and (tmp_path / "git.json").exists()
