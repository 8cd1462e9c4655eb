"""Merging findings from many reviewers: same problem once, all reporters kept, stable order."""

from __future__ import annotations

from swarm_tasks.review.enums import Category, FindingSource, Severity
from swarm_tasks.review.findings import Finding, Location, combine_confidence, finding_id
from swarm_tasks.review.merge import merge_findings, same_issue


def make(file: str = "a.py", start: int = 10, end: int | None = None, rule: str = "B608", cwe: str | None = "CWE-89",
         severity: Severity = Severity.HIGH, category: Category = Category.SECURITY, confidence: float = 0.6,
         tool: str = "bandit", agent: str = "reviewer:security:a.py",
         source: FindingSource = FindingSource.ANALYZER, related: list[Location] | None = None) -> Finding:
    return Finding(file=file, start_line=start, end_line=end or start, rule=rule, cwe=cwe, severity=severity,
                   category=category, title=f"{rule} title", confidence=confidence, tool=tool, agent_id=agent,
                   source=source, related=related or [])


def test_id_is_stable_and_depends_on_place_and_rule() -> None:
    assert make().id == make().id == finding_id("a.py", 10, 10, "B608")
    assert make(start=11).id != make().id and make(rule="X").id != make().id
    assert Finding.decode(make().encode()) == make()


def test_same_rule_or_cwe_on_overlapping_lines_merge() -> None:
    bandit = make(start=10, end=12, confidence=0.6)
    ours = make(start=12, rule="PY-SQL-INJECTION", tool="py-ast", confidence=0.8,
                related=[Location(file="a.py", start_line=9, end_line=9, message="built here")])
    model = make(start=11, rule="sql-injection", cwe="CWE-89", severity=Severity.CRITICAL, confidence=0.7,
                 tool="model:test", agent="reviewer:security:a.py#model", source=FindingSource.MODEL)
    [merged] = merge_findings([bandit, ours, model])
    assert merged.severity is Severity.CRITICAL and merged.id == model.id  # the most severe report leads
    assert {r.tool for r in merged.reporters} == {"bandit", "py-ast", "model:test"}
    assert merged.confidence == combine_confidence([0.6, 0.8, 0.7])
    assert merged.related[0].message == "built here"
    assert not merged.analyzer_only


def test_different_problems_stay_apart() -> None:
    sql = make()
    other_line = make(start=20)
    other_cwe = make(rule="B105", cwe="CWE-798")
    other_file = make(file="b.py")
    assert not same_issue(sql, other_line) and not same_issue(sql, other_cwe)
    assert len(merge_findings([sql, other_line, other_cwe, other_file])) == 4


def test_model_finding_without_cwe_merges_outside_security_only() -> None:
    ruff = make(rule="D103", cwe=None, category=Category.DOCUMENTATION, severity=Severity.LOW, tool="ruff")
    model = make(rule="missing-docstring", cwe=None, category=Category.DOCUMENTATION, severity=Severity.LOW,
                 tool="model:x", source=FindingSource.MODEL)
    assert len(merge_findings([ruff, model])) == 1
    sec_model = make(rule="injection", cwe=None, tool="model:x", source=FindingSource.MODEL)
    assert len(merge_findings([make(), sec_model])) == 2  # security needs the same rule or CWE


def test_transitive_merge_ordering_and_idempotence() -> None:
    a = make(start=1, end=3)
    b = make(start=3, end=5, rule="PY-SQL-INJECTION")
    c = make(start=5, end=7, rule="other", cwe="CWE-89")
    low = make(file="z.py", severity=Severity.LOW, rule="F401", cwe=None, category=Category.QUALITY)
    crit = make(file="m.py", severity=Severity.CRITICAL)
    merged = merge_findings([low, c, a, crit, b])
    assert [f.file for f in merged] == ["m.py", "a.py", "z.py"]
    assert merge_findings(merged) == merged
    assert merge_findings(list(reversed(merged))) == merged
    assert merge_findings([]) == []


def test_combine_confidence() -> None:
    assert combine_confidence([0.5]) == 0.5
    assert combine_confidence([0.5, 0.5]) == 0.75
    assert combine_confidence([1.0, 1.0]) == 0.99


def test_model_draft_becomes_a_model_finding_that_merges_with_analyzers() -> None:
    from swarm_tasks.review.findings import FindingDraft

    draft = FindingDraft.model_validate({"file": "a.py", "start_line": 10, "severity": "critical",
                                         "category": "security", "rule": "sql-injection", "title": "SQLi",
                                         "confidence": 0.7, "cwe": "CWE-89"})
    model = draft.to_finding("anthropic/claude", "reviewer:security:a.py")
    assert model.source is FindingSource.MODEL and model.tool == "model:anthropic/claude" and model.end_line == 10
    [merged] = merge_findings([make(), model])
    assert merged.severity is Severity.CRITICAL and {r.source for r in merged.reporters} == set(FindingSource)
    assert "properties" in FindingDraft.model_json_schema()
