"""The README's review-results command, run as written through the real CLI and its own local workers:
--since, --baseline, --out and --link-base together on a real git repository."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.review.report_json import render_json
from tests.review.test_since import FILES, git

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_command() -> list[str]:
    section = README.split("## Review results people act on", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    [line] = [x for x in block.group(1).splitlines() if x.strip()]
    words = shlex.split(line)
    assert words[:2] == ["bin/swarm", "review"]
    return [sys.executable, "-m", "swarm_tasks.cli", *words[1:]]


@pytest.mark.slow
def test_readme_review_results_command(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    git(root, "update-ref", "refs/remotes/origin/main", "HEAD")
    (root / "last").mkdir()
    (root / "last" / "report.json").write_text(render_json(review_locally(root)))  # last week's review
    (root / "app.py").write_text(FILES["app.py"] + '\n\ndef debug(expr):\n    """Debug."""\n    return eval(expr)\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}  # embedded Redis, local workers
    env.update(SWARM_STATE_DIR=str(tmp_path / "state"), SWARM_MODEL_GUARD="local-only", COLUMNS="120")
    done = subprocess.run(readme_command(), cwd=root, env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((root / "review" / "report.json").read_text())
    assert report["since"] == "origin/main" and report["baseline"] == "last/report.json"
    assert report["files_scanned"] == 1 and report["baseline_known"] >= 1  # helper.py's os.system is known
    assert {r["path"] for r in report["reviewed"]} == {"app.py", "helper.py"}  # other.py unchanged: not reviewed
    security = [(f["file"], f["rule"]) for f in report["findings"] if f["category"] == "security"]
    assert security == [("app.py", "B307")]  # only what is new
    markdown = (root / "review" / "report.md").read_text()
    assert "(https://github.com/o/r/blob/HEAD/app.py#L13)" in markdown
    assert "Only files changed since `origin/main`" in markdown
