"""From every reviewer's raw findings to what the report shows: the one path the serial review and the
swarm's report assembly share.

calibrate (severity table) -> merge (one flaw, one finding) -> fingerprint -> inline suppressions ->
baseline -> aggregate repeated low findings -> name who found each (roles and analyzers) -> order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm_tasks.review.aggregate import aggregate
from swarm_tasks.review.analyzers import eslint_runner
from swarm_tasks.review.code_index import CodeIndex
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.review.findings import Finding, Reporter
from swarm_tasks.review.merge import merge_findings
from swarm_tasks.review.report import AgentRole, AgentRun
from swarm_tasks.review.severity import calibrate
from swarm_tasks.review.suppress import SuppressedFinding, apply_suppressions, with_fingerprints, without_baseline

_ROLE_NAMES = {AgentRole.SCANNER: "scanner", AgentRole.REVIEWER: "reviewer", AgentRole.SUBREVIEWER: "sub-reviewer"}


@dataclass
class Refined:
    """What :func:`refine` made of the raw findings."""

    findings: list[Finding]
    suppressed: list[SuppressedFinding] = field(default_factory=list)
    baseline_known: int = 0
    tools: list[str] = field(default_factory=list)


def role_label(agent: AgentRun) -> str:
    """'security reviewer', 'taint-trace sub-reviewer', 'scanner'."""
    name = _ROLE_NAMES[agent.role]
    return name if agent.role is AgentRole.SCANNER else f"{agent.kind} {name}"


def _with_role(reporter: Reporter, roles: dict[str, str]) -> Reporter:
    if reporter.role:
        return reporter
    role = roles.get(reporter.agent_id)
    if role is None:
        prefix = reporter.agent_id.split(":", 1)[0]
        role = {"dependencies": "dependency check", "reviewer": "reviewer", "analyzer": ""}.get(prefix, "")
        if prefix == "reviewer" and reporter.agent_id.count(":") >= 2:  # the serial review's ids
            role = f"{reporter.agent_id.split(':')[1]} reviewer"
    return reporter.model_copy(update={"role": role or reporter.tool})


def name_reporters(findings: list[Finding], agents: Iterable[AgentRun]) -> list[Finding]:
    """Each reporter named by its role and analyzer (``Reporter.role``), not only by agent id."""
    roles = {a.agent_id: role_label(a) for a in agents}
    return [f.model_copy(update={"reporters": [_with_role(r, roles) for r in f.reporters]}) for f in findings]


def report_settings(config: ReviewConfig, refined: Refined, source: str | None = None,
                    root: Path | None = None) -> dict[str, Any]:
    """The report fields that come from the configuration and from :func:`refine`. A review of a GitHub or
    GitLab URL links to the reviewed commit there unless ``config.link_base`` says otherwise."""
    link_base = config.link_base or (forge_link_base(source, root) if source and root else None)
    return {"suppressed": refined.suppressed, "baseline": config.baseline_label, "baseline_known":
            refined.baseline_known, "since": config.since, "summary_min_severity": config.summary_min_severity,
            "link_base": link_base, "tools": refined.tools}


_FORGE = re.compile(r"^(?:https?://(?:[^@/]+@)?|git@)(?P<host>github\.com|gitlab\.com)[:/]"
                    r"(?P<path>[\w.-]+(?:/[\w.-]+)+?)(?:\.git)?/?$")


def forge_link_base(location: str, root: Path) -> str | None:
    """``https://github.com/o/r/blob/<commit>/`` for a clone of a GitHub (or GitLab) repository, read from
    the clone's own HEAD (no git process); None for anything else. Credentials in the URL are dropped."""
    match = _FORGE.match(location)
    commit = head_commit(root) if match else None
    if match is None or commit is None:
        return None
    blob = "-/blob" if match.group("host") == "gitlab.com" else "blob"
    return f"https://{match.group('host')}/{match.group('path').removesuffix('.git')}/{blob}/{commit}/"


def head_commit(root: Path) -> str | None:
    """The commit a checkout's HEAD points at, from its .git files, or None."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head if re.fullmatch(r"[0-9a-f]{40,64}", head) else None
        ref = head[5:]
        loose = git / ref
        if loose.is_file():
            sha = loose.read_text().strip()
            return sha if re.fullmatch(r"[0-9a-f]{40,64}", sha) else None  # 'ref: ../../etc/x' quotes nothing
        for line in (git / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and re.fullmatch(r"[0-9a-f]{40,64}", sha):
                return sha
    except OSError:
        return None
    return None


def tool_notes(index: CodeIndex, config: ReviewConfig) -> list[str]:
    """What the report must say about optional analyzers: whether ESLint ran beside our JS rules."""
    if not config.eslint or not any(eslint_runner.wants_eslint(p) for p in index.files):
        return []
    problem = eslint_runner.eslint_problem()
    if problem is None:
        return ["ESLint with eslint-plugin-security ran on the JavaScript files beside our own rules."]
    return [f"ESLint with eslint-plugin-security did not run: {problem}."]


def refine(findings: Iterable[Finding], index: CodeIndex, config: ReviewConfig,
           agents: Iterable[AgentRun] = ()) -> Refined:
    """The report's findings from the raw ones (idempotent on its own output, except aggregation keeps
    already aggregated findings as they are)."""
    merged = merge_findings(calibrate(f) for f in findings)
    merged = [calibrate(f) for f in merged]  # a merged finding may be reachable where a part was not
    printed = with_fingerprints(merged, index)
    kept, suppressed = apply_suppressions(printed, index, config.honor_noqa)
    kept, known = without_baseline(kept, frozenset(config.baseline_fingerprints))
    shown = name_reporters(aggregate(kept, config), agents)
    return Refined(findings=sorted(shown, key=lambda f: f.sort_key()),
                   suppressed=sorted(suppressed, key=lambda s: (s.file, s.start_line, s.rule)), baseline_known=known,
                   tools=tool_notes(index, config))
