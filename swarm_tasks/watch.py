"""The terminal views of a run: live (``swarm watch``, and ``swarm review`` while it runs) and once
(``swarm status``): its status, outcome and reason, real elapsed time, agents, a build's cycles."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from swarm_tasks.api import Progress, RunHandle
from swarm_tasks.display import console_text
from swarm_tasks.outcome import AgentEnd, RunStatus

_SEVERITIES = ("critical", "high", "medium", "low", "info")
_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}
_ACTIVE = ("queued", "ready", "running", "waiting")
_STATUS_STYLE = {RunStatus.COMPLETED: "bold green", RunStatus.PARTIAL: "bold yellow", RunStatus.FAILED: "bold red",
                 RunStatus.CANCELLED: "bold red"}


def render(run: RunHandle, progress: Progress, elapsed_s: float | None = None) -> Panel:
    """One frame: the outcome and reason once ended, agents by role, totals, a progress bar, tasks,
    findings, tokens, cost and the run's real elapsed time; a build's cycles and hot spots."""
    record = run.record()
    if elapsed_s is None:
        elapsed_s = run.client.runs.elapsed_s(record)
    roles = Table(box=None, expand=False, pad_edge=False)
    roles.add_column("role", style="bold")
    roles.add_column("started", justify="right")
    roles.add_column("active", justify="right")
    roles.add_column("done", justify="right")
    roles.add_column("tokens", justify="right")
    roles.add_column("cost $", justify="right")
    for role, usage in sorted(progress.roles.items()):
        started = int(usage.get("agents", 0))
        ended = int(usage.get("agents_ended", 0))
        tokens = int(usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
        roles.add_row(role, str(started), str(started - ended), str(ended), f"{tokens:,}",
                      f"{usage.get('cost_usd', 0.0):.4f}")
    total, ended = progress.started, progress.ended
    bar = ProgressBar(total=max(total, 1), completed=ended, width=50)
    status_line = Text.assemble(
        (f"{progress.status.value}", _STATUS_STYLE.get(progress.status, "bold")),
        f"  agents {ended}/{total} ended, ",
        (f"{sum(progress.agents.get(s, 0) for s in _ACTIVE)} active", "bold"),
        f"  ·  {progress.tokens:,} tokens  ·  ${progress.cost_usd:.4f}  ·  {elapsed_s:,.0f}s")
    findings = Text("findings (raw, before merging): ")
    for sev in _SEVERITIES:
        findings.append(f"{sev} {progress.counters.get(f'findings.{sev}', 0)}  ", style=_SEVERITY_STYLE[sev])
    tasks = Text("tasks: " + "  ".join(f"{s} {n}" for s, n in progress.tasks.items() if n) if any(
        progress.tasks.values()) else "tasks: none on the board", style="dim")
    by_status = Text("agents: " + "  ".join(f"{s} {n}" for s, n in progress.agents.items() if n), style="dim")
    parts = [status_line, bar]
    if record.reason:
        parts.append(Text(f"reason: {console_text(record.reason)}", style=_STATUS_STYLE.get(record.status, "")))
    outcome = record.outcome
    if outcome is not None and (outcome.failed or outcome.stopped):
        classes = ", ".join(f"{n} {c}" for c, n in sorted({**outcome.failed, **outcome.stopped}.items()))
        parts.append(Text(f"did not finish: {classes}  (swarm status {run.id} --failed)", style="dim"))
    parts += [Text(""), roles, Text(""), findings, tasks, by_status, *_build_lines(run)]
    return Panel(Group(*parts), title=f"swarm run {run.id}", subtitle=console_text(record.title[:80]) or None)


def _build_lines(run: RunHandle) -> list[Text]:
    """A build's judged cycles (tip, check, the judge's decision and why) and its hot spots."""
    cycles, spots = run.cycles(), run.hot_spots()
    if not cycles and not spots:
        return []
    lines = [Text("")]
    for c in cycles:
        check = c.get("check") if isinstance(c.get("check"), dict) else None
        verdict = "no check" if check is None else "check passed" if check.get("passed") else "check FAILED"
        lines.append(Text(f"cycle {c.get('cycle')}: tip {str(c.get('tip') or '')[:12]}, {verdict}; judge "
                          f"{c.get('decision')}: {console_text(str(c.get('reason') or ''))}"))
    if spots:
        lines.append(Text("hot spots: " + ", ".join(f"{console_text(path)} ({n})" for path, n in spots), style="dim"))
    return lines


def render_failed(run: RunHandle, agents: list[AgentEnd]) -> Table | Text:
    """The agents of a run that did not finish, with their reason class and reason."""
    if not agents:
        return Text(f"run {run.id}: every agent that ended finished its work")
    table = Table("agent", "role", "spec", "status", "class", "on", "reason", title=f"run {run.id}: "
                  f"{len(agents)} agents did not finish", expand=False)
    for a in agents:
        table.add_row(a.agent_id, a.role, a.spec, a.status, a.reason_class.value, console_text(a.subject),
                      console_text(a.reason))
    return table


def watch(run: RunHandle, *, console: Console | None = None, refresh_s: float = 0.5,
          timeout_s: float | None = None) -> Progress:
    """Redraw the view until the run ends (or ``timeout_s``); returns the last snapshot."""
    console = console or Console()
    start = time.monotonic()

    def frame() -> tuple[Progress, Panel]:
        progress = run.progress()
        return progress, render(run, progress)

    progress, panel = run.reconnecting(frame)
    with Live(panel, console=console, refresh_per_second=4, transient=False) as live:

        def outage(waited_s: float, error: BaseException | None) -> None:  # say so while Redis is away
            if error is not None:
                live.update(Group(panel, Text(f"Redis unreachable for {waited_s:.0f} s ({error}): reconnecting, "
                                              "the run goes on in the workers", style="bold yellow")))

        while not progress.status.terminal:
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                break
            time.sleep(refresh_s)
            progress, panel = run.reconnecting(frame, outage)
            live.update(panel)
    return progress
