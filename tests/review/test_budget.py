"""The findings budget of a reviewer: each distinct finding once, the most severe kept, the rest summarised."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.budget import MAX_SUMMARIES, cap_findings
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, ReviewerKind, Severity
from swarm_tasks.review.findings import Finding
from tests.review.helpers import source

UNDEFINED = "".join(f"value_{i} = name_{i}\n" for i in range(3000))  # 3,000 undefined names, 66 KB
NESTED = "x = " + "f(" * 900 + "1" + ")" * 900 + "\n"  # 900 deep: too deep for CPython, not for ruff
UNDOCUMENTED = '"""Module."""\n' + "\n".join(f"def fn_{i}(a):\n    return a + {i}\n" for i in range(2500))


def finding(line: int, rule: str, severity: Severity = Severity.LOW) -> Finding:
    return Finding(file="a.py", start_line=line, end_line=line, severity=severity, category=Category.QUALITY,
                   rule=rule, title=f"{rule} at {line}", confidence=0.9, tool="ruff", agent_id="r")


def test_under_the_budget_nothing_changes_but_duplicates():
    found = [finding(1, "F821"), finding(2, "F821"), finding(1, "F821")]
    capped = cap_findings(found, 10)
    assert [f.start_line for f in capped.findings] == [1, 2] and not capped.cut and capped.reason() is None


def test_past_the_budget_the_most_severe_are_kept_and_the_rest_summarised_by_rule():
    found = [finding(n, "D103") for n in range(1, 301)] + [finding(n, "F821", Severity.HIGH) for n in range(5, 8)]
    capped = cap_findings(found, 50)
    kept, summaries = capped.findings[:50], capped.findings[50:]
    assert {f.rule for f in kept[:3]} == {"F821"} and capped.kept == 50 and capped.found == 303
    (summary,) = summaries
    assert summary.rule == "D103" and summary.start_line == 48 and summary.title.startswith("253 findings like this")
    assert "lines: 48, 49, 50" in summary.notes[0] and "and 203 more" in summary.notes[0]
    assert len(summary.related) == 49 and summary.id not in {f.id for f in kept}
    assert capped.reason() == ("findings budget: kept 50 of 303 findings; the other 253 are summarised by rule in "
                               "1 finding (max_findings_per_agent = 50)")


def test_summaries_are_bounded_too():
    found = [finding(n, f"R{n:03d}") for n in range(1, 200)]
    capped = cap_findings(found, 10)
    assert len(capped.findings) == 10 + MAX_SUMMARIES
    assert "rules R" in capped.findings[-1].title


def test_the_issues_poison_files_stay_small(tmp_path: Path):
    config = ReviewConfig()
    for name, text, kind, found, kept in (("undefined.py", UNDEFINED, ReviewerKind.QUALITY, 3000, 200),
                                          ("nested.py", NESTED, ReviewerKind.QUALITY, 1, 1),
                                          ("undocumented.py", UNDOCUMENTED, ReviewerKind.DOCUMENTATION, 2500, 200)):
        file = source(tmp_path, name, text)
        capped = cap_findings(run_reviewer(kind, tmp_path, file, config, "agent"), config.max_findings_per_agent)
        assert (capped.found, capped.kept) == (found, kept), name
        size = sum(len(f.model_dump_json()) for f in capped.findings)
        assert size < 400_000, (name, size)  # far within one record, whatever the file
        assert all(len(f.evidence) <= config.evidence_max_chars + 40 for f in capped.findings)
