"""User-given sources and refs never reach git as options: through the real CLI, ``--upload-pack=`` as
SOURCE (and as a build's REPO) is refused as bad input (exit 2) before any git, server or worker runs; so are
such refs and remote helpers (``ext::``), by the CLI's check and by a worker sent the job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_tasks.errors import JobSpecError
from swarm_tasks.sources import SourceSpec, check_source, materialize


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_STATE_DIR=str(tmp_path / "state"))
    return subprocess.run([sys.executable, "-m", "swarm_tasks.cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)



def test_an_option_as_source_is_refused_and_never_runs(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    evil = f"--upload-pack=touch {pwned}; echo :x.git"
    done = _run(tmp_path, "review", "--", evil)
    flat = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in flat, done.stderr
    assert "SOURCE '--upload-pack=touch" in flat and "would be read as a git option" in flat, flat
    done = _run(tmp_path, "build", "--goal", "g", "--", evil)  # a build's REPO the same
    assert done.returncode == 2 and "invalid remote URL" in done.stderr and "Traceback" not in done.stderr
    assert not pwned.exists()
    assert not (tmp_path / "state").exists()  # refused before any server or worker started


def test_refs_and_remote_helpers_are_refused_before_any_git_runs(tmp_path: Path) -> None:
    """What the CLI checks (check_source) and what a worker sent a job without the CLI does (materialize)."""
    pwned = tmp_path / "pwned"
    url = "https://example.invalid/x.git"
    for spec, said in ((SourceSpec(location=url, ref=f"--upload-pack=touch {pwned}"), "would be read as a git option"),
                       (SourceSpec(location=url, ref="main\n--bare"), "control character"),
                       (SourceSpec(location=url, ref="main..x"), "not a valid branch"),
                       (SourceSpec(location=f"ext::sh -c touch% {pwned} x.git"), "names a git remote helper"),
                       (SourceSpec(location=f"--upload-pack=touch {pwned}; echo :x.git"), "would be read as")):
        for step in (check_source, lambda s: materialize(s, tmp_path / "state", "run-1")):
            with pytest.raises(JobSpecError, match=re.escape(said)):
                step(spec)
    assert not pwned.exists() and not (tmp_path / "state").exists()
