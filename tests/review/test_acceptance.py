"""Acceptance: review examples/vulnerable-shop end to end and find every planted problem where it is."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from swarm_tasks.review.enums import FindingSource, ReviewReason, Severity
from swarm_tasks.review.pipeline import review_locally
from swarm_tasks.review.report import AgentRole, Report, ReviewMode
from swarm_tasks.review.report_json import parse_json, render_json
from swarm_tasks.review.report_markdown import render_markdown
from swarm_tasks.review.report_sarif import render_sarif
from tests.review.helpers import EXAMPLE
from tests.review.test_reports import validate_sarif

EXPECTED = json.loads((EXAMPLE / "EXPECTED.json").read_text())


@pytest.fixture(scope="module")
def report() -> Report:
    return review_locally(EXAMPLE)


@pytest.mark.parametrize("expected", EXPECTED["findings"], ids=[e["id"] for e in EXPECTED["findings"]])
def test_planted_problem_found_at_its_line(report: Report, expected: dict[str, object]) -> None:
    keyword = str(expected["keyword"]).lower()
    matches = [f for f in report.findings if f.occurs_at(str(expected["file"]), int(expected["line"]))
               and f.category.value == expected["category"]
               and keyword in f"{f.rule} {f.title} {f.cwe or ''}".lower()]
    near = [(f.start_line, f.rule, f.category.value) for f in report.findings if f.file == expected["file"]]
    assert matches, f"{expected['id']} not reported at {expected['file']}:{expected['line']}; found {near}"
    if "min_severity" in expected:
        floor = Severity(str(expected["min_severity"])).rank
        assert max(f.severity.rank for f in matches) >= floor, matches


def test_skips_and_dependencies(report: Report) -> None:
    skipped = {s.path: s.reason.value for s in report.skipped}
    for entry in EXPECTED["skipped"]:
        assert skipped.get(entry["path"]) == entry["reason"], entry
    reviewed = {r.path: r for r in report.reviewed}
    for entry in EXPECTED["dependencies"]:
        dep = reviewed[entry["path"]]
        assert dep.reason is ReviewReason.IMPORTED and dep.package == entry["package"]
        assert dep.chain[-1] == entry["imported_by"]
    flagged = {r.path for r in report.reviewed if r.reason is ReviewReason.FLAGGED}
    assert "shop/utils.py" not in flagged and "shop/db.py" in flagged
    assert not any(f.file.startswith("static/js/vendor") or f.file == "shop/orders_pb2.py" for f in report.findings)
    assert {u.module for u in report.dependencies.unresolved} >= {"flask"}


def test_agents_and_attribution(report: Report) -> None:
    assert report.mode is ReviewMode.DETERMINISTIC
    roles = report.agents_by_role()
    assert roles[AgentRole.REVIEWER] == 4 * len(report.reviewed)
    assert roles[AgentRole.SCANNER] == report.files_scanned
    assert roles[AgentRole.SUBREVIEWER] >= 8
    depths = {a.depth for a in report.agents if a.role is AgentRole.SUBREVIEWER}
    assert depths == {1, 2}
    agent_ids = {a.agent_id for a in report.agents}
    for finding in report.findings:
        assert all(r.source is FindingSource.ANALYZER for r in finding.reporters)
        for reporter in finding.reporters:
            assert reporter.agent_id in agent_ids or reporter.agent_id.startswith("dependencies:"), reporter
    assert len({f.id for f in report.findings}) == len(report.findings)
    assert report.findings == sorted(report.findings, key=lambda f: f.sort_key())


def test_outputs(report: Report) -> None:
    doc = validate_sarif(render_sarif(report))
    assert len(doc["runs"][0]["results"]) == len(report.findings)
    assert parse_json(render_json(report)) == report
    text = render_markdown(report)
    assert "**Deterministic analysis**" in text and "[`shop/db.py:16`](shop/db.py#L16)" in text
    assert "`venv/lib/python3.11/site-packages/shopkit/serializers.py` (package `shopkit`, depth 1)" in text


def test_review_is_deterministic(report: Report, tmp_path: Path) -> None:
    copy = shutil.copytree(EXAMPLE, tmp_path / "vulnerable-shop", symlinks=True)
    again = review_locally(copy)
    strip = {"started_at", "finished_at", "root"}
    assert again.model_dump(exclude=strip) == report.model_dump(exclude=strip)


def test_example_third_party_code_is_tracked_by_git() -> None:
    """The project's .gitignore must not drop the example's installed packages (venv/, node_modules/)."""
    git = shutil.which("git")
    repo = EXAMPLE.parents[1]
    if git is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["venv/lib/python3.11/site-packages/shopkit/serializers.py", "node_modules/tiny-template/lib/index.js"]
    result = subprocess.run([git, "check-ignore", *(str(EXAMPLE / p) for p in paths)], cwd=repo,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1, f"ignored by git: {result.stdout}"
