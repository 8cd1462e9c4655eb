"""The findings budget of one reviewer: what an agent keeps when a file makes its analyzer report thousands.

One file can make a tool report without end: 3,000 undefined names, 2,500 undocumented functions, the same
problem once per character of a 900-deep expression. Stored one by one they outgrow what an agent's
record may hold (its step then failed on every redelivery) and drown the report. So a reviewer keeps each
distinct finding once; folds its low and info findings per rule as the report would (nothing is lost:
every place is an occurrence); and of what is left keeps the most severe ``max_findings_per_agent`` as they
are. The rest, medium and worse findings that a report never folds, are folded per file and rule anyway,
and the agent ends stopped by its findings budget with a reason saying so: the run is then partial.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm_tasks.review.aggregate import aggregate, fold
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.findings import Finding


@dataclass(frozen=True, slots=True)
class Capped:
    """A reviewer's findings within its budget, and what was folded to fit."""

    findings: list[Finding]
    kept: int  # findings kept as they are (low/info folds included)
    folded: int  # medium-or-worse findings past the budget, folded into the last findings
    limit: int

    @property
    def cut(self) -> bool:
        return self.folded > 0

    def reason(self) -> str | None:
        """The sentence the agent ends with when findings were folded past its budget (None otherwise)."""
        if not self.cut:
            return None
        folds = len(self.findings) - self.kept
        return (f"findings budget: {self.kept + self.folded:,} findings, the most severe {self.kept:,} kept as "
                f"they are; the other {self.folded:,} are folded by rule into {folds} finding"
                f"{'' if folds == 1 else 's'} listing every place (max_findings_per_agent = {self.limit})")


def cap_findings(findings: list[Finding], config: ReviewConfig) -> Capped:
    """``findings`` within ``config.max_findings_per_agent`` (see the module's docstring)."""
    limit = config.max_findings_per_agent
    first: dict[str, Finding] = {}
    for f in findings:
        first.setdefault(f.id, f)  # the first report of each id wins
    unique = list(first.values())
    if len(unique) <= limit:
        return Capped(unique, len(unique), 0, limit)
    ordered = sorted(aggregate(unique, config), key=Finding.sort_key)
    if len(ordered) <= limit:
        return Capped(ordered, len(ordered), 0, limit)
    kept, rest = ordered[:limit], ordered[limit:]
    groups: dict[tuple[str, str], list[Finding]] = {}  # bounded by the analyzers' rules, not by the file
    for f in rest:
        groups.setdefault((f.file, f.rule), []).append(f)
    folds = [fold(group) for group in groups.values()]
    return Capped([*kept, *folds], len(kept), sum(f.count for f in rest), limit)
