"""The layers of ARCHITECTURE.md, pinned: no import cycles, and each layer imports only what lies below it.

Read from the source (every ``import`` a module runs, function-level ones included: a lazy import that
closes a cycle is still a cycle; imports under ``if TYPE_CHECKING:`` are left out, they never run). A
workflow is any package of swarm_tasks with a ``plugin`` module (see swarm_tasks/plugins.py), so a new
workflow falls under these rules without being named here.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("coordination", "swarm_tasks")
CELERY = ("celery", "kombu", "flower")
WORKER = ("swarm_tasks.celery", "swarm_tasks.worker")
BASE = ("swarm_tasks.settings", "swarm_tasks.errors", "swarm_tasks.runs", "swarm_tasks.outcome", "swarm_tasks.signing",
        "swarm_tasks.security", "swarm_tasks.display", "swarm_tasks.sources")
FRONT = ("swarm_tasks.api", "swarm_tasks.cli", "swarm_tasks.cli_runs", "swarm_tasks.dashboard")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module name ``node`` imports at run time (``from a import b`` gives ``a.b`` where that is a module)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child):
            for other in child.orelse:
                yield from _imports(other, module, is_package)
            continue
        if isinstance(child, ast.Import):
            yield from (alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:  # relative: from the module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[:len(package) - child.level + 1] + ([base] if base else []))
            named = [f"{base}.{alias.name}" for alias in child.names if f"{base}.{alias.name}" in modules()]
            yield from named or [base]
        yield from _imports(child, module, is_package)


@cache
def graph() -> dict[str, frozenset[str]]:
    """Each module of ours -> every module it imports (ours and third-party)."""
    return {name: frozenset(_imports(ast.parse(path.read_text()), name, path.name == "__init__.py"))
            for name, path in modules().items()}


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def workflows() -> tuple[str, ...]:
    return tuple(sorted(f"swarm_tasks.{p.parent.name}" for p in (ROOT / "swarm_tasks").glob("*/plugin.py")))


def violations(layer: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{name} imports {target}" for name, targets in graph().items() if under(name, layer)
                  for target in targets if under(target, forbidden))


def cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), among our modules."""
    ours = {name: sorted(t for t in targets if t in modules()) for name, targets in graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in ours[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (top := stack.pop()) != node:
                group.append(top)
            if group:
                found.append(sorted([node, *group]))

    for name in sorted(ours):
        if name not in index:
            visit(name)
    return found


def test_the_graph_is_read():  # the rules below are not vacuous
    assert len(modules()) > 150 and set(workflows()) >= {"swarm_tasks.review", "swarm_tasks.builder"}
    assert "swarm_tasks.agents.turn" in graph()["swarm_tasks.agents.runner"]
    assert "swarm_tasks.agents.tools.files" in graph()["swarm_tasks.agents.toolset"]  # a function-level import
    assert "swarm_tasks.models.gateway" not in graph()["swarm_tasks.agents.services"]  # only under TYPE_CHECKING


def test_no_import_cycles():
    assert cycles() == []


def test_coordination_knows_nothing_of_swarm_tasks_celery_or_models():
    assert violations(("coordination",), ("swarm_tasks", *CELERY, "litellm")) == []


def test_the_base_imports_nothing_above_it():
    above = ("swarm_tasks.host", "swarm_tasks.models", "swarm_tasks.agents", "swarm_tasks.plugins",
             "swarm_tasks.launch")
    assert violations(BASE, (*above, *WORKER, *workflows(), *FRONT)) == []


def test_the_host_layer_imports_no_workflow_agent_runtime_worker_or_celery():
    assert violations(("swarm_tasks.host",), (*workflows(), "swarm_tasks.agents", *WORKER, *FRONT, *CELERY)) == []


def test_the_agent_runtime_imports_no_workflow_worker_or_celery():
    assert violations(("swarm_tasks.agents",), (*workflows(), *WORKER, *FRONT, *CELERY)) == []


def test_models_import_no_agent_runtime_or_workflow():
    assert violations(("swarm_tasks.models",), (*workflows(), "swarm_tasks.agents", *WORKER, *FRONT, *CELERY)) == []


def test_the_worker_and_the_plugin_interface_name_no_workflow():
    assert violations((*WORKER, "swarm_tasks.plugins"), workflows()) == []


def test_a_workflow_imports_no_other_workflow_nor_the_front_ends():
    for workflow in workflows():
        others = tuple(w for w in workflows() if w != workflow)
        assert violations((workflow,), (*others, *FRONT, "swarm_tasks.celery")) == []


def _dist(requirement: str) -> str:
    return re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


# Imported for their error types and models, always installed with (and pinned by) what we declare.
THROUGH = {"amqp": "kombu", "pydantic-core": "pydantic", "openai": "litellm"}


def test_every_package_imported_at_run_time_is_declared_as_a_runtime_dependency():
    # jsonschema was imported by the agent runtime but declared only for tests (installed through litellm's
    # requirements, which may drop it in any release)
    declared = {_dist(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    owners = importlib.metadata.packages_distributions()
    imported = {target.split(".")[0] for targets in graph().values() for target in targets}
    third_party = imported - set(sys.stdlib_module_names) - {*PACKAGES, "bench"}
    dists = {_dist(d) for top in third_party for d in owners.get(top, [top])}
    assert "jsonschema" in dists and {THROUGH[d] for d in dists & THROUGH.keys()} <= declared
    assert sorted(dists - declared - THROUGH.keys()) == []
