"""The ``swarm`` commands for operating a run once it started: ``agents`` (who did what, who did not
finish and why), ``retry`` (start the agents that did not finish over, in the same run), ``logs``
(events, transcripts, worker log lines) and ``redis-url`` (the embedded Redis's address, for Flower or a
worker); and :func:`follow`, shared with ``resume``: carrying a run to its end with local workers.
Added to :data:`swarm_tasks.cli.main` when that module loads (:data:`COMMANDS`)."""

from __future__ import annotations

from typing import Any

import click

from swarm_tasks.cli_common import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    console,
    emit_json,
    err,
    exit_for,
    fail,
    finish_review,
    guarded,
    interrupted,
    open_swarm,
    say_outage,
    settings_or_fail,
)
from swarm_tasks.display import console_text


def follow(swarm: Any, run: Any, as_json: bool, timeout: float | None) -> int:
    """Follow a run this command's workers carry until it ends, then say how it ended (a review: its
    summary and report) and exit with its code."""
    try:
        if as_json or not console.is_terminal:
            record = run.wait(timeout_s=timeout, on_outage=say_outage)
        else:
            from swarm_tasks.watch import watch as live

            live(run, console=err, timeout_s=timeout)
            record = run.record()
    except KeyboardInterrupt as exc:
        return interrupted(swarm, run, exc)
    except TimeoutError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if record.kind == "review":
        return finish_review(run, record, None, as_json, None)
    if as_json:
        emit_json({"run": run.id, "status": record.status.value, "reason": record.reason,
                   "outcome": record.outcome.model_dump(mode="json") if record.outcome else None})
    else:
        console.print(f"{record.kind} {run.id} {record.status.value}: {console_text(record.reason or '')}")
    return exit_for(record.status)


@click.command()
@click.argument("run_id")
@click.option("--failed", "failed_only", is_flag=True, help="Only agents that failed (not those stopped or cancelled).")
@click.option("--role", help="Only agents of this role (scanner, reviewer, ...).")
@click.option("--workers", type=click.IntRange(min=0), help="Local worker processes to start "
              "(default: 2 without SWARM_REDIS_URL, else 0: use the running fleet).")
@click.option("--detach", is_flag=True, help="Start them over and return (needs SWARM_REDIS_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no live view).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop following after this many seconds.")
@guarded
def retry(run_id: str, failed_only: bool, role: str | None, workers: int | None, detach: bool, as_json: bool,
          timeout: float | None) -> int:
    """Start a run's agents that did not finish (failed, stopped, cancelled; --failed: failed only) over,
    in the same run: an ended run is reopened, and when they end its end is decided again (a review's
    report is rebuilt from every agent). Follows the run until it ends; exits with its code."""
    from swarm_tasks.api import Swarm

    settings = settings_or_fail()
    if detach and settings.redis_url is None:
        fail("--detach needs SWARM_REDIS_URL: without it the agents run only as long as this command")
    with Swarm(settings, workers=0) as swarm:
        run = swarm.run(run_id)
        if swarm.handle.is_embedded or workers:
            swarm.start_workers(workers or 2)
        started = run.retry(failed_only=failed_only, role=role)
        if not started:
            what = "failed" if failed_only else "did not finish"
            status = run.status
            err.print(f"run {run_id} is {status.value}: no agent{f' of role {role}' if role else ''} {what}, "
                      "nothing to retry")
            return exit_for(status) if status.terminal else EXIT_OK
        err.print(f"run {run_id}: {len(started)} agent(s) started over" + (
            f"; follow it with `swarm watch {run_id}`" if detach else ""))
        if detach:
            emit_json({"run": run_id, "retried": [a.id for a in started]}) if as_json else None
            return EXIT_OK
        return follow(swarm, run, as_json, timeout)


@click.command()
@click.argument("run_id")
@click.option("--failed", "failed", is_flag=True, help="Only agents that failed.")
@click.option("--stopped", "stopped", is_flag=True, help="Only agents stopped (a budget, the loop guard) or cancelled.")
@click.option("--role", help="Only agents of this role (scanner, reviewer, planner, ...).")
@click.option("--json", "as_json", is_flag=True)
@guarded
def agents(run_id: str, failed: bool, stopped: bool, role: str | None, as_json: bool) -> int:
    """List a run's agents: role, status, what each works on, why one did not finish (--failed and
    --stopped narrow it down; together they list every agent that did not finish)."""
    from swarm_tasks.agent_list import FAILED, STOPPED

    wanted = (FAILED if failed else frozenset()) | (STOPPED if stopped else frozenset())
    with open_swarm() as swarm:
        return list_agents(swarm.run(run_id), wanted or None, role, as_json)


def list_agents(run: Any, statuses: Any, role: str | None, as_json: bool) -> int:
    """``swarm agents`` and ``swarm status --failed``: one listing."""
    from swarm_tasks.agent_list import UNFINISHED, render, select

    rows = select(run.agents(), statuses, role)
    if as_json:
        emit_json([r.model_dump(mode="json") for r in rows])
        return EXIT_OK
    what = "did not finish" if statuses == UNFINISHED else ", ".join(
        sorted(s.value for s in statuses)) if statuses else "all"
    console.print(render(run.id, rows, what=what + (f", role {role}" if role and statuses else "")))
    return EXIT_OK


@click.command()
@click.argument("run_id")
@click.argument("agent_id", required=False)
@click.option("--full", is_flag=True, help="Show whole messages and results (default: the first 2,000 characters).")
@click.option("--json", "as_json", is_flag=True)
@guarded
def logs(run_id: str, agent_id: str | None, full: bool, as_json: bool) -> int:
    """A run's event timeline and the lines of local worker logs that name it; with AGENT, that agent's
    transcript (messages, tool calls, results), events and worker log lines. Masked as reports are."""
    from swarm_tasks.agent_list import UNFINISHED
    from swarm_tasks.logs import collect, render
    from swarm_tasks.security import Redactor

    with open_swarm() as swarm:
        run = swarm.run(run_id)
        ctx = swarm.client.run(run_id)
        redactor = Redactor.from_settings(swarm.settings)
        log_dir = swarm.settings.state_dir / "logs"
        if agent_id is None:
            unfinished = {a.id for a in run.agents() if a.status in UNFINISHED}
            shown = collect(ctx, redactor, log_dir, agent_ids=unfinished)
        else:
            from coordination.errors import NotFound

            try:
                agent = ctx.agents.get(agent_id)
            except (NotFound, ValueError):
                fail(f"no agent {agent_id!r} in run {run_id!r} (list them with `swarm agents {run_id}`)")
            shown = collect(ctx, redactor, log_dir, agent)
        if as_json:
            emit_json(shown.as_json())
        else:
            console.print(render(shown, width=10**9 if full else 2000), soft_wrap=True)
        return EXIT_OK


@click.command("redis-url")
@guarded
def redis_url() -> int:
    """Print the URL (password included) of this state directory's embedded Redis while a swarm command,
    worker or dashboard keeps it running, for a worker or Flower to use as SWARM_REDIS_URL."""
    from coordination.local_server import SERVER_FILE, running_info

    settings = settings_or_fail()
    if settings.redis_url is not None:
        err.print("SWARM_REDIS_URL is set: that is the swarm's Redis (no embedded one is used)")
        click.echo(settings.redis_url.get_secret_value())
        return EXIT_OK
    assert settings.embedded_dir is not None
    info = running_info(settings.embedded_dir)
    if info is None:
        fail(f"no embedded Redis runs for {settings.state_dir} now: it runs while a swarm command, worker or "
             "dashboard started without SWARM_REDIS_URL does (with this SWARM_STATE_DIR), and keeps its data in "
             f"{settings.embedded_dir}", EXIT_RUN_FAILED)
    click.echo(info.url)  # the user's own secret, asked for; also in the mode-0600 server file
    err.print(f"(from {settings.embedded_dir / SERVER_FILE}, mode 0600; it listens on 127.0.0.1 only)")
    return EXIT_OK


COMMANDS = (agents, retry, logs, redis_url)
