"""Merge findings from many reviewers into one list: one flaw reported several times becomes one finding.

Two findings are one flaw when

- they are in the same file, their line ranges overlap, and they have the same rule, or the same CWE, or
  the same kind in the severity table (bandit's B324 and the auth-flow's weak password hash on one line),
  or (outside security, where one side is a model that names rules freely) the same category;
- one lies on the other's source-to-sink path (a related location of a finding of the same kind: a
  model reporting the SQL injection where the input is read, the analyzer at the query);
- one is only the import of a risky module (bandit's B4xx) and the other a flaw of the same CWE in the
  same file: the import is where the sink's module came from, not a second problem.

The merged finding keeps the most severe report as primary, every reporter, every related location and
note (the other reports' own places become related locations), is reachable if any report was, and
combines the confidences as independent evidence.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable

from swarm_tasks.review.enums import Category, FindingSource
from swarm_tasks.review.findings import Finding, Location, Reporter, combine_confidence
from swarm_tasks.review.severity import kind_of

IMPORT_RULES = ("B40[0-9]", "B41[0-9]")
# Kinds that are one flaw when they meet on a line: md5 of a password is weak crypto and weak hashing.
_FAMILY = {"weak password hashing": "weak cryptography"}


def _family(f: Finding) -> str | None:
    kind = kind_of(f) if f.category is Category.SECURITY else None
    return None if kind is None else _FAMILY.get(kind.name, kind.name)


def _is_import(f: Finding) -> bool:
    return any(fnmatch.fnmatchcase(f.rule, glob) for glob in IMPORT_RULES)


def same_issue(a: Finding, b: Finding) -> bool:
    """Whether two findings at overlapping places describe one problem."""
    if not a.overlaps(b):
        return False
    if a.rule == b.rule or (a.cwe is not None and a.cwe == b.cwe):
        return True
    if a.category is b.category is Category.SECURITY:
        family = _family(a)
        return family is not None and family == _family(b) and not (_is_import(a) or _is_import(b))
    model = FindingSource.MODEL in (a.source, b.source)
    return (model and a.category == b.category and a.category is not Category.SECURITY
            and (a.cwe is None or b.cwe is None))


def on_path(a: Finding, b: Finding) -> bool:
    """Whether ``b`` lies on ``a``'s source-to-sink path (one of a's related places) and is the same kind."""
    family = _family(a)
    if family is None or family != _family(b):
        return False
    return any(loc.file == b.file and b.start_line <= loc.start_line <= b.end_line for loc in a.related)


def import_of_sink(imp: Finding, sink: Finding) -> bool:
    """Whether ``imp`` is only the import of the module ``sink`` misuses."""
    return (_is_import(imp) and not _is_import(sink) and imp.file == sink.file and imp.cwe is not None
            and imp.cwe == sink.cwe)


class _Groups:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(j)] = self.find(i)


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Deduplicated findings in report order (most severe first, then file, line, rule). Idempotent."""
    items = sorted(findings, key=lambda f: (f.file, f.start_line, f.end_line, f.rule, f.id))
    groups = _Groups(len(items))
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(items):
        by_file[f.file].append(i)
    for indices in by_file.values():
        for pos, i in enumerate(indices):
            a = items[i]
            for j in indices[pos + 1:]:
                b = items[j]
                if b.start_line > max(a.end_line, a.start_line):
                    break  # sorted by start line: nothing further can overlap a
                if same_issue(a, b):
                    groups.union(i, j)
        imports = [i for i in indices if _is_import(items[i])]
        for i in imports:
            for j in indices:
                if import_of_sink(items[i], items[j]):
                    groups.union(j, i)
                    break
    with_path = [i for i, f in enumerate(items) if f.related and _family(f) is not None]
    for i in with_path:
        places = {loc.file for loc in items[i].related}
        for file in places:
            for j in by_file.get(file, ()):
                if j != i and on_path(items[i], items[j]):
                    groups.union(i, j)
    merged: dict[int, list[Finding]] = defaultdict(list)
    for i, item in enumerate(items):
        merged[groups.find(i)].append(item)
    return sorted((_combine(group) for group in merged.values()), key=lambda f: f.sort_key())


def _primary_key(f: Finding) -> tuple[int, int, float, int, str]:
    # Most severe, imports last, then most confident; an analyzer's exact line beats a model's on a tie.
    return (-f.severity.rank, 1 if _is_import(f) else 0, -f.confidence,
            0 if f.source is FindingSource.ANALYZER else 1, f.id)


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
        if (finding.file, finding.start_line) != (primary.file, primary.start_line):
            what = "import of the module" if _is_import(finding) else "also reported here"
            loc = Location(file=finding.file, start_line=finding.start_line, end_line=finding.end_line,
                           message=f"{what}: {finding.rule} {finding.title}"[:200])
            related.setdefault((loc.file, loc.start_line, loc.message), loc)
        notes.update(dict.fromkeys(finding.notes))
    # Distinct findings are independent evidence; reports already merged into one are not counted twice.
    distinct = {f.id: f.confidence for f in group}
    cwe = primary.cwe or next((f.cwe for f in group if f.cwe), None)
    return primary.model_copy(update={
        "confidence": combine_confidence(list(distinct.values())), "cwe": cwe,
        "reachable": any(f.reachable for f in group),
        "reporters": list(reporters.values()), "related": list(related.values()), "notes": list(notes)})
