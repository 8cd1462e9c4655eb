"""The report as a Markdown summary a person reads first.

Everything the reviewed repository or a model chose (file names, titles, evidence, notes) goes
through :mod:`swarm_tasks.display`: a name is an inert code span, free text has no markup of its own,
evidence sits in a fence longer than any backtick run it holds, and no control character survives.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from swarm_tasks.display import code_fence, code_span, inert, md_text
from swarm_tasks.outcome import RunStatus
from swarm_tasks.review.enums import FileOrigin, ReviewReason, Severity
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.report import AgentRole, Report, ReviewMode

MAX_RELATED = 5
MAX_OCCURRENCES = 10
MAX_SKIPPED_LISTED = 40
MAX_BELOW_LISTED = 30
MAX_SUPPRESSED_LISTED = 30
MAX_LISTED = 50  # notes, left-out files and unfinished agents listed; then "and N more"


def _link(file: str, line: int, base: str = "") -> str:
    """A link to a line: ``base`` + the path relative to the repository root (``base`` is a forge URL
    such as ``https://github.com/o/r/blob/<sha>/``, or the way from the report's directory to the root)."""
    label = code_span(f"{file}:{line}")
    if file.startswith("/"):
        return label  # outside the repository: no link would work
    return f"[{label}]({base}{quote(file)}#L{line})"


def link_base_for(report: Report, directory: Path | None) -> str:
    """Where links point: the report's ``link_base`` URL when set, else the repository root as seen from
    ``directory`` (where the Markdown file is written), else root-relative (the file sits at the root)."""
    if report.link_base:
        return report.link_base if report.link_base.endswith("/") else report.link_base + "/"
    if directory is None:
        return ""
    rel = os.path.relpath(report.root, directory.resolve())
    return "" if rel == "." else quote(rel) + "/"


def _cell(text: str) -> str:
    return md_text(text)


def _mode_line(report: Report) -> str:
    if report.mode is ReviewMode.DETERMINISTIC:
        return ("**Deterministic analysis** - no model was configured. Findings come from analyzers "
                "(bandit, ruff, radon, Python AST rules and JS/TS rules on a tree-sitter parse) and deterministic "
                "sub-reviewers.")
    models = ", ".join(code_span(m) for m in report.models) or "a model"
    if report.mode is ReviewMode.MODEL:
        return f"**Model review** by {models}, with analyzers as tools."
    return f"**Model and deterministic review**: {models} plus analyzers."


def render_markdown(report: Report, top: int = 25, *, directory: Path | None = None) -> str:
    """The Markdown summary: counts, the findings at or above the report's summary threshold with
    file:line links (relative to ``directory``, where the file will be written, unless the report has a
    link base), what was below it, suppressed or in the baseline, sources, agents, files, cost."""
    base = link_base_for(report, directory)
    name = PurePosixPath(report.root).name or report.root
    flagged = sum(1 for r in report.reviewed if r.reason is ReviewReason.FLAGGED)
    out = [f"# Code review: {md_text(name)}", "", _mode_line(report), "",
           *([" ".join(md_text(t) for t in report.tools), ""] if report.tools else []), *_outcome_line(report)]
    inventoried = max(report.files_inventoried, report.files_scanned)
    out += [f"- Files scanned: {report.files_scanned} of {inventoried}; reviewed: {len(report.reviewed)} "
            f"({flagged} flagged, {len(report.reviewed) - flagged} imported dependencies); "
            f"skipped: {len(report.skipped)}",
            f"- Findings: {len(report.findings)}"]
    inside = Counter(a.role for a in report.agents if a.inside_agent_id)
    if inside:  # a review without models: groups of files, each reviewed whole by one agent
        runs = ", ".join(f"{inside[role]} {role}s" for role in AgentRole if inside[role])
        out.append(f"- Agents run: {len(report.agents) - inside.total()}, with the analyzers run inside them as "
                   f"{runs}")
    else:
        out.append("- Agents run: " + ", ".join(f"{n} {role}s" for role, n in report.agents_by_role().items()))
    if report.usage is not None:
        out.append(f"- Tokens: {report.usage.prompt_tokens + report.usage.completion_tokens:,} "
                   f"({report.usage.prompt_tokens:,} prompt, {report.usage.completion_tokens:,} completion); "
                   f"cost: ${report.usage.cost_usd:.4f}")
    if report.started_at and report.finished_at:
        out.append(f"- Duration: {(report.finished_at - report.started_at).total_seconds():.1f} s")
    out += ["", "## Findings by severity", "", "| Severity | Count |", "| --- | ---: |"]
    out += [f"| {sev.value} | {n} |" for sev, n in report.by_severity().items()]
    out += ["", "## Findings by category", "", "| Category | Count |", "| --- | ---: |"]
    out += [f"| {cat.value} | {n} |" for cat, n in report.by_category().items()]
    sources = report.by_source()
    out += ["", "## Where findings came from", "",
            f"- Analyzers only: {sources['analyzer']}", f"- Models only: {sources['model']}",
            f"- Both: {sources['both']}", ""]
    floor = report.summary_min_severity
    shown = [f for f in report.findings if f.severity.rank >= floor.rank]
    out += _top_findings(shown[:top], len(shown), floor, base, report.run_id)
    out += _not_done(report)
    out += _below_threshold([f for f in report.findings if f.severity.rank < floor.rank], floor, base)
    out += _suppressed(report, base)
    out += _dependencies(report)
    out += _skipped(report)
    out += _agents(report)
    if report.notes:
        out += ["## Notes", "", *_capped([f"- {md_text(n)}" for n in report.notes], len(report.notes), "notes"), ""]
    return "\n".join(out).rstrip() + "\n"


def _capped(lines: list[str], total: int, what: str) -> list[str]:
    shown = lines[:MAX_LISTED]
    return shown + ([f"- ... and {total - len(shown)} more {what}"] if total > len(shown) else [])


def _outcome_line(report: Report) -> list[str]:
    outcome = report.outcome
    if outcome is None:
        return []
    if outcome.status is RunStatus.COMPLETED:
        return ["**Outcome: completed** - every file got its scan and, where flagged, its reviewers.", ""]
    label = {RunStatus.PARTIAL: "PARTIAL review", RunStatus.FAILED: "FAILED review"}.get(
        outcome.status, f"review {outcome.status.value}")
    return [f"> **Outcome: {label}** - the findings below cover only part of the repository. "
            f"{md_text(outcome.reason or '')}", ">", "> See [Work not done](#work-not-done).", ""]


def _not_done(report: Report) -> list[str]:
    outcome = report.outcome
    if outcome is None or (not outcome.left_out_total and not outcome.problems_total and not outcome.refused):
        return []
    out = ["## Work not done", ""]
    if outcome.left_out_total:
        out += [f"Files left out ({outcome.left_out_total}):", ""]
        out += _capped([f"- {code_span(item.split(': ', 1)[0])}: {md_text(item.split(': ', 1)[-1])}"
                        for item in outcome.left_out], outcome.left_out_total, "files")
        out.append("")
    if outcome.problems_total:
        counts = ", ".join(f"{n} {cls}" for cls, n in sorted({**outcome.failed, **outcome.stopped}.items()))
        out += [f"Agents that did not finish ({outcome.problems_total}: {counts}):", ""]
        out += _capped([f"- {p.status} \\[{p.reason_class.value}\\] {p.role} {code_span(p.agent_id)}"
                        f"{f' on {code_span(p.subject)}' if p.subject else ''}: {md_text(p.reason)}"
                        for p in outcome.problems], outcome.problems_total, "agents")
        out.append("")
    if outcome.refused:
        out += [f"Agents never started because the run's agent cap was reached: {outcome.refused}", ""]
    return out


def found_by(f: Finding) -> str:
    """Who found it, by role and analyzer: 'security reviewer (bandit), taint-trace sub-reviewer'."""
    return ", ".join(dict.fromkeys(r.label() for r in f.reporters))


def _top_findings(findings: list[Finding], total: int, floor: Severity, base: str,
                  run_id: str | None = None) -> list[str]:
    scope = "" if floor is Severity.INFO else f", {floor.value} and worse"
    out = [f"## Top findings ({len(findings)} of {total}{scope})", ""]
    if total > len(findings):
        command = f"`swarm report {run_id} --format json`" if run_id else "the JSON report"
        out += [f"The other {total - len(findings)} findings are in report.json and report.sarif beside this file "
                f"({command}).", ""]
    for n, f in enumerate(findings, start=1):
        origin = "analyzer" if f.analyzer_only else "model" if all(
            r.source.value == "model" for r in f.reporters) else "analyzer + model"
        third_party = f.origin is FileOrigin.THIRD_PARTY and f.package
        pkg = f" (third-party package {code_span(f.package or '')})" if third_party else ""
        out.append(f"{n}. **[{f.severity.value.upper()}] {_cell(f.title)}** - "
                   f"{_link(f.file, f.start_line, base)}{pkg}")
        out.append(f"   - Rule {code_span(f.rule)}{f' ({f.cwe})' if f.cwe else ''}, category {f.category.value}, "
                   f"confidence {f.confidence:.2f} ({f.confidence_label}), from {origin}"
                   + (", input reaches it" if f.reachable else ""))
        out.append(f"   - Found by: {md_text(found_by(f))}")
        if f.evidence:
            evidence = inert(f.evidence, multiline=True)
            fence = code_fence(evidence)
            out += [f"   {fence}", *(f"   {line}" for line in evidence.splitlines()), f"   {fence}"]
        if f.recommendation:
            out.append(f"   - Fix: {md_text(f.recommendation)}")
        out += _occurrences(f, base)
        for loc in f.related[:MAX_RELATED]:
            out.append(f"   - Related: {_link(loc.file, loc.start_line, base)} {md_text(loc.message)}")
        if len(f.related) > MAX_RELATED:
            out.append(f"   - ... and {len(f.related) - MAX_RELATED} more related locations")
        out += [f"   - Note: {md_text(note)}" for note in f.notes]
    return [*out, ""]


def _occurrences(f: Finding, base: str) -> list[str]:
    if not f.occurrences:
        return []
    shown = ", ".join(_link(o.file, o.start_line, base) for o in f.occurrences[:MAX_OCCURRENCES])
    more = f" and {len(f.occurrences) - MAX_OCCURRENCES} more (all in report.json and report.sarif)" \
        if len(f.occurrences) > MAX_OCCURRENCES else ""
    return [f"   - {f.count} occurrences; also at {shown}{more}"]


def _below_threshold(findings: list[Finding], floor: Severity, base: str) -> list[str]:
    if not findings:
        return []
    counts = Counter(f.severity.value for f in findings)
    occurrences = sum(f.count for f in findings)
    out = [f"## Below {floor.value} ({len(findings)} findings, {occurrences} occurrences)", "",
           ", ".join(f"{sev}: {n}" for sev, n in counts.items()) + " - in report.json and report.sarif; "
           "`--min-severity` lists them here.", ""]
    for f in findings[:MAX_BELOW_LISTED]:
        out.append(f"- [{f.severity.value}] {code_span(f.rule)} {_cell(f.title)} - {_link(f.file, f.start_line, base)}")
    if len(findings) > MAX_BELOW_LISTED:
        out.append(f"- ... and {len(findings) - MAX_BELOW_LISTED} more")
    return [*out, ""]


def _suppressed(report: Report, base: str) -> list[str]:
    out: list[str] = []
    if report.baseline:
        out += [f"Baseline {code_span(report.baseline)}: {report.baseline_known} known finding(s) left out; "
                "only new findings are listed.", ""]
    if report.since:
        out += [f"Only files changed since {code_span(report.since)} were reviewed (their imports were followed).", ""]
    if not report.suppressed:
        return out
    out += [f"## Suppressed in the code ({len(report.suppressed)})", ""]
    for s in report.suppressed[:MAX_SUPPRESSED_LISTED]:
        out.append(f"- [{s.severity.value}] {code_span(s.rule)} {_cell(s.title)} - {_link(s.file, s.start_line, base)} "
                   f"({code_span(s.marker)} at line {s.marker_line}: {_cell(s.reason)})")
    if len(report.suppressed) > MAX_SUPPRESSED_LISTED:
        out.append(f"- ... and {len(report.suppressed) - MAX_SUPPRESSED_LISTED} more")
    return [*out, ""]


def _dependencies(report: Report) -> list[str]:
    deps = [r for r in report.reviewed if r.reason is ReviewReason.IMPORTED]
    listed = {(s.path, s.reason) for s in report.skipped}
    refused = [s for s in report.dependencies.skipped if (s.path, s.reason) not in listed]
    if not deps and not report.dependencies.unresolved and not refused:
        return []
    out = ["## Imported code reviewed", ""]
    for dep in deps:
        who = f"package {code_span(dep.package)}" if dep.package else "repository module"
        out.append(f"- {code_span(dep.path)} ({who}, depth {dep.depth}) via "
                   f"{' -> '.join(code_span(c) for c in dep.chain)}")
    missing = sorted({u.module for u in report.dependencies.unresolved})
    if missing:
        out.append(f"- Not installed or not found (not reviewed): {', '.join(code_span(m) for m in missing)}")
    for skip in refused[:MAX_SKIPPED_LISTED]:
        out.append(f"- Not followed: {code_span(skip.path)} - {skip.reason.value}"
                   + (f" ({md_text(skip.detail)})" if skip.detail else ""))
    return [*out, ""]


def _skipped(report: Report) -> list[str]:
    if not report.skipped:
        return []
    reasons = Counter(s.reason.value for s in report.skipped)
    out = ["## Skipped", "", ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items())), ""]
    for skip in report.skipped[:MAX_SKIPPED_LISTED]:
        out.append(f"- {code_span(skip.path + ('/' if skip.is_dir else ''))} - {skip.reason.value}"
                   + (f" ({md_text(skip.detail)})" if skip.detail else ""))
    if len(report.skipped) > MAX_SKIPPED_LISTED:
        out.append(f"- ... and {len(report.skipped) - MAX_SKIPPED_LISTED} more")
    return [*out, ""]


def _agents(report: Report) -> list[str]:
    kinds = Counter((a.role.value, a.kind) for a in report.agents)
    done = Counter((a.role.value, a.kind) for a in report.agents if a.status == "done")
    out = ["## Agents", "", "| Role | Kind | Count | Finished | Did not finish |", "| --- | --- | ---: | ---: | ---: |"]
    out += [f"| {role} | {md_text(kind)} | {n} | {done[(role, kind)]} | {n - done[(role, kind)]} |"
            for (role, kind), n in sorted(kinds.items())]
    return [*out, ""]
