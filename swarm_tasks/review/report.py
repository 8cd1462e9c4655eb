"""The merged review report: findings, what was reviewed and skipped, which agents ran, what it cost."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from swarm_tasks.outcome import ReasonClass, RunOutcome
from swarm_tasks.review.dependencies import DependencyGraph
from swarm_tasks.review.enums import Category, FileOrigin, FindingSource, ReviewReason, RiskLevel, ScanFlag, Severity
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.languages import Language
from swarm_tasks.review.records import Record
from swarm_tasks.review.source import SkippedPath
from swarm_tasks.review.suppress import SuppressedFinding


class ReviewMode(StrEnum):
    """Who reviewed: analyzers only ("deterministic analysis"), models, or both."""

    DETERMINISTIC = "deterministic"
    MODEL = "model"
    MIXED = "mixed"


class AgentRole(StrEnum):
    """The kinds of agent a review swarm runs."""

    SCANNER = "scanner"
    REVIEWER = "reviewer"
    SUBREVIEWER = "subreviewer"


class AgentRun(Record):
    """One agent of the review and what it did."""

    agent_id: str
    role: AgentRole
    kind: str = Field(description="scan, a reviewer kind, or a sub-reviewer kind.")
    file: str
    source: FindingSource = FindingSource.ANALYZER
    model: str | None = None
    parent_agent_id: str = ""
    depth: int = Field(default=0, ge=0)
    findings: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    summary: str = ""
    status: str = Field(default="done", description="How it ended: done, failed, stopped, cancelled.")
    reason_class: ReasonClass | None = Field(default=None, description="Why it did not finish (auth, loop...).")
    reason: str = Field(default="", description="Why it did not finish, as its record says.")
    inside_agent_id: str = Field(default="", description="The agent this ran inside, for the analyzers' runs of "
                                 "a review without models (a group of files is reviewed whole by one agent); "
                                 "empty for an agent of its own.")


class ReviewedFile(Record):
    """A file that got reviewers, and why."""

    path: str
    language: Language
    origin: FileOrigin
    package: str | None = None
    reason: ReviewReason
    risk: RiskLevel
    flags: list[ScanFlag] = Field(default_factory=list)
    depth: int = Field(default=0, ge=0, description="Import hops from a flagged file (0: flagged itself).")
    chain: list[str] = Field(default_factory=list, description="Importers, from the flagged file down.")


class Usage(Record):
    """Model tokens and cost of the whole review (zero in deterministic mode)."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)


class Report(Record):
    """Everything one review produced."""

    root: str
    run_id: str | None = None
    mode: ReviewMode = ReviewMode.DETERMINISTIC
    models: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    files_inventoried: int = Field(default=0, ge=0, description="Reviewable files the inventory listed.")
    files_scanned: int = Field(default=0, ge=0, description="Of which got their quick scan.")
    outcome: RunOutcome | None = Field(default=None, description="How the review ended and what it left out.")
    findings: list[Finding] = Field(default_factory=list)
    reviewed: list[ReviewedFile] = Field(default_factory=list)
    skipped: list[SkippedPath] = Field(default_factory=list)
    dependencies: DependencyGraph = Field(default_factory=DependencyGraph)
    agents: list[AgentRun] = Field(default_factory=list)
    usage: Usage | None = None
    notes: list[str] = Field(default_factory=list)
    suppressed: list[SuppressedFinding] = Field(default_factory=list, description="Findings markers in the code "
                                                "suppressed (# swarm: ignore[...], and # noqa/# nosec if honoured).")
    baseline: str | None = Field(default=None, description="The earlier report findings were compared with.")
    baseline_known: int = Field(default=0, ge=0, description="Findings left out because the baseline has them.")
    since: str | None = Field(default=None, description="Only files changed since this git ref were reviewed.")
    summary_min_severity: Severity = Severity.MEDIUM
    link_base: str | None = None
    tools: list[str] = Field(default_factory=list, description="Which optional analyzers ran, or why not.")

    def by_severity(self) -> dict[Severity, int]:
        """Finding counts for every severity, most severe first (zeros included)."""
        counts = Counter(f.severity for f in self.findings)
        return {s: counts.get(s, 0) for s in Severity}

    def by_category(self) -> dict[Category, int]:
        """Finding counts for every category (zeros included)."""
        counts = Counter(f.category for f in self.findings)
        return {c: counts.get(c, 0) for c in Category}

    def by_source(self) -> dict[str, int]:
        """How many findings analyzers only, models only, or both reported."""
        counts: Counter[str] = Counter()
        for finding in self.findings:
            sources = {r.source for r in finding.reporters}
            counts["both" if len(sources) > 1 else next(iter(sources)).value] += 1
        return {key: counts.get(key, 0) for key in ("analyzer", "model", "both")}

    def agents_by_role(self) -> dict[AgentRole, int]:
        """Agent counts per role."""
        counts = Counter(a.role for a in self.agents)
        return {r: counts.get(r, 0) for r in AgentRole}
