"""The severity table: one mapping from kind of finding to severity, for analyzers and models alike."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, ReviewerKind, Severity
from swarm_tasks.review.findings import FindingDraft
from swarm_tasks.review.languages import Language
from swarm_tasks.review.model_agents import confirmed_finding, drafts_to_findings
from swarm_tasks.review.severity import calibrate, table_markdown
from swarm_tasks.review.source import SourceFile

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def draft(**fields: object) -> dict[str, object]:
    base = {"file": "app.py", "start_line": 3, "severity": "low", "category": "security", "rule": "sql-injection",
            "title": "SQL built from input", "confidence": 0.7}
    return {**base, **fields}


def test_model_findings_get_the_tables_severity() -> None:
    sql, docs, secret_in_test, free = drafts_to_findings(
        [draft(), draft(severity="critical", category="documentation", rule="missing-docstring", title="x"),
         draft(file="tests/test_app.py", cwe="CWE-798", rule="hardcoded-password", severity="critical"),
         draft(rule="odd-thing", severity="medium", title="Something only a model saw")], "m", "agent-1")
    assert sql.severity is Severity.HIGH  # SQL injection, not traced: high whatever the model said
    assert docs.severity is Severity.LOW  # documentation is never above low
    assert secret_in_test.severity is Severity.MEDIUM  # a credential is high, one step lower in test code
    assert free.severity is Severity.MEDIUM  # no kind in the table: the model's severity stands
    # a model sub-reviewer's confirmation makes it reachable: critical, as the deterministic tracer's does
    confirmed = confirmed_finding({"finding": sql.model_dump(mode="json")}, {"confirmed": True}, "m", "agent-2")
    assert confirmed is not None and confirmed.reachable and confirmed.severity is Severity.CRITICAL
    assert [r.agent_id for r in confirmed.reporters] == ["agent-1", "agent-2"]
    assert confirmed_finding({"finding": sql.model_dump(mode="json")}, {"confirmed": False}, "m", "a") is None


def test_analyzer_findings_get_the_tables_severity(tmp_path: Path) -> None:
    code = ('"""x."""\nimport hashlib\nimport subprocess\n\n\ndef f(cmd):\n    """F."""\n'
            '    subprocess.call("ls -l", shell=True)\n    subprocess.call(cmd, shell=True)\n'
            '    return hashlib.md5(cmd.encode()).hexdigest()\n')
    (tmp_path / "t.py").write_text(code)
    file = SourceFile(path="t.py", language=Language.PYTHON, size=len(code), line_count=10, sha256="0")
    found = {(f.rule, f.start_line): f.severity for f in
             run_reviewer(ReviewerKind.SECURITY, tmp_path, file, ReviewConfig())}
    assert found[("B602", 8)] is Severity.LOW  # bandit: a constant command, not an injection
    assert found[("B602", 9)] is Severity.HIGH  # command injection, not traced
    assert found[("B324", 10)] is Severity.MEDIUM  # weak cryptography (bandit says high)
    assert found[("B404", 3)] is Severity.LOW


def test_calibration_is_idempotent_and_the_readme_shows_the_table() -> None:
    finding = FindingDraft.model_validate(draft(category=Category.SECURITY.value)).to_finding("m", "a")
    once = calibrate(finding)
    assert calibrate(once) is once
    table = README.split("<!-- severity-table -->", 1)[1].split("<!-- /severity-table -->", 1)[0]
    assert table.strip() == table_markdown()
