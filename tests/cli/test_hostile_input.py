"""Files that used to hang a review forever, through the real CLI and its two real workers: each ends its
agents, with a reason where findings were cut, and the review ends (partial) in bounded time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.review.helpers import write_tree

pytestmark = pytest.mark.slow

POISON = {
    "undefined.py": "".join(f"value_{i} = name_{i}\n" for i in range(3000)),  # 3,000 undefined names
    "nested.py": "x = " + "f(" * 900 + "1" + ")" * 900 + "\n",  # 900 deep, 2.7 KB
    "undocumented.py": '"""Module."""\n' + "\n".join(f"def fn_{i}(a):\n    return a + {i}\n" for i in range(2500)),
    "app.py": '"""App."""\nimport os\n\n\ndef run(cmd):\n    """Run a command."""\n    os.system(cmd)\n',
}


def test_poison_files_end_their_agents_and_the_review_ends_partial(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "repo", POISON)
    deep = repo / "deep"
    for _ in range(500):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "bottom.py").write_text("import os\nos.system(input())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_STATE_DIR=str(tmp_path / "state"), SWARM_MODEL_GUARD="local-only")
    done = subprocess.run([sys.executable, "-m", "swarm_tasks.cli", "review", str(repo), "--json"], env=env,
                          capture_output=True, text=True, timeout=240, check=False)  # it used to never end
    assert done.returncode == 4, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "partial" and "Traceback" not in done.stderr
    (problem,) = result["outcome"]["problems"]  # only the group whose quality reviewer's findings were cut
    assert problem["spec"] == "review.group" and problem["status"] == "stopped" and problem["reason"].startswith(
        "quality reviewer of undefined.py: findings budget: 3,000 findings, the most severe 200 kept as they are; "
        "the other 2,800 are folded")
    report = json.loads((Path(result["report_dir"]) / "report.json").read_text())
    undefined = [f for f in report["findings"] if f["file"] == "undefined.py" and f["rule"] == "F821"]
    assert len(undefined) == 201 and sum(f["count"] for f in undefined) == 3000  # every place still listed
    docs = [f for f in report["findings"] if f["file"] == "undocumented.py" and f["rule"] == "D103"]
    assert [f["count"] for f in docs] == [2500]  # folded as the report folds low findings: nothing cut
    nested = {f["rule"]: f for f in report["findings"] if f["file"] == "nested.py"}
    assert nested["F821"]["count"] == 1  # 900 reports of one finding are one finding
    assert "too many nested parentheses" in nested["PARSE-ERROR"]["title"]
    skipped = {s["path"]: s for s in report["skipped"]}
    cut = "deep/" + "/".join(["d"] * 64)
    assert skipped[cut]["reason"] == "too-deep" and "more than 64 directories deep" in skipped[cut]["detail"]
    assert result["files_scanned"] == 4


def test_a_file_url_that_is_not_a_repository_is_refused_plainly(tmp_path: Path) -> None:
    plain = write_tree(tmp_path / "plain", {"app.py": "x = 1\n"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_STATE_DIR=str(tmp_path / "state"))
    for url, said in ((f"file://{plain}", f"is not a git repository: {plain} has no .git"),
                      (f"file://{tmp_path}/missing", f"{tmp_path}/missing does not exist")):
        done = subprocess.run([sys.executable, "-m", "swarm_tasks.cli", "review", url], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        flat = " ".join(done.stderr.split())
        assert done.returncode == 2 and said in flat and "repository exists" not in flat, done.stderr
    assert not (tmp_path / "state").exists()  # refused before any server or worker started
