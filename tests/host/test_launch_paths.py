"""The launch table: every row names a test that exists, and the analyzers' row is shown here (the review's
analyzers run outside the sandbox because they never execute the repository's code: nothing of the
repository that would run when loaded is loaded)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from swarm_tasks.host.policy import LAUNCH_TABLE
from swarm_tasks.review.analyzers import js_security, python_quality
from swarm_tasks.review.config import ReviewConfig
from tests.review.helpers import source

ROOT = Path(__file__).resolve().parents[2]


def test_every_launch_path_names_a_test_that_exists() -> None:
    paths = " | ".join(row.path for row in LAUNCH_TABLE)
    for topic in ("shell tool", "check", "run_check", "codemod", "git", "analyzers"):
        assert topic in paths
    for row in LAUNCH_TABLE:
        file, _, name = row.test.partition("::")
        tree = ast.parse((ROOT / file).read_text())
        assert name in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, row.test


def test_analyzers_never_load_the_repositorys_config(tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    proof.mkdir()
    repo = tmp_path / "repo"
    loaded = f"require('fs').writeFileSync({str(proof / 'loaded')!r}, 'ran');\nmodule.exports = [];\n"
    for name in ("eslint.config.js", "eslint.config.mjs", ".eslintrc.js", ".eslintrc.cjs"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(loaded)
    (repo / "package.json").write_text('{"eslintConfig": {"plugins": ["evil"]}}\n')
    (repo / "pyproject.toml").write_text('[tool.ruff]\nextend = "/nonexistent/evil.toml"\n'
                                         '[tool.ruff.lint]\nignore = ["F"]\n')
    found = python_quality(repo, source(repo, "app.py", "import os\n"), ReviewConfig())
    assert "F401" in {f.rule for f in found}  # our rules, not the repository's "ignore F"
    from swarm_tasks.review.analyzers import eslint_runner

    if (problem := eslint_runner.eslint_problem()) is not None:
        pytest.skip(f"ESLint not available here: {problem}")
    text = 'const cp = require("child_process");\nfunction run(cmd) { cp.exec(cmd); }\n'
    found = js_security(repo, source(repo, "run.js", text), ReviewConfig())
    assert any(f.tool == "eslint-plugin-security" for f in found)  # ESLint did run, with our config
    assert not (proof / "loaded").exists()
