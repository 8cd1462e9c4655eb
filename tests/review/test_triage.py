"""Triage: files ranked by risk, trivial ones batched, the agent budget split so a flood of trivial
files cannot starve the file that matters."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.inventory import build_inventory
from swarm_tasks.review.triage import BATCH_FILES, PER_FILE, PER_RISKY_FILE, plan_scans, pre_rank
from tests.review.helpers import write_tree


def flood(tmp_path: Path, tiny: int) -> Path:
    files = {f"pkg{i // 100}/m{i}.py": f"X{i} = {i}\n" for i in range(tiny)}
    files["pkg3/run.py"] = "import os\nos.system(input())\n"
    files["docs/notes.py"] = "'''Notes.'''\n" + "NOTE = 'a plain constant'\n" * 40  # not tiny, no signal
    return write_tree(tmp_path / "flood", files)


def test_pre_rank_sees_risk_in_paths_and_text(tmp_path):
    root = write_tree(tmp_path / "r", {"app/views.py": "import subprocess\nsubprocess.run(cmd, shell=True)\n",
                                       "tests/test_views.py": "import subprocess\nsubprocess.run(cmd, shell=True)\n",
                                       "app/consts.py": "X = 1\n", "app/auth.py": "X = 1\n"})
    files = {f.path: f for f in build_inventory(root, ReviewConfig()).files}
    scores = {path: pre_rank(root, f) for path, f in files.items()}
    assert scores["app/consts.py"] == 0 and scores["app/auth.py"] == 2
    assert scores["app/views.py"] > scores["tests/test_views.py"] > 0


def test_a_flood_is_batched_and_the_risky_file_is_planned_first(tmp_path):
    root = flood(tmp_path, 1000)
    files = build_inventory(root, ReviewConfig()).files
    plan = plan_scans(root, files, budget=20_000)
    assert [f.path for f in plan.individual] == ["pkg3/run.py", "docs/notes.py"]
    assert len(plan.batches) == 10 and plan.batched == 1000 and all(len(b) == BATCH_FILES for b in plan.batches)
    assert plan.left_out == [] and plan.reserved == 10 + PER_RISKY_FILE + PER_FILE
    assert plan.trivial_allowance == 20_000 - plan.reserved


def test_a_small_budget_keeps_the_riskiest_files_and_leaves_the_rest_out(tmp_path):
    root = flood(tmp_path, 1000)
    files = build_inventory(root, ReviewConfig()).files
    plan = plan_scans(root, files, budget=PER_RISKY_FILE + PER_FILE + 7)  # two files, then 7 of 10 batches
    assert [f.path for f in plan.individual] == ["pkg3/run.py", "docs/notes.py"]
    assert len(plan.batches) == 7 and len(plan.left_out) == 300 and plan.trivial_allowance == 0
    starved = plan_scans(root, files, budget=4)  # the risky file still gets its scan; nothing else fits
    assert [f.path for f in starved.individual] == ["pkg3/run.py"] and starved.batches == []
    assert starved.left_out[0].path == "docs/notes.py" and len(starved.left_out) == 1001


def test_few_trivial_files_are_not_batched(tmp_path):
    root = flood(tmp_path, 10)
    plan = plan_scans(root, build_inventory(root, ReviewConfig()).files, budget=20_000)
    assert plan.batches == [] and len(plan.individual) == 12 and plan.individual[0].path == "pkg3/run.py"
