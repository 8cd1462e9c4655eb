"""The fleet as ``swarm workers`` shows it: each live worker process with its queues, agent steps in
flight and done, load and heartbeat age (what Flower's workers page shows, read from the swarm's own
registry, so it needs no event stream); each queue's messages and consumers; and a warning for every
queue a running run waits on that no live worker consumes.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from coordination.registry import Registration
from swarm_tasks.display import console_text
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import QUEUES
from swarm_tasks.worker.consumers import QueueNeed, consumers_by_queue, queue_needs

STALE_BEAT_S = 10.0  # a worker beats every 5 s: older than this, it is late (busy, or dying)


def worker_rows(live: list[Registration], now: float) -> list[dict[str, Any]]:
    """One dict per live worker (``swarm workers --json``)."""
    rows = []
    for w in live:
        meta = w.meta
        rows.append({"worker": meta.get("celery_name", w.id), "node": w.node, "host": meta.get("host"),
                     "pid": meta.get("pid"), "queues": list(w.capabilities), "heartbeat_at": w.heartbeat_at,
                     "heartbeat_age_s": round(max(0.0, now - w.heartbeat_at), 1),
                     "active": _int(meta.get("active")), "processed": _int(meta.get("processed")),
                     "load": [float(x) for x in (meta.get("load") or "").split()],
                     "started_at": float(meta["started_at"]) if meta.get("started_at") else None})
    return rows


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def queue_rows(swarm: Any, live: list[Registration]) -> list[dict[str, Any]]:
    """Each queue: its consumers and, when the broker is the swarm's Redis, its ready and reserved messages."""
    readers = consumers_by_queue(live)
    queues = list(dict.fromkeys([*QUEUES, *sorted(readers)]))
    depths = {}
    settings = swarm.settings
    if settings.broker_url is None and not settings.cluster:  # else the messages live in another broker
        from swarm_tasks.worker.flower_metrics import queue_depths

        depths = queue_depths(swarm.handle.client, queues)
    rows = []
    for queue in queues:
        depth = depths.get(queue)
        rows.append({"queue": queue, "consumers": sorted(readers.get(queue, [])),
                     "ready": depth.ready if depth else None, "reserved": depth.reserved if depth else None})
    return rows


def starved_runs(swarm: Any, limit: int = 200) -> list[tuple[str, QueueNeed]]:
    """(run, need) for every queue a running run waits on that no live worker consumes."""
    from swarm_tasks.worker.consumers import live_workers

    live = live_workers(swarm.client)
    found = []
    for run in swarm.client.runs.list(limit=limit):
        if run.status is RunStatus.RUNNING:
            found += [(run.id, n) for n in queue_needs(swarm.client, swarm.client.run(run.id), live) if n.starved]
    return found


def render_fleet(workers: list[dict[str, Any]], queues: list[dict[str, Any]],
                 starved: list[tuple[str, QueueNeed]]) -> Group:
    parts: list[Any] = []
    if workers:
        table = Table(box=None, pad_edge=False, title="workers", title_justify="left", title_style="bold")
        table.add_column("worker", no_wrap=True)
        table.add_column("queues")
        table.add_column("active", justify="right")
        table.add_column("done", justify="right")
        table.add_column("load", justify="right")
        table.add_column("beat", justify="right")
        for w in workers:
            age = float(w["heartbeat_age_s"])
            table.add_row(console_text(str(w["worker"])), ",".join(w["queues"]), _n(w["active"]), _n(w["processed"]),
                          f"{w['load'][0]:.2f}" if w["load"] else "-",
                          Text(f"{age:.0f} s ago", style="yellow" if age > STALE_BEAT_S else ""))
        parts.append(table)
    else:
        parts.append(Text("no live workers", style="bold yellow"))
    qtable = Table(box=None, pad_edge=False, title="queues", title_justify="left", title_style="bold")
    qtable.add_column("queue", no_wrap=True)
    qtable.add_column("consumers", justify="right")
    qtable.add_column("ready", justify="right")
    qtable.add_column("reserved", justify="right")
    for q in queues:
        idle = not q["consumers"] and bool(q["ready"] or q["reserved"])
        qtable.add_row(Text(q["queue"], style="bold red" if idle else ""), str(len(q["consumers"])),
                       _n(q["ready"]), _n(q["reserved"]))
    parts += [Text(""), qtable]
    for run_id, need in starved:
        parts.append(Text(f"warning: run {run_id}: {need.warning()}", style="bold yellow"))
    return Group(*parts)


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


__all__ = ["queue_rows", "render_fleet", "starved_runs", "worker_rows"]
