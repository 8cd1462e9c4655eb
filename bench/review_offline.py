"""The offline (deterministic) review against its analyzers run directly, on the same tree in the same run:
the rows ``python -m bench review`` adds to its model-review rows.

Ours: ``Swarm()`` as ``swarm review`` starts it without SWARM_REDIS_URL (an embedded Redis and two local
worker processes), then one review from submission to the written report. Start-up (server and workers
ready) is measured apart: it is paid once per command, whatever the tree. Directly: bandit, ruff (the
quality and documentation rules the review selects) and radon as their own commands over the same Python
files the review's inventory lists, the JS/TS rules in process over its JS/TS files, and ESLint (where
installed) as its own command over its JavaScript files.
Goal: review at most 2x the direct analyzers, and a start-up under 3 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, ratio
from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.analyzers.eslint_runner import eslint_home, eslint_problem, wants_eslint
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import ReviewerKind
from swarm_tasks.review.inventory import build_inventory
from swarm_tasks.review.languages import JS_FAMILY, Language

START_UP_GOAL_S = 3.0
RATIO_GOAL = 2.0


def direct_analyzers(tree: Path) -> float:
    """Seconds for bandit, ruff and radon over the inventory's Python files, and our JS analyzers over its
    JS/TS files, each run as a user would run it."""
    config = ReviewConfig()
    inventory = build_inventory(tree, config)
    python = [f.path for f in inventory.files if f.language is Language.PYTHON]
    scripts = [f for f in inventory.files if f.language in JS_FAMILY]
    bin_dir = Path(sys.executable).parent
    select = ",".join(dict.fromkeys([*config.ruff_quality_rules, *config.ruff_doc_rules]))
    started = time.perf_counter()
    if python:
        for cmd in ([str(bin_dir / "bandit"), "-q", "-f", "json", "-o", os.devnull, "--", *python],
                    [str(bin_dir / "ruff"), "check", "--isolated", "--no-cache", "--exit-zero", "--output-format",
                     "json", "--select", select, "--", *python],
                    [str(bin_dir / "radon"), "cc", "-j", "--", *python]):
            subprocess.run(cmd, cwd=tree, capture_output=True, check=False, timeout=600)
    plain = ReviewConfig(eslint=False)  # ESLint is run as its own command below, as a user would
    for file in scripts:
        for kind in ReviewerKind:
            run_reviewer(kind, tree, file, plain)
    javascript = [f.path for f in scripts if wants_eslint(f.path)]
    if javascript and eslint_problem() is None:
        home = eslint_home()
        subprocess.run(["node", str(home / "node_modules" / "eslint" / "bin" / "eslint.js"), "--no-config-lookup",
                        "--config", str(home / "swarm-eslint.config.cjs"), "--format", "json", "--", *javascript],
                       cwd=tree, capture_output=True, check=False, timeout=600)
    return time.perf_counter() - started


def swarm_review(tree: Path, workers: int) -> tuple[float, float, int, str]:
    """(start-up seconds, review seconds, agents, status) of one offline review through the local swarm."""
    from swarm_tasks.api import Swarm
    from swarm_tasks.settings import SwarmSettings

    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        saved = os.environ.pop("SWARM_REDIS_URL", None)  # what `swarm review` does without a fleet
        try:
            settings = SwarmSettings(state_dir=Path(tmp) / "state", model_guard="local-only")
            started = time.perf_counter()
            with Swarm(settings, workers=workers) as swarm:
                ready = time.perf_counter()
                run = swarm.review(str(tree))
                record = run.wait(timeout_s=600, poll_s=0.02)
                done = time.perf_counter()
                agents = len(run.agents())
        finally:
            if saved is not None:
                os.environ["SWARM_REDIS_URL"] = saved
    return ready - started, done - ready, agents, record.status.value


def offline_rows(trees: dict[str, Path], workers: int = 2) -> tuple[list[Row], dict[str, object]]:
    """The rows for each named tree, and the raw numbers."""
    rows: list[Row] = []
    details: dict[str, object] = {}
    start_ups: list[float] = []
    for name, tree in trees.items():
        direct = direct_analyzers(tree)
        start_up, wall, agents, status = swarm_review(tree, workers)
        start_ups.append(start_up)
        details[name] = {"direct_s": direct, "swarm_s": wall, "start_up_s": start_up, "agents": agents,
                         "status": status}
        met = status == "completed" and (ratio(wall, direct) or 99) <= RATIO_GOAL
        rows.append(Row(f"offline review, {name}", wall, unit="s", baseline=direct,
                        baseline_name="bandit + ruff + radon + JS analyzers run directly", ratio=ratio(wall, direct),
                        goal=f"<= {RATIO_GOAL:g}x", goal_met=met))
    worst = max(start_ups)
    rows.append(Row(f"offline review start-up (embedded Redis, {workers} workers)", worst, unit="s",
                    goal=f"< {START_UP_GOAL_S:g} s", goal_met=worst < START_UP_GOAL_S))
    return rows, details
