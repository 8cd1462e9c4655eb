"""The whole deterministic review, in process and serially: the reference result the swarm must match.

inventory -> quick scan of every file -> imports followed from flagged files -> four reviewers per
reviewed file -> sub-reviewers for high findings (breadth first, bounded depth) -> dependency findings
-> merge -> :class:`Report`. Agent ids are deterministic, so two runs give the same report.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.analyzers.python_quality import prepare_batch
from swarm_tasks.review.budget import cap_findings
from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.dependencies import DependencyGraph, follow_imports
from swarm_tasks.review.enums import Category, FileOrigin, ReviewerKind, ReviewReason, ScanFlag, Severity
from swarm_tasks.review.findings import Finding, Location
from swarm_tasks.review.imports import ImportResolver
from swarm_tasks.review.inventory import build_inventory
from swarm_tasks.review.merge import merge_findings
from swarm_tasks.review.report import AgentRole, AgentRun, Report, ReviewedFile, ReviewMode
from swarm_tasks.review.results import refine, report_settings
from swarm_tasks.review.scan import ScanResult, quick_scan
from swarm_tasks.review.source import SourceFile
from swarm_tasks.review.subreview_rules import (
    SubreviewRequest,
    SubreviewRules,
    load_subreview_rules,
    once_per_file,
    plan_subreviews,
)
from swarm_tasks.review.subreviewers import run_subreviewer


def reviewer_agent_id(kind: ReviewerKind, path: str) -> str:
    """The id of the ``kind`` reviewer of ``path``."""
    return f"reviewer:{kind}:{path}"


def review_locally(root: Path | str, config: ReviewConfig | None = None, run_id: str | None = None) -> Report:
    """Review ``root`` with analyzers and deterministic sub-reviewers; :class:`ReviewError` for a bad root."""
    config = config or ReviewConfig()
    started = datetime.now(UTC)
    inventory = build_inventory(root, config)
    base = Path(inventory.root)
    rules = load_subreview_rules(config.subreview_rules_path)
    agents: list[AgentRun] = []
    scans: dict[str, ScanResult] = {}
    for file in inventory.to_scan():
        scans[file.path] = scan = quick_scan(base, file, config)
        agents.append(AgentRun(agent_id=f"scanner:{file.path}", role=AgentRole.SCANNER, kind="scan", file=file.path,
                               summary=f"risk {scan.risk}, flags {', '.join(scan.flags) or 'none'}"))
    flagged = [f for f in inventory.to_scan() if scans[f.path].flagged]
    resolver = ImportResolver(base, config, inventory.third_party)
    graph, dep_scans = follow_imports(base, config, resolver, [(f, scans[f.path].imports) for f in flagged],
                                      inventory.by_path())
    scans.update({s.path: s for s in dep_scans})
    reviewed = _reviewed_files(flagged, graph, scans)
    to_review = [*flagged, *(d.file for d in graph.files)]

    findings: list[Finding] = []
    prepare_batch(base, inventory.to_scan(), config)
    for file in to_review:
        for kind in ReviewerKind:
            agent_id = reviewer_agent_id(kind, file.path)
            found = cap_findings(run_reviewer(kind, base, file, config, agent_id), config).findings
            agents.append(AgentRun(agent_id=agent_id, role=AgentRole.REVIEWER, kind=kind.value, file=file.path,
                                   parent_agent_id=f"scanner:{file.path}", findings=len(found)))
            findings.extend(found)

    index = CodeIndex(base, [*inventory.files, *(d.file for d in graph.files)])
    findings = _run_subreviews(merge_findings(findings), rules, scans, index, config, agents)
    findings.extend(dependency_findings(findings, graph, index))
    refined = refine(findings, index, config, agents)
    return Report(root=str(base), run_id=run_id, mode=ReviewMode.DETERMINISTIC, started_at=started,
                  finished_at=datetime.now(UTC), files_inventoried=len(inventory.to_scan()),
                  files_scanned=len(inventory.to_scan()), findings=refined.findings, reviewed=reviewed,
                  skipped=[*inventory.skipped, *graph.skipped], dependencies=graph,
                  agents=agents, **report_settings(config, refined))


def _reviewed_files(flagged: list[SourceFile], graph: DependencyGraph,
                    scans: dict[str, ScanResult]) -> list[ReviewedFile]:
    out = [ReviewedFile(path=f.path, language=f.language, origin=f.origin, package=f.package,
                        reason=ReviewReason.FLAGGED, risk=scans[f.path].risk, flags=scans[f.path].flags)
           for f in flagged]
    for dep in graph.files:
        scan = scans[dep.file.path]
        out.append(ReviewedFile(path=dep.file.path, language=dep.file.language, origin=dep.file.origin,
                                package=dep.file.package, reason=ReviewReason.IMPORTED, risk=scan.risk,
                                flags=scan.flags, depth=dep.depth, chain=dep.chain))
    return out


def _run_subreviews(findings: list[Finding], rules: SubreviewRules, scans: dict[str, ScanResult], index: CodeIndex,
                    config: ReviewConfig, agents: list[AgentRun]) -> list[Finding]:
    """Breadth-first sub-reviews; each distinct piece of work once. Returns the updated findings."""
    by_id = {f.id: f for f in findings}
    flags: dict[str, set[ScanFlag]] = {path: set(scan.flags) for path, scan in scans.items()}
    queue: deque[SubreviewRequest] = deque()
    for finding in findings:  # the primary reporter (a reviewer) is the sub-reviewer's parent
        queue.extend(plan_subreviews([finding], rules, flags, 1, config.subreview_max_depth, finding.agent_id))
    done: set[tuple[str, ...]] = set()
    while queue:
        request = queue.popleft()
        key = request.key(once_per_file(rules, request))
        target = by_id.get(request.finding_id)
        if key in done or target is None:
            continue
        done.add(key)
        outcome = run_subreviewer(request, target, index)
        outcome = outcome.model_copy(update={
            "new_findings": cap_findings(outcome.new_findings, config).findings})
        by_id[outcome.finding.id] = outcome.finding
        for new in outcome.new_findings:
            by_id.setdefault(new.id, new)
        agents.append(AgentRun(agent_id=request.agent_id, role=AgentRole.SUBREVIEWER, kind=request.reviewer.value,
                               file=request.file, parent_agent_id=request.parent_agent_id, depth=request.depth,
                               findings=len(outcome.new_findings), summary=outcome.summary))
        queue.extend(outcome.follow_ups)
        queue.extend(plan_subreviews(outcome.new_findings, rules, flags, request.depth + 1,
                                     config.subreview_max_depth, request.agent_id))
    return list(by_id.values())


def dependency_findings(findings: list[Finding], graph: DependencyGraph, index: CodeIndex) -> list[Finding]:
    """One finding at each repository import of a third-party package that has high or critical findings,
    pointing at them: the repository owner sees the risk where they took it on."""
    serious: dict[str, list[Finding]] = {}
    for f in findings:
        if f.origin is FileOrigin.THIRD_PARTY and f.package and f.severity.rank >= Severity.HIGH.rank:
            serious.setdefault(f.package, []).append(f)
    packages = {d.file.path: d.file.package for d in graph.files if d.file.package}
    out: dict[tuple[str, int, str], Finding] = {}
    for edge in graph.edges:
        package = packages.get(edge.target)
        importer = index.files.get(edge.importer)
        if package not in serious or importer is None or importer.origin is not FileOrigin.REPOSITORY:
            continue
        problems = sorted(serious[package], key=lambda f: f.sort_key())
        worst = problems[0]
        lines = index.lines(importer.path)
        out.setdefault((importer.path, edge.line, package), Finding(
            file=importer.path, start_line=edge.line, end_line=edge.line, severity=worst.severity,
            category=Category.DEPENDENCY, rule="DEPENDENCY-RISK", confidence=worst.confidence,
            title=f"Imports third-party package {package}, which has {len(problems)} high/critical finding(s): "
                  f"{worst.title}",
            evidence=lines[edge.line - 1].rstrip() if edge.line <= len(lines) else "",
            recommendation="Upgrade or replace the package, or avoid passing untrusted data to the affected code.",
            tool="imports", agent_id=f"dependencies:{package}",
            related=[Location(file=p.file, start_line=p.start_line, end_line=p.end_line, message=p.title[:120])
                     for p in problems[:10]]))
    return list(out.values())
