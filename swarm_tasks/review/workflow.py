"""Submitting a review and, once every agent it started has ended, merging one report.

The run goes idle only when every agent (scans, reviewers, sub-reviewers, dependency scans) has
ended, so the report is never written while work is still in flight. The report is stored in Redis
(so ``swarm report`` works from any machine) and written as Markdown, JSON and SARIF 2.1.0.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

from coordination.errors import AlreadyExists, MalformedRecord
from coordination.store import RecordStore, Write
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.services import RunContext, SwarmClient
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.launch import all_agents, start_agents, tally_agents
from swarm_tasks.outcome import RunOutcome, Tally, class_of, decide
from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.coverage import coverage, scan_body
from swarm_tasks.review.dependencies import DependencyFile, DependencyGraph, ImportEdge
from swarm_tasks.review.enums import FindingSource, ReviewReason, RiskLevel, ScanFlag
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.imports import UnresolvedImport
from swarm_tasks.review.inventory import Inventory
from swarm_tasks.review.job import ReviewJob, check_since, job_from_spec, resolve_models, review_root
from swarm_tasks.review.merge import merge_findings
from swarm_tasks.review.model_agents import confirmed_finding, drafts_to_findings
from swarm_tasks.review.pipeline import dependency_findings
from swarm_tasks.review.report import AgentRole, AgentRun, Report, ReviewedFile, ReviewMode, Usage
from swarm_tasks.review.report_json import parse_json, render_json
from swarm_tasks.review.report_markdown import render_markdown
from swarm_tasks.review.report_sarif import render_sarif
from swarm_tasks.review.results import refine, report_settings
from swarm_tasks.review.source import SkippedPath, SourceFile
from swarm_tasks.review.specs import review_specs
from swarm_tasks.review.swarm import BATCH, GROUP, INVENTORY, SCAN, SCANNERS, reviewer_kind
from swarm_tasks.runs import RunRecord, RunStatus
from swarm_tasks.security import Redactor
from swarm_tasks.sources import check_source

log = logging.getLogger("swarm_tasks.review")
MAX_NOTES = 50
# The stored report is a document derived from the run, not coordination state: it may be larger than
# a record, and it is written once per ending (so readers anywhere get the same one).
REPORT_MAX_BYTES = 256 * 1024 * 1024


def submit_review(client: SwarmClient, job: ReviewJob, *, run_id: str | None = None) -> RunRecord:
    """Validate the job, store its specs and start the inventory agent. Nothing is enqueued for a bad job."""
    job = job.model_copy(update={"source": check_source(job.source),
                                 "models": resolve_models(job.models, client.settings)})
    check_since(job)
    title = job.title or f"review {job.source.shown()}"
    root = ChildRequest(INVENTORY, task="List the repository's files.", labels={"phase": "inventory"},
                        key="inventory", global_key=True)
    return start_agents(client, review_specs(job), [root], kind="review", title=title, limits=job.limits,
                        models=job.models, spec_data=job.model_dump(mode="json"), run_id=run_id)


def report_dir(state_dir: Path, run_id: str) -> Path:
    return state_dir / "reports" / run_id


def _reports(client: SwarmClient) -> RecordStore:
    return RecordStore(client.client, max_record_bytes=REPORT_MAX_BYTES)


def _report_key(client: SwarmClient, run_id: str) -> str:
    return client.run(run_id).state.keys.record("report", "json")


def load_report(client: SwarmClient, run_id: str) -> Report | None:
    """The merged report of a finished review, from Redis."""
    key = _report_key(client, run_id)
    try:
        record = _reports(client).get(key)
    except MalformedRecord:  # stored by an earlier version as a plain value (a state directory kept since)
        blob = client.client.get(key)
        return None if blob is None else parse_json(zlib.decompress(blob))
    return None if record is None else parse_json(zlib.decompress(record.data))


def store_report(client: SwarmClient, run_id: str, report: Report, *, replace: bool) -> None:
    """Store the report; without ``replace`` the first stored one stays (readers racing to store a
    cancelled review's report all end up reading the same one)."""
    blob = zlib.compress(render_json(report, None).encode())
    key = _report_key(client, run_id)
    if replace:
        _reports(client).update(key, lambda _current: Write(blob))
        return
    with contextlib.suppress(AlreadyExists):
        _reports(client).create(key, blob)


def unfinished_report(services: SwarmClient, run: RunRecord) -> Report:
    """The report of a review cancelled before it wrote one: what its agents found until then, marked
    partial (or failed, if nothing was scanned) with why. Stored once every agent has ended, so every later
    reader gets the same report; built afresh while some still end their last step."""
    ctx = services.run(run.id)
    job = job_from_spec(run.spec)
    root = review_root(job, services.settings.state_dir, run.id)
    report = redacted(assemble_report(ctx, job, root, run), Redactor.from_settings(services.settings))
    decided = report.outcome or decide(Tally(), useful=True)
    status = RunStatus.FAILED if decided.status is RunStatus.FAILED else RunStatus.PARTIAL
    why = f"the review was {run.status.value} ({run.reason or 'no reason given'}) before it ended"
    outcome = decided.model_copy(update={"status": status, "reason": f"{why}; {decided.reason}" if decided.reason
                                         else why})
    report = report.model_copy(update={"outcome": outcome, "notes": outcome_notes(outcome)})
    if not any(ctx.agents.ids(s) for s in AgentStatus if not s.terminal):
        store_report(services, run.id, report, replace=False)
        return load_report(services, run.id) or report
    return report


def on_idle(services: SwarmClient, run: RunRecord) -> None:
    """Every agent ended: merge the findings into one report and end the run (once): completed only if
    every inventoried file got its scan and, where flagged, its reviewers, and no agent failed."""
    if services.runs.transition(run.id, RunStatus.FINALIZING, only_from=(RunStatus.RUNNING,)) is None:
        return  # cancelled, or another worker is finalizing it
    try:
        ctx = services.run(run.id)
        job = job_from_spec(run.spec)
        root = review_root(job, services.settings.state_dir, run.id)
        report = redacted(assemble_report(ctx, job, root, run), Redactor.from_settings(services.settings))
        out = write_report(report, report_dir(services.settings.state_dir, run.id))
        store_report(services, run.id, report, replace=True)
        counts = {s.value: n for s, n in report.by_severity().items()}
        outcome = report.outcome or decide(Tally(), useful=True)
        services.runs.transition(run.id, outcome.status, reason=outcome.reason, outcome=outcome,
                                 only_from=(RunStatus.FINALIZING,), result={
            "report_dir": str(out), "findings": len(report.findings), "by_severity": counts,
            "files_inventoried": report.files_inventoried, "files_scanned": report.files_scanned,
            "files_reviewed": len(report.reviewed), "files_left_out": outcome.left_out_total,
            "agents": sum(1 for a in report.agents if not a.inside_agent_id), "mode": report.mode.value})
    except Exception as exc:
        log.exception("finalizing review %s failed", run.id)
        services.runs.transition(run.id, RunStatus.FAILED, reason=f"report failed: {type(exc).__name__}: {exc}")


WARM_UP_TREE = {"app.py": '"""App."""\nimport os\n\n\ndef run(cmd):\n    """Run it."""\n    os.system(cmd)\n',
                "util.js": "function f(x) { return eval(x); }\n"}


def warm_up() -> None:
    """Review a two-file tree serially and render its report: a worker imports bandit and radon, finds ruff
    and builds the report formats' schemas as it starts, not inside a run's first agents (about a tenth of
    a second each, paid again by every fresh ``swarm review``'s workers)."""
    from swarm_tasks.review.pipeline import review_locally

    with tempfile.TemporaryDirectory(prefix="swarm-warm-up-") as tmp:
        root = Path(tmp)
        for name, text in WARM_UP_TREE.items():
            (root / name).write_text(text)
        report = redacted(review_locally(root, ReviewConfig(eslint=False)), Redactor())
        render_markdown(report, directory=root)
        render_json(report)
        render_sarif(report)


def redacted(report: Report, redact: Redactor) -> Report:
    """The report with secrets masked in every string it holds, in one pass (:meth:`Redactor.tree`): a
    hard-coded key found in the code is reported where it is, but never republished in Markdown, JSON or
    SARIF, whether a title names it, an evidence line quotes it or a model's note repeats it."""
    return redact.model(report)


def write_report(report: Report, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.md").write_text(render_markdown(report, directory=directory))
    (directory / "report.json").write_text(render_json(report))
    (directory / "report.sarif").write_text(render_sarif(report))
    return directory


def assemble_report(ctx: RunContext, job: ReviewJob, root: Path, run: RunRecord) -> Report:
    """One report from every agent's result: findings merged and de-duplicated, honest counts."""
    agents = all_agents(ctx)
    files_inventoried = 0
    skipped: dict[str, SkippedPath] = {}  # the inventory's
    dep_skipped: dict[str, SkippedPath] = {}  # dependencies that could not or may not be reviewed
    findings: list[Finding] = []
    inside: list[AgentRun] = []  # the analyzers' runs inside group agents
    scans: dict[str, list[dict[str, object]]] = {}
    for agent in agents:
        result = agent.result if isinstance(agent.result, dict) else {}
        if agent.spec == INVENTORY:
            files_inventoried = int(result.get("files", 0) or 0)
            for raw in result.get("skipped") or []:
                skip = SkippedPath.model_validate(raw)
                skipped[skip.path] = skip
        elif agent.spec in (SCAN, BATCH, GROUP):
            bodies = [scan_body(agent)] if agent.spec == SCAN else list(result.get("scans") or [])
            if agent.spec == GROUP:
                findings += [Finding.model_validate(f) for f in result.get("findings") or []]
                inside += [AgentRun.model_validate(r) for r in result.get("runs") or []]
            for body in bodies:
                if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
                    continue
                scans.setdefault(str(body["input"]["path"]), []).append(body)
                for raw in body.get("skipped") or []:
                    skip = SkippedPath.model_validate(raw)
                    dep_skipped.setdefault(skip.path, skip)
        else:
            findings += agent_findings(agent)
    reviewed, graph = _files_and_graph(scans)
    origins = {f.path: (f.origin, f.package) for f in reviewed}
    findings = [f if f.source is not FindingSource.MODEL or f.file not in origins else  # models name only the path
                f.model_copy(update={"origin": origins[f.file][0], "package": origins[f.file][1]}) for f in findings]
    reviewed_paths = {f.path for f in reviewed}
    graph.skipped = [s for path, s in sorted(dep_skipped.items()) if path not in reviewed_paths]
    inventory = _inventory_of(root, job)
    index = CodeIndex(root, [*inventory.files, *(d.file for d in graph.files)])
    merged = merge_findings(findings)
    runs = [*(agent_run(a) for a in agents), *sorted(inside, key=lambda r: r.agent_id)]
    refined = refine([*merged, *dependency_findings(merged, graph, index)], index, job.config, runs)
    usage = ctx.agents.usage("run")
    cov = coverage(agents, [f.path for f in inventory.to_scan()], run.limits.max_agents)
    tally = tally_agents(ctx, agents)
    tally.what = "file(s) left out"
    for path, why in cov.left_out:
        tally.leave_out(path, why)
    outcome = decide(tally, useful=cov.useful)
    return Report(root=str(root), run_id=run.id, mode=ReviewMode(job.mode), models=sorted(set(job.models.values())),
                  started_at=datetime.fromtimestamp(run.created_at, UTC), finished_at=datetime.now(UTC),
                  files_inventoried=files_inventoried, files_scanned=len(cov.scanned), outcome=outcome,
                  findings=refined.findings, reviewed=reviewed,
                  skipped=list(skipped.values()), dependencies=graph,
                  agents=runs, notes=outcome_notes(outcome),
                  **report_settings(job.config, refined, job.source.location, root),
                  usage=Usage(prompt_tokens=int(usage.get("prompt_tokens", 0)),
                              completion_tokens=int(usage.get("completion_tokens", 0)),
                              cost_usd=float(usage.get("cost_usd", 0.0))))


def outcome_notes(outcome: RunOutcome) -> list[str]:
    """The agents that did not finish, one line each (50 at most, then how many more)."""
    notes = [f"{p.spec} agent {p.agent_id}{f' ({p.subject})' if p.subject else ''} ended {p.status} "
             f"[{p.reason_class.value}]: {p.reason}" for p in outcome.problems[:MAX_NOTES]]
    if outcome.problems_total > len(notes):
        notes.append(f"... and {outcome.problems_total - len(notes)} more agents that did not finish "
                     "(list them all with `swarm status RUN --failed`)")
    return notes


def _inventory_of(root: Path, job: ReviewJob) -> Inventory:
    from swarm_tasks.review.swarm import _inventory

    return _inventory(str(root), job.config.encode())


def agent_findings(agent: AgentState) -> list[Finding]:
    """The findings an agent reported (analyzer programs and model agents store them differently)."""
    result = agent.result if isinstance(agent.result, dict) else {}
    if agent.kind == "llm":
        body = result.get("result") if isinstance(result.get("result"), dict) else {}
        found = drafts_to_findings(body.get("findings"), agent.model or "model", agent.id)
        confirmed = confirmed_finding(agent.input, body, agent.model or "model", agent.id)
        return found if confirmed is None else [confirmed, *found]
    raw = list(result.get("findings") or []) + list(result.get("new_findings") or [])
    if isinstance(result.get("finding"), dict):
        raw.append(result["finding"])
    return [Finding.model_validate(f) for f in raw]


def _files_and_graph(scans: dict[str, list[dict[str, object]]]) -> tuple[list[ReviewedFile], DependencyGraph]:
    reviewed: list[ReviewedFile] = []
    graph = DependencyGraph()
    edges: dict[tuple[str, str, int], ImportEdge] = {}
    unresolved: dict[tuple[str, str, int], UnresolvedImport] = {}
    for path in sorted(scans):
        entries = scans[path]
        for entry in entries:
            for raw in entry.get("edges") or []:  # type: ignore[attr-defined]
                edge = ImportEdge.model_validate(raw)
                edges[(edge.importer, edge.target, edge.line)] = edge
            for raw in entry.get("unresolved") or []:  # type: ignore[attr-defined]
                miss = UnresolvedImport.model_validate(raw)
                unresolved[(miss.importer, miss.module, miss.line)] = miss
        done = [e for e in entries if e.get("reviewed") and isinstance(e.get("file"), dict)]
        if not done:
            continue
        flagged = any(e.get("flagged") and e["input"]["depth"] == 0 for e in done)  # type: ignore[index]
        best = min(done, key=lambda e: e["input"]["depth"])  # type: ignore[index]
        inp = best["input"]
        file = SourceFile.model_validate(best["file"])
        risk = RiskLevel(str(best.get("risk", "low")))
        flags = [ScanFlag(f) for f in best.get("flags") or []]  # type: ignore[attr-defined]
        if flagged:
            depth0 = next(e for e in done if e["input"]["depth"] == 0)  # type: ignore[index]
            reviewed.append(ReviewedFile(path=file.path, language=file.language, origin=file.origin,
                                         package=file.package, reason=ReviewReason.FLAGGED,
                                         risk=RiskLevel(str(depth0.get("risk"))),
                                         flags=[ScanFlag(f) for f in depth0.get("flags") or []]))  # type: ignore[attr-defined]
            continue
        reviewed.append(ReviewedFile(path=file.path, language=file.language, origin=file.origin, package=file.package,
                                     reason=ReviewReason.IMPORTED, risk=risk, flags=flags, depth=inp["depth"]))
        graph.files.append(DependencyFile(file=file, depth=inp["depth"], imported_by="", module="", line=1, chain=[]))
    graph.edges = [edges[k] for k in sorted(edges)]
    graph.unresolved = [unresolved[k] for k in sorted(unresolved)]
    return _canonical_chains(reviewed, graph)


def _canonical_chains(reviewed: list[ReviewedFile],
                      graph: DependencyGraph) -> tuple[list[ReviewedFile], DependencyGraph]:
    """Each imported file's importer and chain, the same in every run: of the importers one level up, the
    first by path and line (the scan that happened to get there first varies with timing)."""
    depth = {f.path: 0 for f in reviewed if f.reason is ReviewReason.FLAGGED}
    depth.update({d.file.path: d.depth for d in graph.files})
    best: dict[str, ImportEdge] = {}
    for edge in graph.edges:  # sorted by importer, target, line: the first that fits wins
        if edge.target in best or edge.importer == edge.target:
            continue
        if depth.get(edge.importer) is not None and depth.get(edge.target) == depth[edge.importer] + 1:
            best[edge.target] = edge
    chains: dict[str, list[str]] = {}
    for path in sorted(depth, key=lambda p: (depth[p], p)):  # an importer is one level up: its chain is known
        edge = best.get(path)
        chains[path] = [*chains.get(edge.importer, []), edge.importer] if edge is not None else []

    files = []
    for dep in graph.files:
        edge = best.get(dep.file.path)
        files.append(dep.model_copy(update={
            "chain": chains[dep.file.path], "imported_by": edge.importer if edge else "",
            "module": edge.module if edge else "", "line": edge.line if edge else 1}))
    graph.files = files
    reviewed = [r.model_copy(update={"chain": chains[r.path]}) if r.reason is ReviewReason.IMPORTED else r
                for r in reviewed]
    return reviewed, graph


def agent_run(agent: AgentState) -> AgentRun:
    role = (AgentRole.SUBREVIEWER if agent.spec.startswith("review.sub.") else
            AgentRole.SCANNER if agent.spec in SCANNERS else AgentRole.REVIEWER)
    kind = reviewer_kind(agent.spec) or agent.spec.removeprefix("review.sub.").removeprefix("review.")
    result = agent.result if isinstance(agent.result, dict) else {}
    count = len(agent_findings(agent)) if role is not AgentRole.SCANNER else 0
    summary = str(result.get("summary") or agent.reason or "")[:300]
    if agent.spec == SCAN and agent.kind != "llm" and agent.status is AgentStatus.DONE:
        summary = f"risk {result.get('risk')}, flags {', '.join(result.get('flags') or []) or 'none'}"
    elif agent.spec == BATCH and agent.status is AgentStatus.DONE:
        summary = (f"{len(result.get('scanned') or [])} trivial files scanned, {len(result.get('scans') or [])} "
                   f"flagged, {len(result.get('unreviewed') or [])} left unreviewed")
    elif agent.spec == GROUP and result:
        dealt = len(agent.input.get("paths") or []) if isinstance(agent.input, dict) else 0
        # what it was dealt, not what it did: which group reviews which file is first come (they help each other)
        summary = str(result.get("why")) if "split" in result else f"{dealt} files dealt to it"
    return AgentRun(agent_id=agent.id, role=role, kind=kind, file=agent.labels.get("file", ""),
                    status=agent.status.value, reason_class=class_of(agent) if agent.status.terminal and
                    agent.status is not AgentStatus.DONE else None,
                    reason=(agent.reason or "")[:300] if agent.status is not AgentStatus.DONE else "",
                    source=FindingSource.MODEL if agent.kind == "llm" else FindingSource.ANALYZER,
                    model=agent.model if agent.kind == "llm" else None, parent_agent_id=agent.parent or "",
                    depth=agent.depth, findings=count, prompt_tokens=agent.usage.prompt_tokens,
                    completion_tokens=agent.usage.completion_tokens, cost_usd=agent.usage.cost_usd, summary=summary)
