"""Program agents for the runtime tests: a program's outcome is a function of its input only, so the same
program fails (or dies) the same way on every redelivery, as poison input does."""

from __future__ import annotations

from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.program import ProgramContext, ProgramResult


class WorkerDied(BaseException):
    """Stands for a worker killed mid-turn (SIGKILL, out of memory): nothing after it runs or is recorded."""


def huge_result(pctx: ProgramContext) -> ProgramResult:
    """Ends with a result of about ``input`` bytes of JSON."""
    size = int(pctx.agent.input or 0)  # type: ignore[arg-type]
    return ProgramResult(result={"rows": [f"{i:08d}" + "x" * 990 for i in range(size // 1000)]})


def dies(pctx: ProgramContext) -> ProgramResult:
    """Takes its worker down with it every time (a crash on this input)."""
    raise WorkerDied(pctx.agent.id)


def stopped_once(pctx: ProgramContext) -> ProgramResult:
    """Its first turn is cut by a warm stop of its worker (an analyzer it ran got the stop signal); then it
    does its work."""
    from swarm_tasks.errors import StoppedBySignal

    if pctx.agent.attempts == 1:
        raise StoppedBySignal("ruff was stopped by SIGTERM (the worker is stopping)")
    return ProgramResult(result={"attempt": pctx.agent.attempts})


def relay(pctx: ProgramContext) -> ProgramResult:
    """Hands on to a successor while ``input`` > 0, as a build's codemod worker starts the next one as it ends."""
    left = int(pctx.agent.input or 0)  # type: ignore[arg-type]
    if left <= 0:
        return ProgramResult(result={"left": 0})
    return ProgramResult(result={"left": left}, children=[
        ChildRequest("relay", f"{left - 1} to go", input=left - 1, key=f"relay{left - 1}", detached=True)])


def parent_of_one(pctx: ProgramContext) -> ProgramResult:
    """Ends starting one sub-agent (a ``leaf``)."""
    return ProgramResult(result={"parent": True}, children=[ChildRequest("leaf", "be a leaf", key="leaf")])


def leaf(pctx: ProgramContext) -> ProgramResult:
    return ProgramResult(result={"leaf": True})
