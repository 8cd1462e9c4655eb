"""The ``swarm`` command line: review, build, status, watch, cancel, resume, report, workers, dashboard.

Exit codes scripts can trust (the README has the table): 0 the run completed (every agent it needed finished),
1 the run failed or was cancelled, 2 bad input (invalid arguments or job, unknown run), 3 findings at or above
``--fail-on`` in a completed review, 4 the run ended partial (some of its work was not done: a partial review
never passes a ``--fail-on`` gate), 5 Redis unreachable (the command could not reach it, or lost it for longer
than ``SWARM_REDIS_RECONNECT_S``), 130 interrupted (Ctrl-C), 143 stopped by SIGTERM, 129 by SIGHUP.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

from coordination.connection import redact_url
from coordination.errors import ConfigurationError
from swarm_tasks.agent_list import UNFINISHED
from swarm_tasks.cli_common import (
    EXIT_OK,
    EXIT_RUN_FAILED,
    SEVERITY_RANK,
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
from swarm_tasks.display import console_text, duration
from swarm_tasks.phases import phase_rows
from swarm_tasks.settings import SwarmSettings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run swarms of long-horizon AI agents on Celery and Redis."""


# -- review ---------------------------------------------------------------------------------------

@main.command()
@click.argument("source")
@click.option("--ref", help="Branch, tag or commit when SOURCE is a git URL.")
@click.option("--model", help="litellm model for every role (scanner, reviewer, subreviewer).")
@click.option("--scanner-model", help="Model for the quick scan (a cheap one).")
@click.option("--reviewer-model", help="Model for the four specialist reviewers.")
@click.option("--subreviewer-model", help="Model for the deeper sub-reviewers.")
@click.option("--workers", type=click.IntRange(min=0), help="Local worker processes to start "
              "(default: 2 without SWARM_REDIS_URL, else 0: use the running fleet).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Agent turns per local worker process.")
@click.option("--max-agents", type=click.IntRange(min=1), help="Agents the run may start in total.")
@click.option("--max-concurrent", type=click.IntRange(min=1), help="Agents alive at once.")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), help="Dollars the run may spend.")
@click.option("--dependency-depth", type=click.IntRange(min=0), help="Import hops to follow from flagged files.")
@click.option("--subreview-depth", type=click.IntRange(min=0), help="Levels of sub-reviewers.")
@click.option("--since", help="Review only files changed since this git ref (its merge base with HEAD), "
              "following their imports as usual.")
@click.option("--baseline", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="An earlier report.json: report only findings it does not have.")
@click.option("--honor-noqa", is_flag=True, help="Honour the code's own # noqa and # nosec comments "
              "(# swarm: ignore[RULE] reason always is).")
@click.option("--include-vendored", is_flag=True, help="Review vendored and generated code too.")
@click.option("--min-severity", type=click.Choice(list(SEVERITY_RANK)),
              help="Lowest severity the Markdown summary lists (default medium; the rest are counted).")
@click.option("--link-base", help="URL prefix for file links in the Markdown report, e.g. "
              "https://github.com/OWNER/REPO/blob/COMMIT/")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Copy the reports into this directory.")
@click.option("--detach", is_flag=True, help="Submit and print the run id without waiting (needs SWARM_REDIS_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no live view).")
@click.option("--fail-on", type=click.Choice(list(SEVERITY_RANK)), help="Exit 3 if a finding is this severe or worse.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Give up waiting after this many seconds.")
@guarded
def review(source: str, ref: str | None, model: str | None, scanner_model: str | None, reviewer_model: str | None,
           subreviewer_model: str | None, workers: int | None, concurrency: int | None, max_agents: int | None,
           max_concurrent: int | None, max_cost: float | None, dependency_depth: int | None,
           subreview_depth: int | None, since: str | None, baseline: Path | None, honor_noqa: bool,
           include_vendored: bool, min_severity: str | None, link_base: str | None, out: Path | None, detach: bool,
           as_json: bool, fail_on: str | None, timeout: float | None) -> int:
    """Deep review of a repository (a path or a git URL) by a swarm of agents; one merged report."""
    from swarm_tasks.api import Swarm

    settings = settings_or_fail()
    if detach and settings.redis_url is None:
        fail("--detach needs SWARM_REDIS_URL: without it the swarm lives only as long as this command")
    models = {role: m for role, m in (("scanner", scanner_model or model), ("reviewer", reviewer_model or model),
                                      ("subreviewer", subreviewer_model or model)) if m}
    limits = {k: v for k, v in (("max_agents", max_agents), ("max_concurrent_agents", max_concurrent),
                                ("max_cost_usd", max_cost)) if v is not None}
    config = {k: v for k, v in (("dependency_depth", dependency_depth),
                                ("subreview_max_depth", subreview_depth), ("since", since),
                                ("summary_min_severity", min_severity), ("link_base", link_base)) if v is not None}
    config.update({k: True for k, v in (("honor_noqa", honor_noqa), ("include_vendored", include_vendored)) if v})
    if baseline is not None:
        from swarm_tasks.review.report_json import baseline_fingerprints

        config.update(baseline_fingerprints=baseline_fingerprints(baseline), baseline_label=str(baseline))
    check_review_job(source, ref, models, config, limits)  # before any server or worker starts
    from swarm_tasks.review.job import resolve_models

    models = resolve_models(models, settings)  # SWARM_MODELS / SWARM_MODEL for roles without a flag
    check_models_here(models, settings, limits, workers)
    with Swarm(settings, workers=workers, concurrency=concurrency) as swarm:
        if not as_json:
            where = "embedded Redis and local workers" if swarm.handle.is_embedded else redact_url(swarm.handle.url)
            mode = "model review: " + ", ".join(f"{r}={m}" for r, m in models.items()) if models else (
                "deterministic analysis (no model configured: analyzers only)")
            err.print(f"swarm review of [bold]{redact_url(source)}[/] on {where} — {mode}")
        run = swarm.review(source, ref=ref, models=models, config=config, limits=limits)
        print_warnings(run.warnings)
        if detach:
            emit_json({"run": run.id}) if as_json else console.print(run.id)
            return EXIT_OK
        try:
            if as_json or not console.is_terminal:
                record = run.wait(timeout_s=timeout, on_outage=say_outage)
            else:
                from swarm_tasks.watch import watch

                watch(run, console=err, timeout_s=timeout)
                record = run.record()
        except KeyboardInterrupt as exc:
            return interrupted(swarm, run, exc)
        except TimeoutError as exc:
            fail(str(exc), EXIT_RUN_FAILED)
        return finish_review(run, record, out, as_json, fail_on)


def check_models_here(models: dict[str, str], settings: SwarmSettings, limits: dict[str, object],
                      workers: int | None) -> None:
    """Refuse at once, before any server or worker starts, a run whose models have no key here, when the
    workers will be started here (they get this process's provider variables). A remote fleet is
    asked by the API when the run is submitted."""
    if models and (settings.redis_url is None or workers):
        from swarm_tasks.models.preflight import check_models, cost_capped

        check_models(models, settings, cost_capped=cost_capped(settings, limits))


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"[bold yellow]warning:[/] {warning}")


def check_review_job(source: str, ref: str | None, models: dict[str, str], config: dict[str, object],
                     limits: dict[str, object]) -> None:
    from swarm_tasks.review.job import ReviewJob, check_since
    from swarm_tasks.sources import SourceSpec, check_source

    check_source(SourceSpec(location=source, ref=ref))
    job = ReviewJob.parse({"source": {"location": source, "ref": ref}, "config": config, "models": models,
                           "limits": limits})
    check_since(job)


# -- build ----------------------------------------------------------------------------------------

@main.command()
@click.argument("repo")
@click.option("--goal", required=True, help="What the swarm should achieve.")
@click.option("--branch", default="main", show_default=True, help="The one branch every worker pushes to.")
@click.option("--check", "check_command", help="The full check: run by the judge on the tip once per cycle, "
              "and before each landing when no --check-changed is given.")
@click.option("--check-changed", help="Quick check before each landing on the files the change touched, "
              "{paths} standing for them, e.g. 'ruff check {paths}'.")
@click.option("--codemod", help="Deterministic mode: a command run per file, e.g. 'ruff format {path}'.")
@click.option("--files", "file_globs", multiple=True, help="Globs of files for --codemod (default: the files the "
              "command handles: a known tool's, else the kinds it worked on when tried first).")
@click.option("--codemod-ok-exit", "ok_exit", type=int, multiple=True, help="An exit status besides 0 that means "
              "the codemod succeeded (pyupgrade exits 1 when it rewrote a file).")
@click.option("--union-merge", multiple=True, help="Glob of files many tasks append to, merged with git's union "
              "driver (default: changelogs, CHANGES, HISTORY, NEWS).")
@click.option("--no-mechanical-merge", is_flag=True, help="Send every rebase conflict to a model (by default two "
              "insertions at one place are kept both, without one).")
@click.option("--model", help="litellm model for every role.")
@click.option("--planner-model")
@click.option("--worker-model")
@click.option("--judge-model")
@click.option("--max-cycles", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--builders", type=click.IntRange(min=1), default=4, show_default=True,
              help="Worker agents working at once.")
@click.option("--workers", type=click.IntRange(min=0), help="Local worker processes to start.")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True))
@click.option("--detach", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True))
@guarded
def build(repo: str, goal: str, branch: str, check_command: str | None, check_changed: str | None,
          codemod: str | None, file_globs: tuple[str, ...], ok_exit: tuple[int, ...], union_merge: tuple[str, ...],
          no_mechanical_merge: bool, model: str | None, planner_model: str | None, worker_model: str | None,
          judge_model: str | None, max_cycles: int, builders: int, workers: int | None, max_cost: float | None,
          detach: bool, as_json: bool, timeout: float | None) -> int:
    """Build swarm: planners, workers and a judge, all pushing to one branch of REPO (path or git URL)."""
    from swarm_tasks.api import Swarm

    settings = settings_or_fail()
    models = {r: m for r, m in (("planner", planner_model or model), ("worker", worker_model or model),
                                ("judge", judge_model or model), ("resolver", worker_model or model)) if m}
    job: dict[str, object] = {"goal": goal, "branch": branch, "check": check_command, "codemod": codemod,
                              "files": list(file_globs), "models": models, "max_cycles": max_cycles,
                              "builders": builders}
    if max_cost is not None:
        job["limits"] = {"max_cost_usd": max_cost}
    from swarm_tasks.builder.job import UNION_DEFAULT, BuildJob, BuildMode, resolve_models, validate_job

    job.update({"check_changed": check_changed, "codemod_changed_exit": list(ok_exit),
                "union_merge": [*UNION_DEFAULT, *union_merge], "mechanical_merge": not no_mechanical_merge})

    spec = BuildJob.parse({"repo": repo, **job})
    validate_job(spec, settings)  # before any server or worker starts
    if spec.mode is BuildMode.MODEL:
        check_models_here(resolve_models(spec, settings), settings, dict(job.get("limits") or {}), workers)
    with Swarm(settings, workers=workers) as swarm:
        run = swarm.build(repo, **job)
        print_warnings(run.warnings)
        if detach:
            emit_json({"run": run.id}) if as_json else console.print(run.id)
            return EXIT_OK
        try:
            if as_json or not console.is_terminal:
                record = run.wait(timeout_s=timeout, on_outage=say_outage)
            else:
                from swarm_tasks.watch import watch

                watch(run, console=err, timeout_s=timeout)
                record = run.record()
        except KeyboardInterrupt as exc:
            return interrupted(swarm, run, exc)
        if as_json:
            emit_json({"run": run.id, "status": record.status.value, "reason": record.reason,
                       "result": record.result})
        else:
            console.print(f"build {run.id} {record.status.value}: {console_text(record.reason or '')}")
            console.print_json(data=record.result) if record.result else None
        return exit_for(record.status)


# -- reading and steering runs --------------------------------------------------------------------


@main.command()
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option("--failed", "failed", is_flag=True, help="List the run's agents that did not finish, with why.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@guarded
def status(run_id: str | None, as_json: bool, failed: bool, limit: int) -> int:
    """Show one run (its outcome, reason, elapsed time and progress; a build's cycles, judge decisions and
    hot spots), list its agents that did not finish (--failed), or list recent runs."""
    from swarm_tasks.watch import render

    with open_swarm() as swarm:
        if run_id is None:
            if failed:
                fail("--failed needs a RUN_ID")
            runs = swarm.runs(limit=limit)
            rows = [{"id": r.id, "kind": r.kind, "status": r.status.value, "title": redact_url(r.title),
                     "created_at": r.created_at, "elapsed_s": round(swarm.client.runs.elapsed_s(r), 3),
                     "reason": r.reason} for r in runs]
            if as_json:
                emit_json(rows)
                return EXIT_OK
            # The id is never cut (it is what every other command takes); title and reason give way.
            table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
            cells = [(row["id"], row["kind"], row["status"], duration(row["elapsed_s"]), console_text(row["title"]),
                      console_text((row["reason"] or "")[:200])) for row in rows]
            for i, name in enumerate(("run", "kind", "status", "elapsed")):
                table.add_column(name, no_wrap=True, justify="right" if name == "elapsed" else "left",
                                 min_width=max([len(name), *(len(c[i]) for c in cells)]))
            table.add_column("title", no_wrap=True, overflow="ellipsis", max_width=60)
            table.add_column("reason", no_wrap=True, overflow="ellipsis", max_width=80)
            for cell in cells:
                table.add_row(*cell)
            console.print(table if rows else "no runs yet")
            return EXIT_OK
        run = swarm.run(run_id)
        if failed:
            from swarm_tasks.cli_runs import list_agents

            return list_agents(run, UNFINISHED, None, as_json)
        progress = run.progress()
        if as_json:
            emit_json(snapshot(run, progress))
        else:
            console.print(render(run, progress))
        return EXIT_OK


def snapshot(run: Any, progress: Any) -> dict[str, object]:
    """One run's progress as one JSON object (``status --json``, ``watch --json``): its outcome and reason,
    real elapsed time, agents and tasks by status, usage; for a build its cycles and hot spots too."""
    record = run.record()
    data: dict[str, object] = {
        "id": record.id, "kind": record.kind, "status": record.status.value, "title": redact_url(record.title),
        "reason": record.reason, "outcome": record.outcome.model_dump(mode="json") if record.outcome else None,
        "created_at": record.created_at, "ended_at": record.ended_at,
        "elapsed_s": round(run.client.runs.elapsed_s(record), 3), "agents": progress.agents, "roles": progress.roles,
        "tasks": progress.tasks, "counters": progress.counters, "tokens": progress.tokens,
        "cost_usd": progress.cost_usd, "live_tokens": progress.live_tokens, "live_cost_usd": progress.live_cost_usd,
        "phases": [r.as_json() for r in phase_rows(record.kind, progress.phases, progress.status)],
        "findings": findings_count(record.result, progress.counters), "result": record.result}
    if not record.status.terminal:  # a queue its agents wait on that no worker consumes: it would never end
        needs = run.queue_needs()
        data["queues"] = [n.as_json() for n in needs]
        data["warnings"] = [n.warning() for n in needs if n.starved]
    if record.kind == "build":
        data["cycles"] = run.cycles()
        data["hot_spots"] = [[path, n] for path, n in run.hot_spots()]
    return data


def findings_count(result: object, counters: dict[str, int]) -> dict[str, object]:
    """One severity count: the report's merged one once it is written; before, the raw counts, said so."""
    merged = result.get("by_severity") if isinstance(result, dict) else None
    if isinstance(merged, dict):
        return {"merged": True, "by_severity": merged}
    return {"merged": False, "by_severity": {s: counters.get(f"findings.{s}", 0) for s in reversed(SEVERITY_RANK)}}


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="No live view: wait for the run to end (or --timeout), "
              "then print its progress as one JSON object.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop watching after this many seconds.")
@guarded
def watch(run_id: str, as_json: bool, timeout: float | None) -> int:
    """Live view of a run until it ends. Exit 0 if it completed, 4 if it ended partial, 1 if it failed, was
    cancelled or is still going when --timeout ends the watch."""
    from swarm_tasks.watch import watch as live

    with open_swarm() as swarm:
        run = swarm.run(run_id)
        if as_json:
            with contextlib.suppress(TimeoutError):  # the snapshot shows where it is
                run.wait(timeout_s=timeout, on_outage=say_outage)
            emit_json(snapshot(run, run.progress()))
        else:
            live(run, console=console, timeout_s=timeout)
        return exit_for(run.status)


@main.command()
@click.argument("run_id")
@click.option("--reason", default="cancelled by user", show_default=True)
@guarded
def cancel(run_id: str, reason: str) -> int:
    """Cancel a run: nothing new starts, agents end at their next step. Exit 0 once cancelled; a run
    that had already ended is left as it is (exit 0 if it completed, 4 if partial, 1 if it failed or was
    cancelled)."""
    with open_swarm() as swarm:
        run = swarm.run(run_id)
        if run.cancel(reason):
            console.print(f"run {run_id} cancelled")
            return EXIT_OK
        status = run.status
        console.print(f"run {run_id} had already ended: {status.value}")
        return exit_for(status)


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Without SWARM_REDIS_URL: print the result as JSON.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop following after this many seconds.")
@guarded
def resume(run_id: str, as_json: bool, timeout: float | None) -> int:
    """Push a stalled run on (after workers died or Redis restarted). Without SWARM_REDIS_URL (a run of
    the embedded Redis whose command is gone) it starts local workers and follows the run to its end. An
    ended run is left as it is: exit 0 if it completed, 4 if partial, 1 if it failed or was cancelled."""
    with open_swarm() as swarm:
        run = swarm.run(run_id)
        status = run.status
        if status.terminal:
            console.print(f"run {run_id} is {status.value}: nothing to resume")
            return exit_for(status)
        if swarm.handle.is_embedded:
            swarm.start_workers()
        moved = run.resume()
        (err if as_json else console).print(f"run {run_id}: {moved} agents re-sent")
        if not swarm.handle.is_embedded:
            return EXIT_OK
        from swarm_tasks.cli_runs import follow

        return follow(swarm, run, as_json, timeout)


@main.command()
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "sarif"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@guarded
def report(run_id: str, fmt: str, out: Path | None) -> int:
    """Print (or write) the merged report of a finished review."""
    from swarm_tasks.review.report_json import render_json
    from swarm_tasks.review.report_markdown import render_markdown
    from swarm_tasks.review.report_sarif import render_sarif

    with open_swarm() as swarm:
        data = swarm.run(run_id).report()
        where = out.parent if out is not None else Path.cwd()  # Markdown links lead from there to the files
        text = render_markdown(data, directory=where) if fmt == "md" else {
            "json": render_json, "sarif": render_sarif}[fmt](data)
        if out is not None:
            out.write_text(text)
            console.print(f"wrote {out}")
        else:
            click.echo(text)
        return EXIT_OK


@main.command()
@click.option("--json", "as_json", is_flag=True)
@guarded
def workers(as_json: bool) -> int:
    """Live worker processes (queues, steps in flight and done, load, heartbeat age, as Flower shows them),
    the queues' messages and consumers, and a warning for each queue a running run waits on that no live
    worker consumes."""
    from swarm_tasks.worker.consumers import live_workers
    from swarm_tasks.worker.fleet import queue_rows, render_fleet, starved_runs, worker_rows

    with open_swarm() as swarm:
        live = live_workers(swarm.client)
        rows = worker_rows(live, swarm.client.records.now())
        if as_json:
            emit_json(rows)
            return EXIT_OK
        console.print(render_fleet(rows, queue_rows(swarm, live), starved_runs(swarm)))
        return EXIT_OK


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@guarded
def dashboard(host: str, port: int) -> int:
    """Serve the live view of the swarm (the agent tree, task board and counters) in a browser."""
    from swarm_tasks.dashboard import serve
    from swarm_tasks.dashboard.guard import check_bind

    settings = settings_or_fail()
    try:
        check_bind(host, settings)  # no credential beyond loopback: refused before anything listens
    except ConfigurationError as exc:  # bad input: exit 2 like any other
        fail(str(exc))
    # Said once Redis answered: a page that cannot reach the swarm is no page to send anyone to.
    serve(settings, host=host, port=port, on_ready=lambda url: err.print(
        f"swarm dashboard on http://{host}:{port}/ (Redis {redact_url(url)})"))
    return EXIT_OK


if __name__ == "__main__":  # python -m swarm_tasks.cli: run the package's copy, the one the commands below join
    from swarm_tasks.cli import main as package_main

    package_main()
else:
    from swarm_tasks.cli_runs import COMMANDS  # they use this module's helpers, all defined above

    for _command in COMMANDS:
        main.add_command(_command)
