"""The review as a swarm of agents: what each agent does and which agents it starts.

inventory ─► scan (one per file) ─► security / quality / complexity / documentation reviewers
   │             │                         └─► sub-reviewers (rules in data, bounded depth)
   │             └─► scan of each imported file (dependencies, bounded depth)
   └─► batch scan (a flood of trivial files, 100 per agent) ─► reviewers of those it flags, within its allowance

That is a review with a model. Without one, the inventory starts groups of files instead, and each does all
of the above for its files inside one agent (:mod:`swarm_tasks.review.group`).

The inventory plans the scans (:mod:`swarm_tasks.review.triage`): risky files first, trivial files in
batches, and no more than the run's agent budget can also give reviewers; the rest is left out and the
review ends partial, naming it.

Each function here is either a *program* (a deterministic agent: analyzers, named as such) or an
*on_finish hook* (what a model agent's result leads to). Both plan children the same way, with
run-wide keys, so a file is reviewed once per run whoever reaches it, and a dependency is scanned
once per depth (the shortest import path always gets its turn).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.program import EmittedEvent, ProgramContext, ProgramResult
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.review.analyzers import run_reviewer
from swarm_tasks.review.analyzers.python_quality import prepare_batch
from swarm_tasks.review.budget import cap_findings
from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.dependencies import ImportEdge, PackageBudget
from swarm_tasks.review.enums import FileOrigin, ReviewerKind, RiskLevel, ScanFlag
from swarm_tasks.review.findings import Finding
from swarm_tasks.review.imports import ImportResolver
from swarm_tasks.review.inventory import Inventory, build_inventory, describe_file
from swarm_tasks.review.job import ReviewJob, job_from_spec, review_root
from swarm_tasks.review.merge import merge_findings
from swarm_tasks.review.scan import ScanResult, analyzers_suffice, is_flagged, quick_scan
from swarm_tasks.review.source import SkippedPath, SourceFile
from swarm_tasks.review.subreview_rules import (
    SubreviewRequest,
    SubreviewRules,
    load_subreview_rules,
    once_per_file,
    plan_subreviews,
)
from swarm_tasks.review.subreviewers import run_subreviewer
from swarm_tasks.review.triage import PER_FILE, plan_groups, plan_scans

INVENTORY = "review.inventory"
SCAN = "review.scan"
BATCH = "review.batch"
GROUP = "review.group"  # a review without models: a group of files reviewed whole (swarm_tasks.review.group)
SCANNERS = (INVENTORY, SCAN, BATCH, GROUP)


def reviewer_spec(kind: ReviewerKind | str) -> str:
    return f"review.{kind}"


def analyzer_reviewer_spec(kind: ReviewerKind | str) -> str:
    """A reviewer run as its analyzers in a model review (a file flagged only as undocumented)."""
    return f"review.analyzer.{kind}"


def reviewer_kind(spec: str) -> str | None:
    """The reviewer kind of a reviewer's spec name (a model's or the analyzers'); None for other agents."""
    kind = spec.removeprefix("review.analyzer.").removeprefix("review.")
    return kind if kind in ReviewerKind.__members__.values() else None


def subreviewer_spec(kind: str) -> str:
    return f"review.sub.{kind}"


class FileInput(BaseModel):
    """What a scan or a reviewer is given about its file."""

    model_config = ConfigDict(extra="forbid")

    path: str
    depth: int = 0
    origin: FileOrigin = FileOrigin.REPOSITORY
    package: str | None = None
    chain: list[str] = Field(default_factory=list)
    imported_by: str | None = None
    module: str | None = None
    line: int | None = None
    kind: str | None = None  # reviewer kind
    flags: list[ScanFlag] = Field(default_factory=list)


# -- shared per-process caches -------------------------------------------------------------------

T = TypeVar("T")


def _built_once(maxsize: int) -> Callable[[Callable[[str, str], T]], Callable[[str, str], T]]:
    """``lru_cache`` that builds each value once: hundreds of a run's agents start at the same moment,
    and each of them built the whole inventory before the first one was cached (3% of a 1,000-file
    review's worker CPU)."""

    def wrap(build: Callable[[str, str], T]) -> Callable[[str, str], T]:
        cached = lru_cache(maxsize=maxsize)(build)
        lock = threading.Lock()

        def get(root: str, config_json: str) -> T:
            with lock:
                return cached(root, config_json)

        return get

    return wrap


@_built_once(maxsize=32)
def _inventory(root: str, config_json: str) -> Inventory:
    return build_inventory(root, ReviewConfig.decode(config_json))


@lru_cache(maxsize=32)
def _rules(path: str | None) -> SubreviewRules:
    return load_subreview_rules(Path(path) if path else None)


@_built_once(maxsize=8)
def _index(root: str, config_json: str) -> CodeIndex:
    return CodeIndex(Path(root), _inventory(root, config_json).files)


def shared_index(root: Path, job: ReviewJob) -> CodeIndex:
    """The run's code index in this process: sub-reviewers share its texts, trees and call index."""
    return _index(str(root), job.config.encode())


def context_of(pctx: ProgramContext) -> tuple[ReviewJob, Path, Inventory]:
    job = job_from_spec(pctx.run.spec)
    root = review_root(job, pctx.settings.state_dir, pctx.run.id)
    return job, root, _inventory(str(root), job.config.encode())


def source_file(root: Path, inventory: Inventory, config: ReviewConfig, inp: FileInput) -> SourceFile | SkippedPath:
    known = inventory.by_path().get(inp.path)
    if known is not None:
        return known
    return describe_file(root, inp.path, config, origin=inp.origin, package=inp.package)


def rules_of(job: ReviewJob) -> SubreviewRules:
    path = job.config.subreview_rules_path
    return _rules(str(path) if path else None)


# -- planning children -----------------------------------------------------------------------------


def reviewers_for(file: SourceFile, inp: FileInput, flags: list[ScanFlag], *,
                  analyzers: bool = False) -> list[ChildRequest]:
    """The four reviewers of a file; ``analyzers``: as their analyzers, even in a model review."""
    name = analyzer_reviewer_spec if analyzers else reviewer_spec
    return [ChildRequest(name(kind), task=review_task(kind, file.path),
                         input=FileInput(path=file.path, depth=inp.depth, origin=file.origin, package=file.package,
                                         kind=kind.value, flags=flags).model_dump(mode="json"),
                         labels={"file": file.path, "kind": kind.value,
                                 "phase": "review" if inp.depth == 0 else "dependencies"},
                         key=f"review:{kind.value}:{file.path}", global_key=True)
            for kind in ReviewerKind]


def review_task(kind: ReviewerKind | str, path: str) -> str:
    return (f"Review {path} for {kind} problems. Report each problem you can justify with its exact line "
            "numbers, evidence, severity and a recommendation; report nothing you cannot point at.")


def plan_after_scan(pctx: ProgramContext, job: ReviewJob, root: Path, inventory: Inventory, file: SourceFile,
                    inp: FileInput, risk: RiskLevel, flags: list[ScanFlag], imports_of: ScanResult,
                    ) -> tuple[list[ChildRequest], dict[str, JsonValue]]:
    """Reviewers for a flagged (or imported) file, and scans of what it imports, within the depth."""
    config = job.config
    flagged = is_flagged(risk, set(flags), config)
    reviewed = flagged if inp.depth == 0 else True
    analyzers = job.model_for("reviewer") is not None and analyzers_suffice(risk, set(flags), config)
    children: list[ChildRequest] = reviewers_for(file, inp, flags, analyzers=analyzers) if reviewed else []
    edges: list[ImportEdge] = []
    skipped: list[SkippedPath] = []
    unresolved: list[JsonValue] = []
    if reviewed and inp.depth < config.dependency_depth:
        resolver = ImportResolver(root, config, inventory.third_party)
        targets, missing = resolver.resolve(file, imports_of.imports, skipped)  # refused: out of the root
        unresolved = [u.model_dump(mode="json") for u in missing if not u.module.startswith(".")]
        chain = [*inp.chain, file.path]
        budget = PackageBudget(config)
        for target in targets:
            edges.append(ImportEdge(importer=file.path, target=target.path, module=target.module, line=target.line))
            # Not "or in the chain": the chain is whichever importer reached this file first, so skipping by it
            # made a file's children, and the run's agent count, depend on timing (744 agents one run, 745 the
            # next). Cycles stay bounded by the depth, and the report derives one chain from the edges.
            if target.path == file.path:
                continue
            if not budget.admit(target):  # per importer: a run-wide count admitted whoever asked first
                if (skip := budget.refusal(target)) is not None:
                    skipped.append(skip)
                continue
            dep = FileInput(path=target.path, depth=inp.depth + 1, origin=target.origin, package=target.package,
                            chain=chain, imported_by=file.path, module=target.module, line=target.line)
            children.append(dependency_scan(dep))
    result: dict[str, JsonValue] = {
        "file": file.model_dump(mode="json"), "input": inp.model_dump(mode="json"), "risk": risk.value,
        "flags": [f.value for f in flags], "flagged": flagged, "reviewed": reviewed,
        "reviewed_by": "analyzers" if analyzers or not job.model_for("reviewer") else "models",
        "edges": [e.model_dump(mode="json") for e in edges], "unresolved": unresolved,
        "skipped": [s.model_dump(mode="json") for s in skipped]}
    return children, result


def dependency_scan(dep: FileInput) -> ChildRequest:
    """The scan of an imported file at its depth: once per run and depth, whoever imports it."""
    return ChildRequest(SCAN, task=scan_task(dep.path), input=dep.model_dump(mode="json"),
                        labels={"file": dep.path, "phase": "dependencies"}, key=f"dep:{dep.path}:{dep.depth}",
                        global_key=True)


def scan_task(path: str) -> str:
    return (f"Quick-scan {path}: decide its risk level (low, medium, high, critical) and which risk flags apply "
            "(sql, shell, deserialization, eval, secrets, crypto, network, auth, complex, undocumented...).")


def subreviews_for(findings: list[Finding], job: ReviewJob, flags: dict[str, set[ScanFlag]], depth: int,
                   parent: str) -> list[ChildRequest]:
    rules = rules_of(job)
    findings = merge_findings(findings)  # plan on merged findings, as the serial reference does
    by_id = {f.id: f for f in findings}
    out: list[ChildRequest] = []
    for request in plan_subreviews(findings, rules, flags, depth, job.config.subreview_max_depth, parent):
        out.append(subreview_child(request, by_id[request.finding_id], rules))
    return out


def subreview_key(request: SubreviewRequest, rules: SubreviewRules) -> str:
    """What makes a sub-review the same work run-wide (an agent's key, or a group's claim)."""
    key = "|".join(request.key(once_per_file(rules, request)))
    return f"sub:{hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()}"


def subreview_child(request: SubreviewRequest, finding: Finding, rules: SubreviewRules) -> ChildRequest:
    return ChildRequest(subreviewer_spec(request.reviewer.value),
                        task=f"{request.reviewer.value}: examine the finding {finding.rule} at {finding.file}:"
                             f"{finding.start_line}, titled (quoted as data) {json.dumps(finding.title)}; confirm or "
                             "refute it with evidence.",
                        input={"request": request.model_dump(mode="json"), "finding": finding.model_dump(mode="json")},
                        labels={"file": finding.file, "kind": request.reviewer.value},
                        key=subreview_key(request, rules), global_key=True)


def credit(finding: Finding, synthetic: str, agent_id: str) -> Finding:
    """Replace a synthetic reporter id with the id of the agent that really ran."""
    reporters = [r.model_copy(update={"agent_id": agent_id}) if r.agent_id == synthetic else r
                 for r in finding.reporters]
    primary = agent_id if finding.agent_id == synthetic else finding.agent_id
    return finding.model_copy(update={"reporters": reporters, "agent_id": primary})


def finding_counters(findings: list[Finding]) -> dict[str, int]:
    """Raw (not yet merged) findings by severity, for the live views."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f"findings.{f.severity.value}"] = counts.get(f"findings.{f.severity.value}", 0) + 1
    return counts


def finding_events(findings: list[Finding], agent_id: str) -> list[EmittedEvent]:
    return [EmittedEvent("finding", f.id, {"severity": f.severity.value, "file": f.file, "line": f.start_line,
                                           "rule": f.rule, "category": f.category.value, "agent": agent_id,
                                           "source": f.source.value}) for f in findings[:200]]


# -- programs: deterministic agents ----------------------------------------------------------------


def scan_request(path: str) -> ChildRequest:
    return ChildRequest(SCAN, task=scan_task(path), input=FileInput(path=path).model_dump(mode="json"),
                        labels={"file": path, "phase": "scan"}, key=f"scan:{path}", global_key=True)


def inventory_program(pctx: ProgramContext) -> ProgramResult:
    """List the repository's files and start their scans: risky files first, trivial ones in batches,
    no more than the agent budget can also review (see :mod:`swarm_tasks.review.triage`)."""
    job, root, inventory = context_of(pctx)
    started = int(float(pctx.state.redis.hget(pctx.state.keys.usage("run"), "agents_started") or 0))
    if job.mode == "deterministic":
        return _plan_groups(inventory, pctx.run.limits.max_agents - started)
    plan = plan_scans(root, inventory.to_scan(), pctx.run.limits.max_agents - started)
    children = [scan_request(f.path) for f in plan.individual]
    # Each batch gets its own share of the allowance, fixed here: drawn from one run-wide counter, which
    # flagged trivial files got reviewers depended on which batch ran first.
    shares = allowance_shares(plan.trivial_allowance, len(plan.batches))
    children += [ChildRequest(BATCH, task=f"Quick-scan {len(batch)} trivial files.",
                              labels={"batch": str(n), "phase": "scan"},
                              input={"paths": [f.path for f in batch], "allowance": shares[n]},
                              key=f"batch:{n}", global_key=True)
                 for n, batch in enumerate(plan.batches)]
    return ProgramResult(result=inventory_result(inventory, {
        "budget": plan.budget, "individual": len(plan.individual), "batched": plan.batched,
        "batches": len(plan.batches), "trivial_allowance": plan.trivial_allowance, "left_out": len(plan.left_out)}),
        children=children, reason=None)


def inventory_result(inventory: Inventory, plan: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """What the inventory agent records: the files, the third-party roots, what it skipped, and its plan."""
    return {"files": len(inventory.to_scan()), "root": inventory.root,
            "third_party": inventory.third_party.model_dump(mode="json"),
            "skipped": [s.model_dump(mode="json") for s in inventory.skipped], "plan": plan}


def _plan_groups(inventory: Inventory, budget: int) -> ProgramResult:
    """A review without models: the files in groups, each reviewed whole by one agent."""
    plan = plan_groups(inventory.to_scan(), budget)
    children = [ChildRequest(GROUP, task=f"Review {len(group)} files with the analyzers.",
                             labels={"group": str(n), "phase": "review"},
                             input={"paths": [f.path for f in group], "group": n, "groups": len(plan.groups)},
                             key=f"group:{n}", global_key=True)
                for n, group in enumerate(plan.groups)]
    grouped = sum(len(g) for g in plan.groups)
    return ProgramResult(result=inventory_result(inventory, {
        "budget": plan.budget, "groups": len(plan.groups), "grouped": grouped,
        "left_out": len(inventory.to_scan()) - grouped}), children=children, reason=None)


def batch_program(pctx: ProgramContext) -> ProgramResult:
    """Quick-scan a batch of trivial files. A file the scan flags gets its reviewers as this agent's
    children, or (when it shows a real risk after all) its own scan agent, while this batch's share of
    the agent budget lasts (in path order: the same files every run); past it, the file is named as not
    reviewed."""
    job, root, inventory = context_of(pctx)
    data = pctx.agent.input if isinstance(pctx.agent.input, dict) else {}
    left = int(data.get("allowance") or 0)
    scanned: list[str] = []
    scans: list[JsonValue] = []
    unreviewed: list[str] = []
    escalated: list[str] = []
    children: list[ChildRequest] = []
    for path in data.get("paths") or []:
        inp = FileInput(path=str(path))
        file = source_file(root, inventory, job.config, inp)
        if isinstance(file, SkippedPath):
            continue
        scan = quick_scan(root, file, job.config)
        scanned.append(file.path)
        if not scan.flagged:
            continue
        risky = scan.risk.rank >= job.config.risk_threshold.rank
        wanted, entry = ([scan_request(file.path)], None) if risky else plan_after_scan(
            pctx, job, root, inventory, file, inp, scan.risk, list(scan.flags), scan)
        cost = len(wanted) + (PER_FILE - 1 if risky else 0)  # an escalated scan will want its reviewers
        if cost > left:
            unreviewed.append(file.path)
            continue
        left -= cost
        children += wanted
        if risky:
            escalated.append(file.path)
        else:
            scans.append(entry)
    return ProgramResult(result={"scanned": scanned, "scans": scans, "unreviewed": unreviewed,
                                 "escalated": escalated},
                         children=children, reason=None)


def allowance_shares(allowance: int, batches: int, unit: int = PER_FILE - 1) -> list[int]:
    """``allowance`` agents split over ``batches`` batches in whole ``unit``s (a flagged file's reviewers:
    a share that fits none would be wasted), round the batches; what is left over goes to the first."""
    if batches <= 0:
        return []
    units, rest = divmod(max(0, allowance), unit)
    each, extra = divmod(units, batches)
    shares = [(each + (1 if n < extra else 0)) * unit for n in range(batches)]
    shares[0] += rest
    return shares


def scan_program(pctx: ProgramContext) -> ProgramResult:
    """Quick-scan one file (risk and flags) with the analyzers' cheap signals."""
    job, root, inventory = context_of(pctx)
    inp = FileInput.model_validate(pctx.agent.input)
    file = source_file(root, inventory, job.config, inp)
    if isinstance(file, SkippedPath):
        return ProgramResult(result={"input": inp.model_dump(mode="json"), "skipped": [file.model_dump(mode="json")],
                                     "reviewed": False}, reason=f"skipped: {file.reason} {file.detail}".strip())
    scan = quick_scan(root, file, job.config)
    children, result = plan_after_scan(pctx, job, root, inventory, file, inp, scan.risk, list(scan.flags), scan)
    result["signals"] = [s.model_dump(mode="json") for s in scan.signals[:50]]
    return ProgramResult(result=result, children=children)


def reviewer_program(pctx: ProgramContext) -> ProgramResult:
    """One specialist reviewer (security, quality, complexity or documentation) run as its analyzer."""
    job, root, inventory = context_of(pctx)
    inp = FileInput.model_validate(pctx.agent.input)
    file = source_file(root, inventory, job.config, inp)
    if isinstance(file, SkippedPath):
        return ProgramResult(status=AgentStatus.FAILED, reason=f"file not reviewable: {file.reason} {file.detail}")
    kind = ReviewerKind(inp.kind or "security")
    prepare_batch(root, inventory.to_scan(), job.config)  # one ruff run for this process's share of the run
    capped = cap_findings(run_reviewer(kind, root, file, job.config, pctx.agent.id), job.config)
    findings = capped.findings
    children = subreviews_for(findings, job, {file.path: set(inp.flags)}, 1, pctx.agent.id)
    return ProgramResult(status=AgentStatus.STOPPED if capped.cut else AgentStatus.DONE, reason=capped.reason(),
                         result={"findings": [f.model_dump(mode="json") for f in findings], "kind": kind.value,
                                 "path": file.path},
                         children=children, events=finding_events(findings, pctx.agent.id),
                         counters=finding_counters(findings))


def subreviewer_program(pctx: ProgramContext) -> ProgramResult:
    """A deterministic sub-reviewer (taint trace, secret exposure, auth flow, deserialization source)."""
    job, root, _ = context_of(pctx)
    data = pctx.agent.input if isinstance(pctx.agent.input, dict) else {}
    request = SubreviewRequest.model_validate(data.get("request"))
    finding = Finding.model_validate(data.get("finding"))
    index = shared_index(root, job)
    if finding.file not in index.files:
        extra = describe_file(root, finding.file, job.config, origin=finding.origin, package=finding.package)
        if isinstance(extra, SourceFile):
            index = index.including(extra)  # never added to the shared index: see CodeIndex.including
    outcome = run_subreviewer(request, finding, index)
    capped = cap_findings(outcome.new_findings, job.config)
    outcome = outcome.model_copy(update={  # credit what this sub-reviewer found to this agent, not a synthetic id
        "finding": credit(outcome.finding, request.agent_id, pctx.agent.id),
        "new_findings": [credit(f, request.agent_id, pctx.agent.id) for f in capped.findings]})
    rules = rules_of(job)
    children = [subreview_child(r, outcome.finding if r.finding_id == outcome.finding.id else
                                next((f for f in outcome.new_findings if f.id == r.finding_id), outcome.finding), rules)
                for r in outcome.follow_ups]
    children += subreviews_for(outcome.new_findings, job, {}, request.depth + 1, pctx.agent.id)
    return ProgramResult(result={"finding": outcome.finding.model_dump(mode="json"),
                                 "new_findings": [f.model_dump(mode="json") for f in outcome.new_findings],
                                 "summary": outcome.summary, "request": request.model_dump(mode="json")},
                         children=children, reason=capped.reason(),
                         status=AgentStatus.STOPPED if capped.cut else AgentStatus.DONE,
                         events=finding_events([outcome.finding, *outcome.new_findings], pctx.agent.id),
                         counters=finding_counters(outcome.new_findings))
