"""The type checker passes: mypy --strict over what pyproject.toml names ([tool.mypy] files): coordination,
the host layer and the worker layer. Incremental (.mypy_cache), so a run after the first takes a second or two."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_passes():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert {"coordination", "swarm_tasks/host", "swarm_tasks/worker", "swarm_tasks/celery.py"} <= set(config["files"])
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout
