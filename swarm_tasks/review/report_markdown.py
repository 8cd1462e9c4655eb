"""The report as a Markdown summary a person reads first."""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath
from urllib.parse import quote

from swarm_tasks.review.enums import FileOrigin, ReviewReason
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.report import Report, ReviewMode

MAX_RELATED = 5
MAX_SKIPPED_LISTED = 40


def _link(file: str, line: int) -> str:
    label = f"{file}:{line}"
    if file.startswith("/"):
        return f"`{label}`"  # outside the repository: no link would work
    return f"[`{label}`]({quote(file)}#L{line})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _mode_line(report: Report) -> str:
    if report.mode is ReviewMode.DETERMINISTIC:
        return ("**Deterministic analysis** - no model was configured. Findings come from analyzers "
                "(bandit, ruff, radon, AST and JS heuristics) and deterministic sub-reviewers.")
    models = ", ".join(f"`{m}`" for m in report.models) or "a model"
    if report.mode is ReviewMode.MODEL:
        return f"**Model review** by {models}, with analyzers as tools."
    return f"**Model and deterministic review**: {models} plus analyzers."


def render_markdown(report: Report, top: int = 25) -> str:
    """The Markdown summary: counts, top findings with file:line links, sources, agents, files, cost."""
    name = PurePosixPath(report.root).name or report.root
    flagged = sum(1 for r in report.reviewed if r.reason is ReviewReason.FLAGGED)
    out = [f"# Code review: {name}", "", _mode_line(report), ""]
    out += [f"- Files scanned: {report.files_scanned}; reviewed: {len(report.reviewed)} ({flagged} flagged, "
            f"{len(report.reviewed) - flagged} imported dependencies); skipped: {len(report.skipped)}",
            f"- Findings: {len(report.findings)}"]
    roles = report.agents_by_role()
    out.append("- Agents run: " + ", ".join(f"{count} {role}s" for role, count in roles.items()))
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
    out += _top_findings(report.findings[:top], len(report.findings))
    out += _dependencies(report)
    out += _skipped(report)
    out += _agents(report)
    if report.notes:
        out += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(out).rstrip() + "\n"


def _top_findings(findings: list[Finding], total: int) -> list[str]:
    out = [f"## Top findings ({len(findings)} of {total})", ""]
    for n, f in enumerate(findings, start=1):
        tools = sorted({r.tool for r in f.reporters})
        agents = sorted({r.agent_id for r in f.reporters if r.agent_id})
        origin = "analyzer" if f.analyzer_only else "model" if all(
            r.source.value == "model" for r in f.reporters) else "analyzer + model"
        pkg = f" (third-party package `{f.package}`)" if f.origin is FileOrigin.THIRD_PARTY and f.package else ""
        out.append(f"{n}. **[{f.severity.value.upper()}] {_cell(f.title)}** - {_link(f.file, f.start_line)}{pkg}")
        out.append(f"   - Rule `{f.rule}`{f' ({f.cwe})' if f.cwe else ''}, category {f.category.value}, "
                   f"confidence {f.confidence:.2f} ({f.confidence_label}), from {origin}: {', '.join(tools)}")
        if agents:
            out.append(f"   - Reported by: {', '.join(f'`{a}`' for a in agents[:6])}"
                       + (f" and {len(agents) - 6} more" if len(agents) > 6 else ""))
        if f.evidence:
            fence = "````" if "```" in f.evidence else "```"
            out += [f"   {fence}", *(f"   {line}" for line in f.evidence.splitlines()), f"   {fence}"]
        if f.recommendation:
            out.append(f"   - Fix: {f.recommendation}")
        for loc in f.related[:MAX_RELATED]:
            out.append(f"   - Related: {_link(loc.file, loc.start_line)} {loc.message}")
        if len(f.related) > MAX_RELATED:
            out.append(f"   - ... and {len(f.related) - MAX_RELATED} more related locations")
        out += [f"   - Note: {note}" for note in f.notes]
    return [*out, ""]


def _dependencies(report: Report) -> list[str]:
    deps = [r for r in report.reviewed if r.reason is ReviewReason.IMPORTED]
    if not deps and not report.dependencies.unresolved:
        return []
    out = ["## Imported code reviewed", ""]
    for dep in deps:
        who = f"package `{dep.package}`" if dep.package else "repository module"
        out.append(f"- `{dep.path}` ({who}, depth {dep.depth}) via {' -> '.join(f'`{c}`' for c in dep.chain)}")
    missing = sorted({u.module for u in report.dependencies.unresolved})
    if missing:
        out.append(f"- Not installed or not found (not reviewed): {', '.join(f'`{m}`' for m in missing)}")
    return [*out, ""]


def _skipped(report: Report) -> list[str]:
    if not report.skipped:
        return []
    reasons = Counter(s.reason.value for s in report.skipped)
    out = ["## Skipped", "", ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items())), ""]
    for skip in report.skipped[:MAX_SKIPPED_LISTED]:
        out.append(f"- `{skip.path}{'/' if skip.is_dir else ''}` - {skip.reason.value}"
                   + (f" ({skip.detail})" if skip.detail else ""))
    if len(report.skipped) > MAX_SKIPPED_LISTED:
        out.append(f"- ... and {len(report.skipped) - MAX_SKIPPED_LISTED} more")
    return [*out, ""]


def _agents(report: Report) -> list[str]:
    kinds = Counter((a.role.value, a.kind) for a in report.agents)
    out = ["## Agents", "", "| Role | Kind | Count |", "| --- | --- | ---: |"]
    out += [f"| {role} | {kind} | {n} |" for (role, kind), n in sorted(kinds.items())]
    return [*out, ""]
