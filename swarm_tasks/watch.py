"""The terminal views of a run: live (``swarm watch``, and ``swarm review`` while it runs) and once
(``swarm status``): its status, outcome and reason, real elapsed time, progress by phase with rate and
time left, tokens and cost, queues nobody consumes, findings, a build's cycles. Laid out to read in 80
columns: nothing a user copies (a run id, a command) is cut or broken."""

from __future__ import annotations

import time

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from swarm_tasks.api import Progress, RunHandle
from swarm_tasks.display import console_text, duration
from swarm_tasks.outcome import RunStatus
from swarm_tasks.phases import PhaseRow, RateMeter, eta_s, phase_rows
from swarm_tasks.worker.consumers import QueueNeed

_SEVERITIES = ("critical", "high", "medium", "low", "info")
_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}
_ACTIVE = ("queued", "ready", "running", "waiting")
NEEDS_EVERY_S = 5.0
_STATUS_STYLE = {RunStatus.COMPLETED: "bold green", RunStatus.PARTIAL: "bold yellow", RunStatus.FAILED: "bold red",
                 RunStatus.CANCELLED: "bold red"}


def render(run: RunHandle, progress: Progress, elapsed_s: float | None = None, *, rate: float | None = None,
           needs: list[QueueNeed] | None = None) -> Panel:
    """One frame, 80 columns wide or more: status, elapsed time and agents; progress by phase (done of
    total, a bar each), rate and time left; tokens and cost as replies arrive; the reason once ended; a
    warning per queue the run waits on that nobody consumes; findings (merged once the report is written,
    labelled raw before); agents by role; a build's cycles and hot spots. ``rate``: agents ended per
    second (default: over the whole run so far); ``needs``: the run's queues (default: read now)."""
    record = run.record()
    if elapsed_s is None:
        elapsed_s = run.client.runs.elapsed_s(record)
    total, ended = progress.started, progress.ended
    active = sum(progress.agents.get(s, 0) for s in _ACTIVE)
    status_line = Text.assemble((progress.status.value, _STATUS_STYLE.get(progress.status, "bold")),
                                f"  {duration(elapsed_s)}  ·  agents {ended}/{total} ended, ",
                                (f"{active} active", "bold"))
    rows = phase_rows(record.kind, progress.phases, progress.status)
    if rate is None and elapsed_s > 0:
        rate = ended / elapsed_s
    left, floor = eta_s(rows, rate)
    flight = f" ({progress.in_flight_tokens:,} in flight)" if progress.in_flight_tokens else ""
    usage_line = Text(f"{progress.live_tokens:,} tokens{flight}  ·  ${progress.live_cost_usd:.4f}")
    if not progress.status.terminal:
        usage_line.append(f"  ·  {rate or 0:.1f} agents/s  ·  ETA "
                          + ("unknown" if left is None else ("≥ " if floor else "") + duration(left)))
    parts: list[RenderableType] = [status_line, usage_line, _phase_table(rows)]
    if record.reason:
        parts.append(Text(f"reason: {console_text(record.reason)}", style=_STATUS_STYLE.get(record.status, "")))
    outcome = record.outcome
    if outcome is not None and (outcome.failed or outcome.stopped):
        classes = ", ".join(f"{n} {c}" for c, n in sorted({**outcome.failed, **outcome.stopped}.items()))
        parts.append(Text(f"did not finish: {classes}  (swarm agents {run.id} --failed --stopped)", style="dim"))
    if not progress.status.terminal:
        for need in run.queue_needs() if needs is None else needs:
            if need.starved:
                parts.append(Text(f"warning: {need.warning()}", style="bold yellow"))
    parts += [Text(""), _findings_line(record.result, progress), _roles_table(progress), _tasks_line(progress),
              *_build_lines(run)]
    title = console_text(record.title)
    return Panel(Group(*parts), title=f"{record.kind} {run.id}",
                 subtitle=(title[:60] + "…" if len(title) > 61 else title) or None)


def _phase_table(rows: list[PhaseRow]) -> Table:
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("phase", style="bold", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("bar", no_wrap=True)
    for row in rows:
        bar: RenderableType = ProgressBar(total=max(row.total, 1), completed=row.done, width=24) if row.total else Text(
            row.state, style="dim")
        table.add_row(row.name, row.shown(), bar)
    return table


def _findings_line(result: object, progress: Progress) -> Text:
    """One severity count: the report's merged counts once written, else the raw ones, said to be raw."""
    merged = result.get("by_severity") if isinstance(result, dict) else None
    counts = merged if isinstance(merged, dict) else {s: progress.counters.get(f"findings.{s}", 0) for s in _SEVERITIES}
    line = Text("findings: " if isinstance(merged, dict) else "findings so far (raw, not merged): ")
    for sev in _SEVERITIES:
        line.append(f"{sev} {counts.get(sev, 0)}  ", style=_SEVERITY_STYLE[sev])
    return line


def _roles_table(progress: Progress) -> Table:
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
    return roles


def _tasks_line(progress: Progress) -> Text:
    tasks = "  ".join(f"{s} {n}" for s, n in progress.tasks.items() if n)
    agents = "  ".join(f"{s} {n}" for s, n in progress.agents.items() if n)
    return Text(f"tasks: {tasks or 'none on the board'}\nagents: {agents}", style="dim")


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


def watch(run: RunHandle, *, console: Console | None = None, refresh_s: float = 0.5,
          timeout_s: float | None = None) -> Progress:
    """Redraw the view until the run ends (or ``timeout_s``); returns the last snapshot."""
    console = console or Console()
    start = time.monotonic()

    meter = RateMeter()
    needs: list[QueueNeed] = []
    needs_at = -1e9

    def frame() -> tuple[Progress, Panel]:
        nonlocal needs, needs_at
        progress = run.progress()
        meter.add(progress.ended)
        if time.monotonic() - needs_at > NEEDS_EVERY_S:  # reads waiting agents: not at every frame
            needs, needs_at = ([] if progress.status.terminal else run.queue_needs()), time.monotonic()
        return progress, render(run, progress, rate=meter.rate(), needs=needs)

    progress, panel = run.reconnecting(frame)
    with Live(panel, console=console, refresh_per_second=4, transient=False) as live:

        def outage(waited_s: float, error: BaseException | None) -> None:  # say so while Redis is away
            if error is not None:
                live.update(Group(panel, Text(f"Redis unreachable for {waited_s:.0f} s ({error}): reconnecting, "
                                              "the run goes on in the workers", style="bold yellow")),
                            refresh=True)  # drawn now: the next frame may replace it before a refresh tick

        while not progress.status.terminal:
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                break
            time.sleep(refresh_s)
            progress, panel = run.reconnecting(frame, outage)
            live.update(panel)
    return progress
