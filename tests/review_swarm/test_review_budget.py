"""A review's agent budget, in process: a flood of trivial files cannot starve the file that matters,
and a review that could not cover every file ends partial, naming the files it left out."""

from __future__ import annotations

from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.report import AgentRole
from swarm_tasks.review.workflow import load_report, on_idle, submit_review
from swarm_tasks.runs import RunLimits, RunStatus
from swarm_tasks.sources import SourceSpec
from tests.review.helpers import write_tree

SCRIPTED = "scripted/py:swarm_tasks.review.scripted:reviewer"


def test_a_flood_of_trivial_files_does_not_starve_the_dangerous_one(local, tmp_path):
    files = {f"pkg{i // 100}/m{i}.py": f"X{i} = {i}\n" for i in range(300)}
    files["pkg1/run.py"] = "import os\nos.system(input())\n"
    root = write_tree(tmp_path / "flood", files)
    # with a model in the review (here the sub-reviewers'), every scan and reviewer is an agent of its own
    job = ReviewJob(source=SourceSpec(location=str(root)), limits=RunLimits(max_agents=20),
                    models={"subreviewer": SCRIPTED})
    run = submit_review(local.services, job)
    local.drain(max_steps=2000)
    on_idle(local.services, local.services.runs.get(run.id))
    record = local.services.runs.get(run.id)
    report = load_report(local.services, run.id)
    shell = [f for f in report.findings if f.file == "pkg1/run.py" and f.start_line == 2]
    assert shell and shell[0].category.value == "security" and shell[0].severity.rank >= 3
    assert record.status is RunStatus.PARTIAL, record.reason
    assert report.files_inventoried == report.files_scanned == 301  # one scan and three batches of 100
    batches = [a for a in report.agents if a.kind == "batch"]
    assert len(batches) == 3 and all(a.role is AgentRole.SCANNER and a.status == "done" for a in batches)
    reviewed = {a.file for a in report.agents if a.role is AgentRole.REVIEWER and a.status == "done"}
    assert "pkg1/run.py" in reviewed and len(reviewed) == 1 + 2  # and two trivial files, within the allowance
    outcome = record.outcome
    assert outcome.left_out_total == 298 and record.result["files_left_out"] == 298
    assert all("flagged but not reviewed (the trivial files' share of the agent budget was spent" in item
               for item in outcome.left_out)
    assert "298 file(s) left out, flagged but not reviewed (the trivial files' share of the agent budget was " \
           "spent: raise --max-agents): pkg0/m" in record.reason and record.reason.endswith(" and 293 more")
    markdown = (local.settings.state_dir / "reports" / run.id / "report.md").read_text()
    assert "**Outcome: PARTIAL review**" in markdown and "Files left out (298):" in markdown
    assert "- ... and 248 more files" in markdown


def test_without_models_a_flood_is_reviewed_whole_by_a_few_group_agents(local, tmp_path):
    files = {f"pkg{i // 100}/m{i}.py": f"X{i} = {i}\n" for i in range(300)}
    files["pkg1/run.py"] = "import os\nos.system(input())\n"
    root = write_tree(tmp_path / "flood", files)
    job = ReviewJob(source=SourceSpec(location=str(root)), limits=RunLimits(max_agents=5))
    run = submit_review(local.services, job)
    local.drain(max_steps=2000)
    on_idle(local.services, local.services.runs.get(run.id))
    record = local.services.runs.get(run.id)
    report = load_report(local.services, run.id)
    assert record.status is RunStatus.COMPLETED, record.reason
    own = [a for a in report.agents if not a.inside_agent_id]
    assert sorted(a.kind for a in own) == ["group"] * 4 + ["inventory"]  # the budget: 4 groups of about 75 files
    assert report.files_inventoried == report.files_scanned == 301
    shell = [f for f in report.findings if f.file == "pkg1/run.py" and f.start_line == 2]
    assert shell and shell[0].category.value == "security" and shell[0].severity.rank >= 3
    reviewed = {a.file for a in report.agents if a.role is AgentRole.REVIEWER and a.status == "done"}
    assert reviewed == {r.path for r in report.reviewed} and "pkg1/run.py" in reviewed
    assert len(reviewed) == 301  # every one-liner lacks a module docstring: flagged, and reviewed
