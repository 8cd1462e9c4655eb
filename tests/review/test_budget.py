"""The findings budget of a reviewer: each distinct finding once, low ones folded as the report folds them,
the most severe kept and the rest folded by rule, with a reason saying so."""

from __future__ import annotations

from pathlib import Path

from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.budget import cap_findings
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, ReviewerKind, Severity
from swarm_tasks.review.findings import Finding
from tests.review.helpers import source

UNDEFINED = "".join(f"value_{i} = name_{i}\n" for i in range(3000))  # 3,000 undefined names, 66 KB
NESTED = "x = " + "f(" * 900 + "1" + ")" * 900 + "\n"  # 900 deep: too deep for CPython, not for ruff
UNDOCUMENTED = '"""Module."""\n' + "\n".join(f"def fn_{i}(a):\n    return a + {i}\n" for i in range(2500))


def finding(line: int, rule: str, severity: Severity = Severity.LOW) -> Finding:
    return Finding(file="a.py", start_line=line, end_line=line, severity=severity, category=Category.QUALITY,
                   rule=rule, title=f"Problem {rule} here", confidence=0.9, tool="ruff", agent_id="r")


def test_under_the_budget_nothing_changes_but_duplicates():
    found = [finding(1, "F821"), finding(2, "F821"), finding(1, "F821")]
    capped = cap_findings(found, ReviewConfig(max_findings_per_agent=10))
    assert [f.start_line for f in capped.findings] == [1, 2] and not capped.cut and capped.reason() is None


def test_low_findings_past_the_budget_are_folded_losslessly_and_nothing_is_cut():
    found = [finding(n, "D103") for n in range(1, 301)] + [finding(n, "F401") for n in range(400, 460)]
    capped = cap_findings(found, ReviewConfig(max_findings_per_agent=50))
    assert not capped.cut and sorted((f.rule, f.count) for f in capped.findings) == [("D103", 300), ("F401", 60)]


def test_severe_findings_past_the_budget_are_folded_and_the_cut_is_said():
    found = [finding(n, "F821", Severity.HIGH) for n in range(1, 301)] + [finding(7, "B006", Severity.MEDIUM)]
    capped = cap_findings(found, ReviewConfig(max_findings_per_agent=50))
    kept, folds = capped.findings[:50], capped.findings[50:]
    assert all(f.count == 1 and f.severity is Severity.HIGH for f in kept) and kept[1].start_line == 2
    assert sorted((f.rule, f.count) for f in folds) == [("B006", 1), ("F821", 250)]
    f821 = next(f for f in folds if f.rule == "F821")
    assert f821.start_line == 51 and [o.start_line for o in f821.occurrences] == list(range(52, 301))
    assert f821.severity is Severity.HIGH and f821.title.startswith("Problem F821 here: 250 times in a.py")
    assert capped.reason() == ("findings budget: 301 findings, the most severe 50 kept as they are; the other 251 "
                               "are folded by rule into 2 findings listing every place (max_findings_per_agent = 50)")


def test_the_issues_poison_files_stay_small(tmp_path: Path):
    config = ReviewConfig()
    for name, text, kind, count, cut in (("undefined.py", UNDEFINED, ReviewerKind.QUALITY, 201, True),
                                         ("nested.py", NESTED, ReviewerKind.QUALITY, 1, False),
                                         ("undocumented.py", UNDOCUMENTED, ReviewerKind.DOCUMENTATION, 1, False)):
        file = source(tmp_path, name, text)
        capped = cap_findings(run_reviewer(kind, tmp_path, file, config, "agent"), config)
        assert (len(capped.findings), capped.cut) == (count, cut), name
        size = sum(len(f.model_dump_json()) for f in capped.findings)
        assert size < 600_000, (name, size)  # far within one record (1 MB), whatever the file
        assert all(len(f.evidence) <= config.evidence_max_chars + 40 for f in capped.findings)
