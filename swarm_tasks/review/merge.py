"""Merge findings from many reviewers into one list: the same problem reported twice becomes one finding.

Two findings are the same problem when they are in the same file, their line ranges overlap, and they
have the same rule, or the same CWE, or (outside security, where one side is a model that names rules
freely) the same category. The merged finding keeps the most severe report as primary, every reporter,
every related location and note, and combines the confidences as independent evidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from swarm_tasks.review.enums import Category, FindingSource
from swarm_tasks.review.findings import Finding, Location, Reporter, combine_confidence


def same_issue(a: Finding, b: Finding) -> bool:
    """Whether two findings describe one problem."""
    if not a.overlaps(b):
        return False
    if a.rule == b.rule or (a.cwe is not None and a.cwe == b.cwe):
        return True
    model = FindingSource.MODEL in (a.source, b.source)
    return (model and a.category == b.category and a.category is not Category.SECURITY
            and (a.cwe is None or b.cwe is None))


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Deduplicated findings in report order (most severe first, then file, line, rule). Idempotent."""
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_file[finding.file].append(finding)
    merged: list[Finding] = []
    for group in by_file.values():
        merged.extend(_merge_file(group))
    return sorted(merged, key=lambda f: f.sort_key())


def _merge_file(findings: list[Finding]) -> list[Finding]:
    items = sorted(findings, key=lambda f: (f.start_line, f.end_line, f.rule, f.id))
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(items):
        for j in range(i + 1, len(items)):
            b = items[j]
            if b.start_line > max(a.end_line, a.start_line):
                break  # sorted by start line: nothing further can overlap a
            if same_issue(a, b):
                parent[find(j)] = find(i)
    groups: dict[int, list[Finding]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[find(i)].append(item)
    return [_combine(group) for group in groups.values()]


def _primary_key(f: Finding) -> tuple[int, float, int, str]:
    # Most severe, then most confident; an analyzer's exact line beats a model's on a tie.
    return (-f.severity.rank, -f.confidence, 0 if f.source is FindingSource.ANALYZER else 1, f.id)


def _combine(group: list[Finding]) -> Finding:
    if len(group) == 1:
        return group[0]
    primary = min(group, key=_primary_key)
    reporters: dict[tuple[str, str, str], Reporter] = {}
    related: dict[tuple[str, int, str], Location] = {}
    notes: dict[str, None] = {}
    for finding in sorted(group, key=_primary_key):
        for reporter in finding.reporters:
            reporters.setdefault((reporter.agent_id, reporter.tool, reporter.rule), reporter)
        for loc in finding.related:
            related.setdefault((loc.file, loc.start_line, loc.message), loc)
        notes.update(dict.fromkeys(finding.notes))
    # Distinct findings are independent evidence; reports already merged into one are not counted twice.
    distinct = {f.id: f.confidence for f in group}
    cwe = primary.cwe or next((f.cwe for f in group if f.cwe), None)
    return primary.model_copy(update={
        "confidence": combine_confidence(list(distinct.values())), "cwe": cwe,
        "reporters": list(reporters.values()), "related": list(related.values()), "notes": list(notes)})
