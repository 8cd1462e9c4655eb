"""User-given sources and refs never reach git as options: through the real CLI, ``--upload-pack=`` as
SOURCE (or as --ref) is refused as bad input (exit 2) before any git, server or worker runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_tasks.errors import JobSpecError
from swarm_tasks.sources import SourceSpec, materialize


def _review(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_STATE_DIR=str(tmp_path / "state"))
    return subprocess.run([sys.executable, "-m", "swarm_tasks.cli", "review", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)


def test_an_option_as_source_or_ref_is_refused_and_never_runs(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    evil = f"--upload-pack=touch {pwned}; echo :x.git"
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for args, said in ((["--", evil], "SOURCE '--upload-pack=touch"),
                       (["--ref", evil, f"file://{repo}"], "ref '--upload-pack=touch")):
        done = _review(tmp_path, *args)
        flat = " ".join(done.stderr.split())
        assert done.returncode == 2, done.stderr
        assert said in flat and "would be read as a git option" in flat and "Traceback" not in flat, flat
    assert not pwned.exists()
    assert not (tmp_path / "state").exists()  # refused before any server or worker started


def test_a_worker_refuses_an_option_like_source_it_was_sent(tmp_path: Path) -> None:
    """A job submitted without the CLI's check: the worker's clone refuses it the same way."""
    pwned = tmp_path / "pwned"
    for spec in (SourceSpec(location=f"--upload-pack=touch {pwned}; echo :x.git"),
                 SourceSpec(location="https://example.invalid/x.git", ref=f"--upload-pack=touch {pwned}"),
                 SourceSpec(location="https://example.invalid/x.git", ref="main\n--bare")):
        with pytest.raises(JobSpecError, match=r"git option|control character"):
            materialize(spec, tmp_path / "state", "run-1")
    assert not pwned.exists() and not (tmp_path / "state").exists()
