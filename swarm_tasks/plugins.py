"""Workflows as plug-ins: the one interface through which a workflow gives the worker what it adds.

A workflow (review, build, plain agent runs, or one from another distribution) declares, in one
:class:`Workflow` record, the run kind it owns, the idle hook that decides what comes next once a run
of that kind has no live agent, the tools its agents use, and the modules of its agent programs and
hooks (specs name those as ``module:function``, data any worker resolves).

A workflow is a package with a module ``plugin`` defining ``WORKFLOW = Workflow(...)``. A package of
swarm_tasks is found by that file alone (``swarm_tasks/<package>/plugin.py``); a workflow of another
distribution names its record under the entry point group ``swarm_tasks.workflows``::

    [project.entry-points."swarm_tasks.workflows"]
    docs = "docs_swarm.plugin:WORKFLOW"

So adding a workflow edits no file outside its package: the agent runtime, the worker and the Celery
app name none (``tests/test_layers.py`` pins that the agent runtime imports no workflow). Loading is
loud: a plug-in that cannot be imported, two workflows of one run kind or two tools of one name stop
the worker with the reason (the build tools were once imported under ``except ImportError``, which
would have dropped every one of them without a word).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from swarm_tasks.errors import PluginError

if TYPE_CHECKING:
    from swarm_tasks.agents.services import SwarmClient
    from swarm_tasks.agents.tools.base import Tool
    from swarm_tasks.runs import RunRecord

log = logging.getLogger("swarm_tasks.plugins")
ENTRY_POINT_GROUP = "swarm_tasks.workflows"
PLUGIN_MODULE = "plugin"

IdleHook = Callable[["SwarmClient", "RunRecord"], None]


@dataclass(frozen=True, slots=True)
class Workflow:
    """What one workflow adds to the swarm.

    ``on_idle`` is called (on the ``control`` queue) when a run of ``kind`` has no live agent left: it
    ends the run, or starts its next agents. ``tools`` join every worker's tool registry (a spec names
    the ones its agents may use). ``programs`` are the modules whose functions the workflow's specs name
    as programs and hooks: a worker imports them when it loads the workflow. ``warm_up`` is run once by a
    worker as it starts, before it says it is ready: what a run's first agents would otherwise pay for
    (imports done on first use, schemas built on first use), paid once per worker instead.
    """

    kind: str
    on_idle: IdleHook
    tools: tuple[Tool, ...] = ()
    programs: tuple[str, ...] = ()
    warm_up: Callable[[], None] | None = None


class Workflows:
    """The workflows a worker runs, by run kind."""

    def __init__(self, workflows: Iterable[Workflow]) -> None:
        self._by_kind: dict[str, Workflow] = {}
        for workflow in workflows:
            if workflow.kind in self._by_kind:
                raise PluginError(f"two workflow plug-ins declare the run kind {workflow.kind!r}")
            self._by_kind[workflow.kind] = workflow

    def kinds(self) -> list[str]:
        return sorted(self._by_kind)

    def get(self, kind: str) -> Workflow | None:
        return self._by_kind.get(kind)

    def warm_up(self) -> None:
        """Each workflow's warm-up; one that raises is logged and skipped (a worker still starts)."""
        for kind in self.kinds():
            warm = self._by_kind[kind].warm_up
            if warm is None:
                continue
            try:
                warm()
            except Exception as exc:
                log.warning("the %s workflow's warm-up raised %s: %s; its first agents pay for it instead", kind,
                            type(exc).__name__, exc)

    def tools(self) -> list[Tool]:
        """Every workflow's tools (names are checked for clashes where the registry is built)."""
        return [tool for kind in self.kinds() for tool in self._by_kind[kind].tools]


def discover() -> Workflows:
    """The workflows of swarm_tasks' own packages and of installed distributions' entry points, with
    their program modules imported."""
    found = [load(f"swarm_tasks.{path.parent.name}.{PLUGIN_MODULE}")
             for path in sorted(Path(__file__).parent.glob(f"*/{PLUGIN_MODULE}.py"))]
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.append(load(entry.value))
    return Workflows(found)


@cache
def installed() -> Workflows:
    """:func:`discover`, once per process (what a worker runs)."""
    return discover()


def load(target: str) -> Workflow:
    """The :class:`Workflow` named by ``target`` (``module`` holding ``WORKFLOW``, or ``module:attribute``),
    its program modules imported."""
    module_name, _, attribute = target.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attribute or "WORKFLOW", None)
        if not isinstance(value, Workflow):
            raise PluginError(f"workflow plug-in {target}: expected a Workflow record, found {type(value).__name__}")
        for program in value.programs:
            importlib.import_module(program)
    except PluginError:
        raise
    except Exception as exc:  # an import error, or one raised while the module ran
        raise PluginError(f"workflow plug-in {target} could not be loaded: {type(exc).__name__}: {exc}") from exc
    return value


__all__ = ["ENTRY_POINT_GROUP", "IdleHook", "Workflow", "Workflows", "discover", "installed", "load"]
