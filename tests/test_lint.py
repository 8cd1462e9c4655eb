"""House rules enforced by CI: ruff over the whole tree (configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:]


def test_packages_are_typed():
    assert (ROOT / "coordination" / "py.typed").exists() and (ROOT / "swarm_tasks" / "py.typed").exists()
