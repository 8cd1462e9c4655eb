"""Aggregation: a low-severity rule that fires many times is one finding with its count and every place.

Low and info findings of one rule become one finding per file; for documentation rules and the style
rules in ``ReviewConfig.repository_wide_rules`` one finding across the whole repository ("missing module
docstring in 57 files"). Third-party code is aggregated apart from the repository's own, per package.
The first place (by file and line) is the finding's own location; the others are ``occurrences``, each
with its title and fingerprint, so a baseline can still tell a new occurrence from a known one. Medium
and worse findings are never aggregated: each is a flaw someone has to look at.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict

from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding, Location, Reporter, finding_id


def repository_wide(finding: Finding, config: ReviewConfig) -> bool:
    """Whether ``finding``'s rule is aggregated across files rather than per file."""
    return finding.category is Category.DOCUMENTATION or any(
        fnmatch.fnmatchcase(finding.rule, glob) for glob in config.repository_wide_rules)


def aggregate(findings: list[Finding], config: ReviewConfig) -> list[Finding]:
    """``findings`` with repeated low/info rules folded into one finding each (order not kept)."""
    groups: dict[tuple[str, ...], list[Finding]] = defaultdict(list)
    out: list[Finding] = []
    for f in findings:
        if f.severity.rank > Severity.LOW.rank:
            out.append(f)
            continue
        where = "*" if repository_wide(f, config) else f.file
        groups[(f.rule, f.severity.value, f.origin.value, f.package or "", where)].append(f)
    for key, group in groups.items():
        if sum(f.count for f in group) < config.aggregate_min_count:
            out.extend(group)
        else:  # already folded findings (a reviewer's, see review/budget.py) fold on with the rest
            out.append(fold(group, repo_wide=key[-1] == "*"))
    return out


def _common_title(titles: list[str]) -> str:
    """The titles' shared words when they differ only in a name ("Exported function x has no JSDoc")."""
    if len(set(titles)) == 1:
        return titles[0]
    words = [t.split(" ") for t in titles]
    shared: list[str] = []
    for column in zip(*words, strict=False):
        if any(w != column[0] for w in column):
            break
        shared.append(column[0])
    prefix = " ".join(shared).strip(" :-(")
    return prefix if len(shared) >= 3 else f"{titles[0]}, and others like it"


def fold(findings: list[Finding], repo_wide: bool = False) -> Finding:
    """One finding for ``findings`` (of one rule), their places as occurrences; folded ones are unfolded."""
    group = sorted(_unfolded(findings), key=lambda f: (f.file, f.start_line, f.id))
    first = group[0]
    files = list(dict.fromkeys(f.file for f in group))
    count = len(group)
    where = (f"in {len(files)} files" if len(files) > 1 else f"{count} times in {first.file}")
    if len(files) > 1 and count != len(files):
        where = f"{count} times in {len(files)} files"
    title = f"{_common_title([f.title for f in group])}: {where}"
    reporters: dict[tuple[str, str, str], Reporter] = {}
    for f in group:
        for r in f.reporters:
            reporters.setdefault((r.tool, r.rule, r.role or r.agent_id), r)
    occurrences = [Location(file=f.file, start_line=f.start_line, end_line=f.end_line, message=f.title[:160],
                            fingerprint=f.fingerprint) for f in group[1:]]
    scope = "*" if repo_wide else first.file
    return first.model_copy(update={
        "id": finding_id(scope, 1, 1, f"aggregate:{first.rule}:{first.package or ''}"), "title": title,
        "count": count, "occurrences": occurrences, "confidence": max(f.confidence for f in group),
        "reporters": list(reporters.values()), "related": [],
        "notes": [f"{count} occurrences of {first.rule}; every place is listed (SARIF: relatedLocations)"]})


def _unfolded(findings: list[Finding]) -> list[Finding]:
    """Each finding as itself, and each occurrence of a folded one as a finding of its own at that place."""
    out: list[Finding] = []
    for f in findings:
        if f.count == 1:
            out.append(f)
            continue
        own_title = f.title.rsplit(": ", 1)[0]  # the fold's title is "<common title>: <where>"
        single = f.model_copy(update={"count": 1, "occurrences": [], "notes": [], "title": own_title})
        out.append(single)
        out += [single.model_copy(update={"id": finding_id(o.file, o.start_line, o.end_line, f.rule), "file": o.file,
                                          "start_line": o.start_line, "end_line": o.end_line,
                                          "title": o.message or f.title, "fingerprint": o.fingerprint})
                for o in f.occurrences]
    return out
