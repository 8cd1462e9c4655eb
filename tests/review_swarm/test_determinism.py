"""The same tree gives the same review every time: ten reviews of one tree on one set of real workers (threads
racing in each) give identical reports, agent counts included.

What made them differ: bandit and radon parsed outside the lock that guards CPython 3.11's non-thread-safe AST
construction (now and then bandit skipped a file and its findings were lost), and a dependency scan skipped
the files in the import chain of whichever importer reached it first, so a file imported along two chains had
more or fewer children depending on timing (744 agents in one run, 745 in the next); and a third-party
package's file budget was counted per run, so which of its files were reviewed was whichever its importers
asked for first (nearly every run of this tree reviewed another three of bigpkg's modules); and past the
agent budget, the trivial files' batches drew their reviewers from one counter, so which flagged files
got reviewers was whichever batch flagged one first (each batch now has its own share, spent in path
order)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from swarm_tasks.api import Swarm
from swarm_tasks.review.report_json import render_json
from tests.review.helpers import EXAMPLE, write_tree

pytestmark = pytest.mark.slow

SITE = "venv/lib/python3.11/site-packages/bigpkg"
# a.py and d.py are flagged and both import c.py; c.py imports a.py: reached through a it must skip nothing
# more than reached through d, so whichever is first, c gets the same children.
CHAINS = {
    "a.py": "import os\nimport c\n\n\ndef run(x):\n    os.system(x)\n",
    "d.py": "import pickle\nimport c\n\n\ndef load(b):\n    return pickle.loads(b)\n",
    "c.py": '"""C."""\nimport a\nimport e\n\n\ndef helper(q):\n    """Help."""\n    return q\n',
    "e.py": '"""E."""\n\n\ndef go(cmd):\n    """Go."""\n    return cmd\n',
    **{f"pkg/m{i}.py": f'"""M{i}."""\nimport a\nimport d\n\n\ndef f{i}(x):\n    """F."""\n    if x:\n'
                       "        if x > 1:\n            if x > 2:\n                if x > 3:\n"
                       "                    if x > 4:\n                        return eval(x)\n    return 0\n"
       for i in range(6)},
    # four flagged files each import another module of an installed package by name: more of its files
    # are asked for than one importer may have reviewed (4), so a run-wide count made the choice by timing
    f"{SITE}/__init__.py": '"""Big."""\n',
    **{f"{SITE}/m{i}.py": f'"""M{i}."""\nimport os\n\n\ndef g{i}(x):\n    """G."""\n    os.system(x)\n'
       for i in range(8)},
    **{f"user{i}.py": f"import os\nfrom bigpkg import m{7 - i}\n\n\ndef run(x):\n    os.system(x)\n"
       for i in range(4)},
}


def comparable(report_json: str) -> dict[str, object]:
    """The whole report but what names the run: its id and when it ran. Agents keep their ids (derived from
    what they are) and their counts; only who spawned a file's reviewers is first come (the shallowest of
    its scans, or a deeper one that finished first), so the agent tree's parent links are left out, and so is
    which group agent ran an analyzer (without models, a group claims an imported file first come)."""
    data = json.loads(report_json)
    for key in ("run_id", "started_at", "finished_at"):
        data.pop(key)
    for agent in data["agents"]:
        agent.pop("parent_agent_id")
        agent.pop("depth")
        agent.pop("inside_agent_id")  # which group did an imported file's or a sub-review's work: first come
    return data


# 120 trivial files the scans flag (undocumented), scanned in two batches, and one risky file; an agent
# budget that leaves the batches room for two flagged files' reviewers. Drawn from one counter, the first
# batch to flag a file took it: which files were reviewed depended on which batch ran first.
FLOOD = {**{f"pkg{i // 60}/m{i}.py": f"X{i} = {i}\n" for i in range(120)},
         "run.py": "import os\nos.system(input())\n"}
SCRIPTED = "scripted/py:swarm_tasks.review.scripted:reviewer"
FLOOD_AGENTS = 1 + 6 + 2 + 8  # the inventory, the risky file's scan and reviewers, two batches, two files' reviewers


@pytest.mark.timeout(600)
def test_ten_reviews_of_one_tree_give_identical_reports(swarm_settings, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(EXAMPLE, tree)
    write_tree(tree, CHAINS)
    flood = write_tree(tmp_path / "flood", FLOOD)
    reports, floods = [], []
    with Swarm(swarm_settings, workers=2, concurrency=8) as swarm:
        for _ in range(10):
            run = swarm.review(tree)
            assert run.wait(timeout_s=240).status.value == "completed", run.record().reason
            reports.append(comparable(render_json(run.report())))
        for _ in range(6):  # past the agent budget: partial, and the same files left out every time
            # (a model in the review, here a sub-reviewer's, makes every file and reviewer its own agent)
            run = swarm.review(flood, limits={"max_agents": FLOOD_AGENTS}, models={"subreviewer": SCRIPTED})
            assert run.wait(timeout_s=240).status.value == "partial", run.record().reason
            floods.append(comparable(render_json(run.report())))
    reviewed = {a["file"] for a in floods[0]["agents"] if a["role"] == "reviewer"}
    assert len(reviewed) == 3 and "run.py" in reviewed, reviewed  # two trivial files, one from each batch
    for index, other in enumerate(floods[1:], start=1):
        assert other == floods[0], f"review {index} of the flood differs from review 0"
    first = reports[0]
    assert len(first["agents"]) > 100 and len(first["findings"]) > 20  # the analyzers' runs, inside group agents
    assert {f"{SITE}/m{i}.py" for i in range(4, 8)} <= {f["file"] for f in first["findings"]}  # each named import
    for index, other in enumerate(reports[1:], start=1):
        assert len(other["agents"]) == len(first["agents"]), index
        assert other == first, f"review {index} differs from review 0"
