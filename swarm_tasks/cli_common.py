"""What every ``swarm`` command shares: exit codes, the two consoles, failing with a message, the guard that
turns errors and stop signals into exit codes, reading settings, the client, and how a review's result is
printed (``swarm review`` and ``swarm resume`` of a review). :mod:`swarm_tasks.cli` and
:mod:`swarm_tasks.cli_runs` both import it; neither imports the other's helpers."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import redis
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from coordination.connection import redact_url
from coordination.errors import ConfigurationError, CoordinationError, RedisUnreachable
from swarm_tasks.display import console_text
from swarm_tasks.errors import GitError, JobSpecError, RunNotFound, SwarmError
from swarm_tasks.runs import RunRecord, RunStatus
from swarm_tasks.security import install_log_redaction
from swarm_tasks.settings import SwarmSettings, get_settings

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_UNREACHABLE = 5  # Redis did not answer: nothing was done (or the run goes on without this command)
EXIT_HANGUP, EXIT_TERMINATED = 128 + signal.SIGHUP, 128 + signal.SIGTERM  # 129, 143: as a shell reports them
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

console = Console()
# Messages are left to the terminal to wrap: rich would break a run id or a command in two, and a line
# copied from the terminal would no longer work.
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    err.print(f"[bold red]error:[/] {console_text(redact_url(message))}")
    sys.exit(code)


def settings_or_fail() -> SwarmSettings:
    try:
        settings = get_settings()
        install_log_redaction(settings)
        return settings
    except ValidationError as exc:
        fail(f"invalid SWARM_* setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        raise  # unreachable


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (sent by ``timeout``, systemd, ``docker stop``, a closed terminal): the command stops
    the way Ctrl-C stops it, local workers and embedded Redis included, and exits 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Stopped` in the main thread (the first one: what it starts,
    stopping workers and cancelling the run, must finish, so later ones are ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, _frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def interrupted_code(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + exc.signum if isinstance(exc, Stopped) else EXIT_INTERRUPTED


def guarded(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Turn our errors into clear messages and exit codes (never a traceback for bad input)."""
    def wrapper(*args: Any, **kwargs: Any) -> None:
        _stop_on_signals()
        try:
            code = fn(*args, **kwargs)
        except RunNotFound as exc:
            fail(str(exc))
        except (JobSpecError, GitError, ValidationError, ValueError) as exc:  # GitError: a bad remote or branch
            fail(str(exc))
        except RedisUnreachable as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        except ConfigurationError as exc:  # a bad URL, TLS file or credential: input to fix
            fail(str(exc))
        except (SwarmError, CoordinationError) as exc:
            fail(str(exc), EXIT_RUN_FAILED)
        except (redis.ConnectionError, redis.TimeoutError) as exc:  # away longer than SWARM_REDIS_RECONNECT_S
            fail(f"lost Redis: {type(exc).__name__}: {exc}; the run itself goes on in the workers if they reach it",
                 EXIT_UNREACHABLE)
        except redis.RedisError as exc:  # it refused a command (permissions, memory)
            fail(f"Redis refused a command: {type(exc).__name__}: {exc}", EXIT_RUN_FAILED)
        except KeyboardInterrupt as exc:
            err.print(f"stopped by {exc}" if isinstance(exc, Stopped) else "interrupted")
            sys.exit(interrupted_code(exc))
        sys.exit(code or EXIT_OK)
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def say_outage(waited_s: float, error: BaseException | None) -> None:
    """Tell the terminal, once each way, that Redis went away and came back (the run goes on meanwhile)."""
    if error is not None and waited_s == 0:
        err.print(f"[bold yellow]Redis unreachable[/] ({console_text(str(error))}): reconnecting, the run goes on "
                  "in the workers")
    elif error is None:
        err.print(f"Redis is back after {waited_s:.1f} s")


def interrupted(swarm: Any, run: Any, exc: KeyboardInterrupt) -> int:
    """Ctrl-C, SIGTERM or SIGHUP while following a run: a run that lives in this command's embedded Redis is
    cancelled (it could not outlive the command); one on a shared Redis goes on, to be watched or resumed.
    Leaving the ``with Swarm`` block then stops the local workers and the embedded Redis."""
    how = f"stopped by {exc}" if isinstance(exc, Stopped) else "interrupted"
    if swarm.handle.is_embedded:
        with contextlib.suppress(Exception):  # whatever happens here, the workers are stopped next
            run.cancel(f"{how} from the terminal" if how == "interrupted" else how)
            if swarm.cluster is not None:  # agents mid-turn finish it and wait for a step no worker will run:
                swarm.cluster.stop()  # end them too, so the run's record says what was not done
                run.cancel(orphaned=True)  # turns cut short by the stop (a slow model reply) end as well
        err.print(f"{how}: cancelled run {run.id} (no worker is left to run it). What it did is kept: "
                  f"`swarm report {run.id}` for a review's partial report, `swarm retry {run.id}` to finish it")
    else:
        err.print(f"{how}: left run {run.id} running; follow it with `swarm watch {run.id}`")
    return interrupted_code(exc)


def finish_review(run: Any, record: RunRecord, out: Path | None, as_json: bool, fail_on: str | None) -> int:
    """Print the review's result and say how it ended; the exit code follows the outcome first (a partial
    or failed review never exits 0, whatever --fail-on says), then the findings."""
    result = record.result if isinstance(record.result, dict) else {}
    outcome = record.outcome.model_dump(mode="json") if record.outcome else None
    if "report_dir" not in result:  # no report: cancelled, or the review could not even be merged
        if as_json:
            emit_json({"run": run.id, "status": record.status.value, "reason": record.reason, "outcome": outcome})
        else:
            err.print(f"[bold red]run {run.id} {record.status.value}[/]: {console_text(record.reason or '')}")
        return exit_for(record.status)
    report_dir = Path(str(result.get("report_dir", "")))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("report.md", "report.json", "report.sarif"):
            if (report_dir / name).exists():
                shutil.copy2(report_dir / name, out / name)
        if (out / "report.md").exists():  # its links lead to the repository from where it now is
            from swarm_tasks.review.report_markdown import render_markdown

            (out / "report.md").write_text(render_markdown(run.report(), directory=out))
        report_dir = out
    counts = result.get("by_severity") or {}
    if as_json:
        emit_json({"run": run.id, "status": record.status.value, "reason": record.reason, **result,
                   "report_dir": str(report_dir), "outcome": outcome})
    else:
        # Short lines, each its own fact: a long table title wrapped into broken lines at 80 columns.
        console.print(Text.assemble(("review ", "bold"), (run.id, "bold"), " ", (record.status.value, "bold")))
        console.print(f"{result.get('findings', 0)} findings (merged) · {result.get('files_scanned', 0)} of "
                      f"{result.get('files_inventoried', result.get('files_scanned', 0))} files scanned · "
                      f"{result.get('files_reviewed', 0)} reviewed · {result.get('agents', 0)} agents · "
                      f"{result.get('mode', '')}")
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for sev in SEVERITY_RANK.__reversed__():
            table.add_column(sev, justify="right")
        table.add_row(*(str(counts.get(sev, 0)) for sev in reversed(list(SEVERITY_RANK))))
        console.print(table)
        console.print(f"report: [bold]{console_text(str(report_dir / 'report.md'))}[/]  (also report.json, "
                      "report.sarif)", soft_wrap=True)
        if record.status is not RunStatus.COMPLETED:
            err.print(f"[bold {'red' if record.status is RunStatus.FAILED else 'yellow'}]review "
                      f"{record.status.value}[/]: {console_text(record.reason or '')}")
            err.print(f"list the agents that did not finish: swarm status {run.id} --failed")
    if record.status is not RunStatus.COMPLETED:
        return exit_for(record.status)
    if fail_on and any(n and SEVERITY_RANK[sev] >= SEVERITY_RANK[fail_on] for sev, n in counts.items()):
        return EXIT_FINDINGS
    return EXIT_OK


def open_swarm() -> Any:
    from swarm_tasks.api import Swarm

    # Without SWARM_REDIS_URL: the state directory's embedded Redis, running or started on its data.
    return Swarm(settings_or_fail(), workers=0)


def exit_for(status: RunStatus) -> int:
    """The exit code of a run that has ended (or is left as it is): 0 completed, 4 partial, 1 anything else."""
    if status is RunStatus.PARTIAL:
        return EXIT_PARTIAL
    return EXIT_OK if status is RunStatus.COMPLETED else EXIT_RUN_FAILED
