"""The README's two build examples, run as written (``bin/swarm``, as from a fresh clone) on a copy of a
real library nobody here wrote (``tests/fixtures/inflection-*.tar.gz``), whose own tests must pass on
the final tip. Only ``path/or/git-url`` is replaced (by a local bare remote of the copy); the models of
the first example are answered by the local test server playing the build demo's script, so the
command line is the README's but the model is a stand-in (it documents modules and makes the check
pass, whatever the goal says)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from swarm_tasks.models.mock_server import MockServer
from tests.builder_swarm.helpers import git

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
LIBRARY = next((ROOT / "tests" / "fixtures").glob("inflection-*.tar.gz"))
PLACEHOLDER = "path/or/git-url"


def readme_builds() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Building with a swarm", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = block.group(1).replace("\\\n", " ").splitlines()
    return [" ".join(c.split()) for c in commands if c.strip()]


def library_remote(root: Path) -> Path:
    """A fresh copy of the library as the one commit of a bare repository."""
    with tarfile.open(LIBRARY) as archive:
        archive.extractall(root, filter="data")
    seed, bare = root / "inflection", root / "inflection.git"
    git(seed, "init", "--quiet", "-b", "main")
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "inflection as published")
    git(root, "clone", "--quiet", "--bare", str(seed), str(bare))
    return bare


def own_tests_pass(bare: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    git(bare.parent, "clone", "--quiet", str(bare), str(dest))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=dest,
                          capture_output=True, text=True, timeout=300, check=False)


# The check and the codemod run sandboxed, with the worker's virtualenv (read-only) first on their PATH:
# `python -m pytest -q` and `ruff format` are the worker's own.
@pytest.mark.parametrize("which", [0, 1], ids=["model-with-check", "codemod"])
def test_the_readme_build_example_runs_as_written_on_a_real_library(which: int, tmp_path: Path) -> None:
    command = readme_builds()[which]
    assert command.startswith(f"bin/swarm build {PLACEHOLDER} ")
    bare = library_remote(tmp_path)
    start = git(bare, "rev-parse", "main")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    with MockServer(script="py:swarm_tasks.builder.demo_model:respond") as server:
        env.update({"SWARM_API_BASE": server.url, "SWARM_API_KEY": "sk-test", "SWARM_MODEL_GUARD": "local-only",
                    "SWARM_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"})
        done = subprocess.run(["bash", "-c", command.replace(PLACEHOLDER, str(bare))], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"^build \S+ completed: ", done.stdout, re.MULTILINE), done.stdout[-3000:]
    tests = own_tests_pass(bare, tmp_path / "tip")
    assert tests.returncode == 0 and " passed" in tests.stdout, tests.stdout[-2000:]
    if "--codemod" in command:
        assert git(bare, "rev-parse", "main") != start  # ruff format did change the library
        formatted = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
                                   cwd=tmp_path / "tip", capture_output=True, text=True, check=False)
        assert formatted.returncode == 0, formatted.stdout
        assert git(bare, "show", "main:README.rst").startswith("Inflection")  # not given to ruff
