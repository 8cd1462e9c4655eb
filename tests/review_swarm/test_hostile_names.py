"""A repository that attacks what its review prints: a file name with a newline and terminal escape
sequences, and a password bandit flags. Reviewed by a real worker process through the real `swarm`
command: the name renders inert in report.md and in the terminal, and the password is in no report,
no terminal output and no stored report, in any field (title, evidence, snippet, note)."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pytest

from swarm_tasks.settings import QUEUES
from swarm_tasks.worker.cluster import LocalCluster
from tests.cli.test_cli import env, swarm  # noqa: F401 - the env fixture
from tests.review.helpers import write_tree

pytestmark = pytest.mark.slow

PASSWORD = "hunter2-Pr0d-db-7f3a"
FORGED = "## Forged: no findings"
# Clears the screen, sets the window title, rings the bell, then reverses the text after it.
HOSTILE = f"evil\n{FORGED}\x1b[2J\x1b]0;owned\x07\u202eyp.py"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile_repo(root: Path) -> Path:
    return write_tree(root, {
        "settings.py": f'import os\n\nsecret_value = "{PASSWORD}"\nDEBUG = os.environ.get("DEBUG")\n',
        HOSTILE: "def run(expr):\n    return eval(expr)\n",
    })


def test_hostile_names_render_inert_and_flagged_secrets_stay_masked(env, tmp_path, swarm_settings,  # noqa: F811
                                                                    redis_client):
    repo = hostile_repo(tmp_path / "repo")
    out = tmp_path / "out"
    with LocalCluster(swarm_settings, workers=1, queues=QUEUES, concurrency=8, name_prefix="hostile",
                      log_dir=tmp_path / "logs"):
        done = swarm("review", str(repo), "--workers", "0", "--json", "--out", str(out), env=env)
        assert done.returncode == 0, done.stderr
        run_id = json.loads(done.stdout)["run"]
        shown = {fmt: swarm("report", run_id, "--format", fmt, env=env) for fmt in ("md", "json", "sarif")}
        status = swarm("status", run_id, env=env)
    report = json.loads(shown["json"].stdout)
    # The password was found, and the finding says so, but shows it nowhere.
    flagged = [f for f in report["findings"] if f["file"] == "settings.py" and f["cwe"] == "CWE-798"]
    assert {"B105", "PY-HARDCODED-SECRET"} <= {r["rule"] for f in flagged for r in f["reporters"]}
    assert all('secret_value = "***"' in f["evidence"] for f in flagged)
    # The hostile file was reviewed (its eval is reported) under its real name.
    assert any(f["file"] == HOSTILE and f["cwe"] == "CWE-95" for f in report["findings"])
    markdown = (out / "report.md").read_text()
    outputs = {**{name: (out / name).read_text() for name in ("report.md", "report.json", "report.sarif")},
               **{f"swarm report --format {fmt}": done.stdout + done.stderr for fmt, done in shown.items()},
               "swarm status": status.stdout + status.stderr, "swarm review": done.stdout + done.stderr}
    stored = [zlib.decompress(redis_client.hget(k, "d") or b"")
              for k in redis_client.scan_iter(match=f"*{run_id}*report*")]  # versioned records, compressed
    assert stored and all(b'"findings"' in blob for blob in stored), "the run keeps its report in Redis"
    for where, text in outputs.items():
        assert PASSWORD not in text, where
        assert not CONTROL.search(text), f"{where} carries a raw control character"
    assert all(PASSWORD.encode() not in blob for blob in stored)
    # In report.md the name is one inert code span: no line of its own, escapes shown as text.
    for text in (markdown, shown["md"].stdout):  # the file, and the terminal of `swarm report`
        assert f"evil\\n{FORGED}\\x1b[2J\\x1b]0;owned\\x07\\u202eyp.py" in text
        assert not any(line.startswith("## Forged") for line in text.splitlines())
