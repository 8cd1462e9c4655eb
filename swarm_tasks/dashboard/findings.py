"""The dashboard's findings: the report's merged ones once it is written (each with the agents that found
it, so the page can point at their nodes), before that the raw ones the reviewers reported so far (from
the run's ``finding`` events), said to be raw; and the report itself, for the page's report link."""

from __future__ import annotations

from pydantic import JsonValue

from coordination.events import EventLog
from swarm_tasks.agents.services import RunContext, SwarmClient
from swarm_tasks.review.report import Report

MAX_SHOWN = 2_000
EVENT_PAGE = 2_000


def findings_view(client: SwarmClient, ctx: RunContext, report: Report | None) -> dict[str, JsonValue]:
    """``{"merged": bool, "total": n, "findings": [...]}``, most severe first."""
    if report is not None:
        shown: list[JsonValue] = [{
            "id": f.id, "severity": f.severity.value, "title": f.title, "file": f.file, "line": f.start_line,
            "rule": f.rule, "category": f.category.value, "count": f.count,
            "agents": list(dict.fromkeys([r.agent_id for r in f.reporters if r.agent_id] or [f.agent_id]))}
            for f in report.findings[:MAX_SHOWN]]
        return {"merged": True, "total": len(report.findings), "findings": shown}
    raw = _raw_findings(ctx)
    return {"merged": False, "total": len(raw), "findings": raw[:MAX_SHOWN]}  # type: ignore[dict-item]


_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def _raw_findings(ctx: RunContext) -> list[dict[str, JsonValue]]:
    log = EventLog(ctx.state.redis, ctx.state.keys)
    seen: dict[str, dict[str, JsonValue]] = {}
    after = "0-0"
    while True:
        page = log.read(after, EVENT_PAGE)
        for event in page:
            if event.type == "finding" and isinstance(event.data, dict) and event.subject not in seen:
                d = event.data
                seen[event.subject] = {"id": event.subject, "severity": d.get("severity"), "title": d.get("rule"),
                                       "file": d.get("file"), "line": d.get("line"), "rule": d.get("rule"),
                                       "category": d.get("category"), "count": 1,
                                       "agents": [d["agent"]] if d.get("agent") else []}
        if len(page) < EVENT_PAGE:
            break
        after = page[-1].id
    return sorted(seen.values(), key=lambda f: (_RANK.get(str(f["severity"]), 5), str(f["file"]), str(f["line"])))


__all__ = ["findings_view"]
