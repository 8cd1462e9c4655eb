"""When a finding spawns deeper reviewers: rules as data (subreview_rules.json), loaded into pydantic.

A rule matches a finding at or above its severity, in one of its categories, when any selector hits
(rule-id glob, CWE, a scan flag of the file, a keyword in the path); a rule without selectors matches
every such finding. Depth 1 is a sub-reviewer of a reviewer; it may spawn depth 2, and so on, up to
the smaller of the rule's ``max_depth`` and ``ReviewConfig.subreview_max_depth``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from pydantic import Field

from swarm_tasks.errors import ReviewError
from swarm_tasks.review.enums import Category, ScanFlag, Severity, SubReviewerKind
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.records import Record

RULES_RESOURCE = "subreview_rules.json"


class SubreviewRule(Record):
    """One trigger: which findings spawn which sub-reviewer, how deep."""

    name: str = Field(min_length=1)
    reviewer: SubReviewerKind
    description: str = ""
    min_severity: Severity = Severity.HIGH
    categories: list[Category] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list, description="fnmatch globs on Finding.rule")
    cwes: list[str] = Field(default_factory=list)
    flags: list[ScanFlag] = Field(default_factory=list)
    path_keywords: list[str] = Field(default_factory=list)
    once_per_file: bool = False
    max_depth: int = Field(default=2, ge=1)

    def matches(self, finding: Finding, file_flags: Iterable[ScanFlag] = ()) -> bool:
        """Whether ``finding`` (in a file with ``file_flags``) triggers this rule."""
        if finding.severity.rank < self.min_severity.rank:
            return False
        if self.categories and finding.category not in self.categories:
            return False
        if not (self.rules or self.cwes or self.flags or self.path_keywords):
            return True
        path = finding.file.lower()
        return (any(fnmatch.fnmatchcase(finding.rule, glob) for glob in self.rules)
                or (finding.cwe is not None and finding.cwe in self.cwes)
                or any(flag in self.flags for flag in file_flags)
                or any(word in path for word in self.path_keywords))


class SubreviewRules(Record):
    """The whole rules file."""

    version: int = Field(ge=1)
    rules: list[SubreviewRule]


class SubreviewRequest(Record):
    """A sub-reviewer to run: on which finding, from where, at which depth, tracing which names."""

    reviewer: SubReviewerKind
    rule_name: str
    finding_id: str
    file: str
    line: int = Field(ge=1)
    depth: int = Field(ge=1)
    max_depth: int = Field(ge=1)
    names: list[str] = Field(default_factory=list, description="Variables to trace; empty: those of the line.")
    parent_agent_id: str = ""

    @property
    def agent_id(self) -> str:
        """A deterministic id: the same request in another run gets the same agent id."""
        names = ",".join(self.names)
        return f"subreviewer:{self.reviewer}:{self.file}:{self.line}:{self.finding_id}:d{self.depth}" + (
            f":{names}" if names else "")

    def key(self, once_per_file: bool) -> tuple[str, ...]:
        """What makes two requests the same work (to run each once per review)."""
        if once_per_file:
            return (self.reviewer, self.file)
        return (self.reviewer, self.file, str(self.line), ",".join(self.names))


def load_subreview_rules(path: Path | None = None) -> SubreviewRules:
    """The shipped rules, or those in ``path``; :class:`ReviewError` if the file is missing or invalid."""
    try:
        if path is None:
            data = resources.files("swarm_tasks.review").joinpath(RULES_RESOURCE).read_bytes()
        else:
            data = path.read_bytes()
    except OSError as exc:
        raise ReviewError(f"cannot read sub-review rules {path or RULES_RESOURCE}: {exc}") from None
    return SubreviewRules.decode(data)


def plan_subreviews(findings: Iterable[Finding], rules: SubreviewRules, file_flags: dict[str, set[ScanFlag]],
                    depth: int, max_depth: int, parent_agent_id: str = "") -> list[SubreviewRequest]:
    """The sub-reviewers ``findings`` spawn at ``depth`` (1 for findings of a reviewer), one per distinct
    piece of work: same reviewer and line (or file, for once-per-file rules) is planned once."""
    planned: dict[tuple[str, ...], SubreviewRequest] = {}
    for finding in sorted(findings, key=lambda f: f.sort_key()):
        for rule in rules.rules:
            limit = min(rule.max_depth, max_depth)
            if depth > limit or not rule.matches(finding, file_flags.get(finding.file, set())):
                continue
            request = SubreviewRequest(reviewer=rule.reviewer, rule_name=rule.name, finding_id=finding.id,
                                       file=finding.file, line=finding.end_line, depth=depth, max_depth=limit,
                                       parent_agent_id=parent_agent_id)
            planned.setdefault(request.key(rule.once_per_file), request)
    return list(planned.values())


def once_per_file(rules: SubreviewRules, request: SubreviewRequest) -> bool:
    """Whether the rule behind ``request`` runs once per file."""
    return any(r.once_per_file for r in rules.rules if r.name == request.rule_name)
