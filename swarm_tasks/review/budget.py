"""The findings budget of one reviewer: what an agent keeps when a file makes its analyzer report thousands.

One file can make a tool report without end: 3,000 undefined names, 2,500 undocumented functions, the same
problem once per character of a 900-deep expression. Stored one by one they outgrow what an agent's
record may hold (the step then fails on every redelivery) and drown the report. So an agent keeps each
distinct finding once, the most severe ``max_findings_per_agent`` of them as they are, and the rest
summarised: one finding per file and rule with the count, the lines and the worst severity. The agent then
ends stopped by its findings budget, with a reason saying what was cut, so the run says it is partial.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm_tasks.review.findings import Finding, Location

MAX_SUMMARIES = 20  # summary findings one agent adds at most (the rest fold into the last one)
MAX_LOCATIONS = 50  # lines a summary lists as related locations


@dataclass(frozen=True, slots=True)
class Capped:
    """An agent's findings within its budget, and what was cut to fit."""

    findings: list[Finding]
    found: int  # distinct findings before the cap
    kept: int  # of those, kept as they are
    limit: int

    @property
    def cut(self) -> bool:
        return self.kept < self.found

    def reason(self) -> str | None:
        """The sentence the agent ends with when findings were cut (None when none were)."""
        if not self.cut:
            return None
        summaries = len(self.findings) - self.kept
        return (f"findings budget: kept {self.kept:,} of {self.found:,} findings; the other "
                f"{self.found - self.kept:,} are summarised by rule in {summaries} finding"
                f"{'' if summaries == 1 else 's'} (max_findings_per_agent = {self.limit})")


def cap_findings(findings: list[Finding], limit: int) -> Capped:
    """Each distinct finding once (same id: same file, lines and rule); past ``limit``, the most severe
    kept and the rest summarised per file and rule."""
    first: dict[str, Finding] = {}
    for f in findings:
        first.setdefault(f.id, f)  # the first report of each id wins
    unique = list(first.values())
    if len(unique) <= limit:
        return Capped(unique, len(unique), len(unique), limit)
    ordered = sorted(unique, key=Finding.sort_key)
    kept, rest = ordered[:limit], ordered[limit:]
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in rest:
        groups.setdefault((finding.file, finding.rule), []).append(finding)
    batches = list(groups.values())
    if len(batches) > MAX_SUMMARIES:
        batches = [*batches[:MAX_SUMMARIES - 1], [f for b in batches[MAX_SUMMARIES - 1:] for f in b]]
    return Capped([*kept, *(_summary(b) for b in batches)], len(unique), len(kept), limit)


def _summary(group: list[Finding]) -> Finding:
    """One finding standing for ``group`` (most severe first): its count, rules and lines."""
    first = group[0]
    rules = sorted({f.rule for f in group})
    lines = sorted({f.start_line for f in group})
    shown = ", ".join(str(n) for n in lines[:MAX_LOCATIONS])
    more = f" and {len(lines) - MAX_LOCATIONS:,} more" if len(lines) > MAX_LOCATIONS else ""
    what = first.title if len(rules) == 1 else f"rules {', '.join(rules[:10])}"
    return Finding.model_validate({
        **first.model_dump(exclude={"id", "reporters"}),
        "title": f"{len(group):,} findings like this one in {first.file} ({what})",
        "notes": [f"summarised to keep the reviewer within its findings budget; lines: {shown}{more}"],
        "related": [Location(file=f.file, start_line=f.start_line, end_line=f.end_line, message=f.title[:120])
                    for f in group[1:MAX_LOCATIONS]]})
