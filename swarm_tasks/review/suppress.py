"""Suppressions and baselines: which findings a user already decided about, and how that shows.

Inline, on the finding's line or alone on the line above it::

    os.system(cmd)  # swarm: ignore[B605] the command is a constant built at import
    // swarm: ignore[JS-EVAL, CWE-95] sandboxed expression evaluator, reviewed 2026-03

``RULE`` is a rule id, a CWE or an fnmatch glob (``D1*``), several separated by commas, matched against
every rule that reported the finding. A marker without a reason is not honoured (the finding gets a note
saying so). The reviewed code's own ``# noqa`` (quality and documentation findings) and ``# nosec``
(security findings), bare or with codes, are honoured only with ``ReviewConfig.honor_noqa``
(``--honor-noqa``): by default the code under review does not get to silence its reviewer. Every
suppressed finding is listed in the report with its marker and reason, never dropped silently.

A baseline is an earlier report: findings whose fingerprint it holds are left out and counted
(``Report.baseline_known``). Fingerprints hash the file, the kind of problem and the text of the line,
so a finding keeps its fingerprint when lines above it move.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections import defaultdict

from pydantic import Field

from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.enums import Category, Severity
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.records import Record
from swarm_tasks.review.severity import kind_of

MARKER = re.compile(r"(?:#|//|/\*)\s*swarm:\s*ignore\[(?P<rules>[^\]]*)\]\s*(?P<reason>[^\n]*?)\s*(?:\*/)?\s*$")
NOQA = re.compile(r"#\s*noqa\b(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
NOSEC = re.compile(r"#\s*nosec\b(?:[:\s]+(?P<codes>B[0-9]{3}(?:[\s,]+B[0-9]{3})*))?", re.IGNORECASE)
_COMMENT_ONLY = re.compile(r"^\s*(?:#|//|/\*)")


class SuppressedFinding(Record):
    """A finding a marker in the code suppressed, and why."""

    file: str
    start_line: int = Field(ge=1)
    rule: str
    severity: Severity
    title: str
    marker: str = Field(description="swarm, noqa or nosec")
    reason: str = ""
    marker_line: int = Field(ge=1)
    fingerprint: str = ""


def fingerprint(finding: Finding, line_text: str, nth: int = 0) -> str:
    """A stable identity for ``finding``: its file, kind of problem and line text (not its line number)."""
    kind = kind_of(finding)
    what = kind.name if kind is not None else finding.rule
    text = " ".join(line_text.split()) or " ".join(finding.evidence.split()[:40])
    digest = hashlib.sha256(f"{finding.file}\0{what}\0{text}\0{nth}".encode("utf-8", "backslashreplace"))
    return digest.hexdigest()[:20]


def with_fingerprints(findings: list[Finding], index: CodeIndex) -> list[Finding]:
    """Every finding with its fingerprint (identical lines in one file are told apart by their order)."""
    seen: dict[tuple[str, str, str], int] = defaultdict(int)
    out = []
    for f in sorted(findings, key=lambda f: (f.file, f.start_line, f.rule, f.id)):
        lines = index.lines(f.file)
        text = lines[f.start_line - 1] if 0 < f.start_line <= len(lines) else ""
        key = (f.file, f.rule, " ".join(text.split()))
        out.append(f.model_copy(update={"fingerprint": fingerprint(f, text, seen[key])}))
        seen[key] += 1
    return out


def _matches(patterns: list[str], finding: Finding) -> bool:
    names = {r.rule.lower() for r in finding.reporters} | {finding.rule.lower()}
    if finding.cwe:
        names.add(finding.cwe.lower())
    return any(fnmatch.fnmatchcase(name, p.lower()) for p in patterns for name in names)


def _marker_lines(finding: Finding, lines: list[str]) -> list[int]:
    """The finding's own lines, and the line above it when that line is only a comment."""
    last = min(finding.end_line, finding.start_line + 20, len(lines))
    candidates = list(range(finding.start_line, last + 1))
    above = finding.start_line - 1
    if 0 < above <= len(lines) and _COMMENT_ONLY.match(lines[above - 1]):
        candidates.insert(0, above)
    return candidates


def _codes(text: str | None) -> list[str]:
    return [c for c in re.split(r"[\s,]+", text or "") if c]


def suppression(finding: Finding, lines: list[str], honor_noqa: bool) -> tuple[SuppressedFinding | None, str | None]:
    """(what suppressed ``finding``, or None; a note when a marker was present but not honoured)."""
    note = None
    for number in _marker_lines(finding, lines):
        text = lines[number - 1]
        found = MARKER.search(text)
        if found is not None:
            patterns = _codes(found.group("rules"))
            if patterns and _matches(patterns, finding):
                reason = found.group("reason").strip()
                if not reason:
                    note = f"swarm: ignore at line {number} not honoured: it gives no reason"
                    continue
                return _suppressed(finding, "swarm", reason, number), None
        if not honor_noqa:
            continue
        nosec, noqa = NOSEC.search(text), NOQA.search(text)
        if finding.category is Category.SECURITY and nosec is not None:
            codes = _codes(nosec.group("codes"))
            if not codes or _matches(codes, finding):
                return _suppressed(finding, "nosec", "# nosec in the code (honoured by --honor-noqa)", number), None
        if finding.category is not Category.SECURITY and noqa is not None:
            codes = _codes(noqa.group("codes"))
            if not codes or _matches(codes, finding):
                return _suppressed(finding, "noqa", "# noqa in the code (honoured by --honor-noqa)", number), None
    return None, note


def _suppressed(finding: Finding, marker: str, reason: str, line: int) -> SuppressedFinding:
    return SuppressedFinding(file=finding.file, start_line=finding.start_line, rule=finding.rule,
                             severity=finding.severity, title=finding.title[:200], marker=marker, reason=reason[:300],
                             marker_line=line, fingerprint=finding.fingerprint)


def apply_suppressions(findings: list[Finding], index: CodeIndex,
                       honor_noqa: bool) -> tuple[list[Finding], list[SuppressedFinding]]:
    """(findings kept, findings suppressed)."""
    kept: list[Finding] = []
    suppressed: list[SuppressedFinding] = []
    for finding in findings:
        hit, note = suppression(finding, index.lines(finding.file), honor_noqa)
        if hit is not None:
            suppressed.append(hit)
        elif note is not None:
            kept.append(finding.model_copy(update={"notes": [*finding.notes, note]}))
        else:
            kept.append(finding)
    return kept, suppressed


def without_baseline(findings: list[Finding], known: frozenset[str]) -> tuple[list[Finding], int]:
    """(findings not in the baseline, how many were)."""
    if not known:
        return findings, 0
    kept = [f for f in findings if f.fingerprint not in known]
    return kept, len(findings) - len(kept)
