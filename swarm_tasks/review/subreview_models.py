"""What a sub-reviewer returns, and the small helpers every sub-reviewer uses to update a finding."""

from __future__ import annotations

from pydantic import Field

from swarm_tasks.review.enums import FindingSource
from swarm_tasks.review.findings import Finding, Location, Reporter
from swarm_tasks.review.records import Record
from swarm_tasks.review.severity import calibrate
from swarm_tasks.review.subreview_rules import SubreviewRequest


class SubreviewOutcome(Record):
    """A sub-reviewer's result: the finding it examined (updated), new findings, deeper work to do."""

    request: SubreviewRequest
    finding: Finding
    new_findings: list[Finding] = Field(default_factory=list)
    follow_ups: list[SubreviewRequest] = Field(default_factory=list)
    summary: str = ""


class FindingUpdate:
    """Accumulates what a sub-reviewer learned about one finding, then applies it once."""

    def __init__(self, finding: Finding, request: SubreviewRequest) -> None:
        self.finding = finding
        self.request = request
        self.related: list[Location] = []
        self.notes: list[str] = []
        self.confidence = finding.confidence
        self.reachable = finding.reachable

    def relate(self, file: str, line: int, message: str) -> None:
        """Add a related location (deduplicated on apply)."""
        self.related.append(Location(file=file, start_line=max(1, line), end_line=max(1, line), message=message))

    def confirm(self, confidence: float = 0.95) -> None:
        """Evidence that the problem is real and that untrusted input reaches it."""
        self.reachable = True
        self.confidence = max(self.confidence, confidence)

    def corroborate(self, confidence: float) -> None:
        """Evidence that the problem is real (not about reachability)."""
        self.confidence = max(self.confidence, confidence)

    def doubt(self, factor: float) -> None:
        """Evidence that the problem may not be exploitable."""
        self.confidence = round(self.confidence * factor, 3)

    def apply(self) -> Finding:
        """The updated finding, crediting the sub-reviewer as a reporter."""
        old = self.finding
        seen = {(r.file, r.start_line, r.message) for r in old.related}
        related = list(old.related)
        for loc in self.related:
            if (loc.file, loc.start_line, loc.message) not in seen:
                seen.add((loc.file, loc.start_line, loc.message))
                related.append(loc)
        updated = calibrate(old.model_copy(update={"reachable": self.reachable}))
        reporter = Reporter(source=FindingSource.ANALYZER, tool=str(self.request.reviewer),
                            agent_id=self.request.agent_id, rule=old.rule, severity=updated.severity,
                            confidence=self.confidence)
        return updated.model_copy(update={
            "related": related, "notes": [*old.notes, *self.notes], "confidence": self.confidence,
            "reporters": [*updated.reporters, reporter]})
