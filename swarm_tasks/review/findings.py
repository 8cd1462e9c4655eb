"""The one finding model every reviewer (analyzer, model or sub-reviewer) produces."""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from pydantic import Field, field_validator, model_validator

from swarm_tasks.review.enums import Category, FileOrigin, FindingSource, Severity
from swarm_tasks.review.records import Record

MODEL_TOOL_PREFIX = "model:"


def finding_id(file: str, start_line: int, end_line: int, rule: str) -> str:
    """Stable id of a finding: the same file, lines and rule give the same id in every run."""
    digest = hashlib.sha256(f"{file}\0{start_line}\0{end_line}\0{rule}".encode("utf-8", "backslashreplace"))
    return digest.hexdigest()[:16]


class Location(Record):
    """Another place in the code that matters to a finding (a caller, the taint source, another use), or
    another occurrence of an aggregated finding (then ``fingerprint`` identifies it for baselines)."""

    file: str
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)
    message: str = ""
    fingerprint: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Location:
        if self.end_line < self.start_line:
            raise ValueError("end_line before start_line")
        return self


class Reporter(Record):
    """One reviewer that reported a finding; a merged finding carries all of them."""

    source: FindingSource
    tool: str
    agent_id: str
    rule: str
    severity: Severity
    confidence: float = Field(ge=0.0, le=1.0)
    role: str = Field(default="", description="Who this is, for people: 'security reviewer', 'taint-trace "
                      "sub-reviewer' (filled in when the report is assembled).")

    def label(self) -> str:
        """The role with its tool: 'security reviewer (bandit)', 'taint-trace sub-reviewer',
        'security reviewer (model anthropic/claude-opus-4-5)'."""
        model = self.tool.startswith(MODEL_TOOL_PREFIX)
        shown = f"model {self.tool.removeprefix(MODEL_TOOL_PREFIX)}" if model else self.tool
        role = self.role or shown
        return role if shown in role or self.tool in role else f"{role} ({shown})"


class Finding(Record):
    """A problem at a place in the code.

    ``confidence`` is a probability in [0, 1] everywhere (analyzers map their own scale onto it, and
    merging combines independent reports as 1 - prod(1 - c)). ``source``/``tool``/``agent_id`` name the
    primary reporter; ``reporters`` lists every reviewer that reported it, the primary included.
    ``reachable``: untrusted input was traced to it (the severity table then gives its higher severity).
    ``count`` > 1: an aggregated finding, the same rule at ``count`` places: this one and ``occurrences``.
    ``fingerprint`` identifies the finding across runs whatever its line numbers (baselines use it).
    """

    id: str = ""
    file: str
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)
    severity: Severity
    category: Category
    rule: str = Field(min_length=1)
    title: str
    evidence: str = ""
    recommendation: str = ""
    confidence: float = Field(ge=0.0, le=1.0)
    source: FindingSource = FindingSource.ANALYZER
    tool: str
    agent_id: str = ""
    cwe: str | None = Field(default=None, pattern=r"^CWE-\d+$")
    related: list[Location] = Field(default_factory=list)
    reporters: list[Reporter] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    origin: FileOrigin = FileOrigin.REPOSITORY
    package: str | None = None
    reachable: bool = False
    count: int = Field(default=1, ge=1)
    occurrences: list[Location] = Field(default_factory=list)
    fingerprint: str = ""

    @model_validator(mode="after")
    def _complete(self) -> Finding:
        self.end_line = max(self.end_line, self.start_line)
        if not self.id:
            self.id = finding_id(self.file, self.start_line, self.end_line, self.rule)
        if not self.reporters:
            self.reporters = [self.reporter()]
        return self

    def reporter(self) -> Reporter:
        """This finding's own reporter entry."""
        return Reporter(source=self.source, tool=self.tool, agent_id=self.agent_id, rule=self.rule,
                        severity=self.severity, confidence=self.confidence)

    def attributed(self, agent_id: str) -> Finding:
        """A copy credited to ``agent_id`` (the swarm stamps the reviewer that ran the analyzer)."""
        reporters = [r.model_copy(update={"agent_id": agent_id}) if r.agent_id == self.agent_id else r
                     for r in self.reporters]
        return self.model_copy(update={"agent_id": agent_id, "reporters": reporters})

    def overlaps(self, other: Finding) -> bool:
        """Same file and intersecting line ranges."""
        return (self.file == other.file and self.start_line <= other.end_line
                and other.start_line <= self.end_line)

    def sort_key(self) -> tuple[int, int, str, int, str, str]:
        """Most severe first, single flaws before aggregated notes, then by place, rule and id: the order
        of every report."""
        return (-self.severity.rank, 0 if self.count == 1 else 1, self.file, self.start_line, self.rule, self.id)

    @property
    def files(self) -> list[str]:
        """Every file this finding occurs in (more than one for a repository-wide aggregate)."""
        return list(dict.fromkeys([self.file, *(o.file for o in self.occurrences)]))

    def places(self) -> list[Location]:
        """Where it occurs: its own location, then every other occurrence of an aggregated finding."""
        return [Location(file=self.file, start_line=self.start_line, end_line=self.end_line,
                         fingerprint=self.fingerprint), *self.occurrences]

    def occurs_at(self, file: str, line: int) -> bool:
        """Whether one of its places is ``file`` with ``line`` in its range."""
        return any(p.file == file and p.start_line <= line <= p.end_line for p in self.places())

    @property
    def confidence_label(self) -> str:
        """high (>= 0.8), medium (>= 0.5) or low."""
        if self.confidence >= 0.8:
            return "high"
        return "medium" if self.confidence >= 0.5 else "low"

    @property
    def analyzer_only(self) -> bool:
        """True when no model reported this finding."""
        return all(r.source is FindingSource.ANALYZER for r in self.reporters)


class FindingDraft(Record):
    """What a model reports through its "report finding" tool: a finding without the bookkeeping.
    Its JSON schema is the tool's parameters; :meth:`to_finding` fills in who found it."""

    file: str = Field(description="Path relative to the repository root, as the tools show it.")
    start_line: int = Field(ge=1)
    end_line: int | None = Field(default=None, ge=1)
    severity: Severity
    category: Category
    rule: str = Field(min_length=1, description="A short kebab-case name of the problem, e.g. sql-injection.")
    title: str = Field(min_length=1)
    evidence: str = Field(default="", description="The offending code lines, quoted.")
    recommendation: str = ""
    confidence: float = Field(ge=0.0, le=1.0)
    cwe: str | None = Field(default=None, pattern=r"^CWE-\d+$")
    related: list[Location] = Field(default_factory=list)

    @field_validator("file")
    @classmethod
    def _inside(cls, file: str) -> str:
        """A model's finding names a file the tools showed it: never one reached by climbing with '..'
        (no tool reads there, and a report must not name it as reviewed)."""
        if "\x00" in file or ".." in PurePosixPath(file).parts:
            raise ValueError(f"{file!r} is not a path inside the repository")
        return file

    def to_finding(self, model: str, agent_id: str, origin: FileOrigin = FileOrigin.REPOSITORY,
                   package: str | None = None) -> Finding:
        """The finding, credited to ``model`` run by ``agent_id``."""
        return Finding(**self.model_dump(exclude={"end_line"}), end_line=self.end_line or self.start_line,
                       source=FindingSource.MODEL, tool=MODEL_TOOL_PREFIX + model, agent_id=agent_id,
                       origin=origin, package=package)


def at_least(severity: Severity, floor: Severity) -> Severity:
    """The higher of two severities."""
    return severity if severity.rank >= floor.rank else floor


def combine_confidence(values: list[float]) -> float:
    """Independent reports of one problem: 1 - prod(1 - c), capped below certainty."""
    if len(values) == 1:
        return values[0]
    miss = 1.0
    for value in values:
        miss *= 1.0 - value
    return round(min(0.99, 1.0 - miss), 3)
