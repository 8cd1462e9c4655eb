"""The live terminal view of a run (``swarm watch``, and ``swarm review`` while it runs)."""

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

_SEVERITIES = ("critical", "high", "medium", "low", "info")
_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}
_ACTIVE = ("queued", "ready", "running", "waiting")


def render(run: RunHandle, progress: Progress, elapsed_s: float) -> Panel:
    """One frame: agents by role, totals, a progress bar, tasks, findings, tokens and cost."""
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
        (f"{progress.status.value}", "bold green" if progress.status.value == "completed" else "bold"),
        f"  agents {ended}/{total} ended, ",
        (f"{sum(progress.agents.get(s, 0) for s in _ACTIVE)} active", "bold"),
        f"  ·  {progress.tokens:,} tokens  ·  ${progress.cost_usd:.4f}  ·  {elapsed_s:,.0f}s")
    findings = Text("findings (raw, before merging): ")
    for sev in _SEVERITIES:
        findings.append(f"{sev} {progress.counters.get(f'findings.{sev}', 0)}  ", style=_SEVERITY_STYLE[sev])
    tasks = Text("tasks: " + "  ".join(f"{s} {n}" for s, n in progress.tasks.items() if n) if any(
        progress.tasks.values()) else "tasks: none on the board", style="dim")
    by_status = Text("agents: " + "  ".join(f"{s} {n}" for s, n in progress.agents.items() if n), style="dim")
    return Panel(Group(status_line, bar, Text(""), roles, Text(""), findings, tasks, by_status),
                 title=f"swarm run {run.id}", subtitle=console_text(run.record().title[:80]) or None)


def watch(run: RunHandle, *, console: Console | None = None, refresh_s: float = 0.5,
          timeout_s: float | None = None) -> Progress:
    """Redraw the view until the run ends (or ``timeout_s``); returns the last snapshot."""
    console = console or Console()
    start = time.monotonic()
    progress = run.progress()
    with Live(render(run, progress, 0.0), console=console, refresh_per_second=4, transient=False) as live:
        while not progress.status.terminal:
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                break
            time.sleep(refresh_s)
            progress = run.progress()
            live.update(render(run, progress, time.monotonic() - start))
    return progress
