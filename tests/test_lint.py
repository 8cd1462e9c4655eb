"""House rules enforced by CI: ruff over the whole tree (configuration in pyproject.toml)."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-4000:]


def test_packages_are_typed():
    assert (ROOT / "coordination" / "py.typed").exists() and (ROOT / "swarm_tasks" / "py.typed").exists()


def test_every_test_directory_is_collected():
    # pytest's default norecursedirs has "build": the tests in tests/build once never ran in CI
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    patterns = config["norecursedirs"]
    dirs = [d for d in (ROOT / "tests").rglob("*") if d.is_dir() and any(d.glob("test_*.py"))]
    skipped = [str(d.relative_to(ROOT)) for d in dirs
               for part in d.relative_to(ROOT).parts if any(fnmatch.fnmatch(part, pat) for pat in patterns)]
    assert dirs and not skipped, f"pytest would not look in {skipped}"
