"""Workflows as plug-ins: the worker finds every workflow by its plug-in alone (swarm_tasks' own by their
``plugin`` module, another distribution's by its entry point), gives their agents their tools and runs
their idle hooks; a broken or clashing plug-in stops the worker with the reason."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from coordination.connection import connect
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.spec import AgentSpec
from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.specs import build_specs
from swarm_tasks.errors import PluginError
from swarm_tasks.launch import start_agents
from swarm_tasks.plugins import Workflow, Workflows, discover, load
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.specs import review_specs
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.sources import SourceSpec
from swarm_tasks.worker.runtime import WorkerRuntime
from tests.runtime.harness import LocalScheduler, drain

# A workflow of another distribution, as a user would ship it: a package and the entry point that names it.
WORDCOUNT_PLUGIN = '''
    from typing import Any

    from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult
    from swarm_tasks.launch import all_agents
    from swarm_tasks.plugins import Workflow
    from swarm_tasks.runs import RunStatus

    class CountArgs(ToolArgs):
        path: str


    class CountWords(Tool):
        name = "count_words"
        description = "Count the words of a file of your workspace."
        Args = CountArgs

        def run(self, args: Any, ctx: ToolContext) -> ToolResult:
            return ToolResult(str(len((ctx.workspace / args.path).read_text().split())))


    def on_idle(services, run):
        roots = [a for a in all_agents(services.run(run.id)) if a.parent is None]
        services.runs.transition(run.id, RunStatus.COMPLETED, result={"words": [a.result["result"] for a in roots]},
                                 only_from=(RunStatus.RUNNING,))


    WORKFLOW = Workflow(kind="wordcount", on_idle=on_idle, tools=(CountWords(),), programs=("wordcount_swarm.script",))
'''
WORDCOUNT_SCRIPT = '''
    from swarm_tasks.models.script import ScriptedCall, Step


    def counter(messages, _tools):
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if turn == 0:
            return Step(tool_calls=[ScriptedCall(name="write_file", arguments={"path": "a.txt", "content": "one two"})])
        if turn == 1:
            return Step(tool_calls=[ScriptedCall(name="count_words", arguments={"path": "a.txt"})])
        words = int(messages[-1]["content"])
        return Step(tool_calls=[ScriptedCall(name="finish", arguments={"summary": "counted", "result": words})])
'''


def distribution(root: Path, package: str, files: dict[str, str], entry_point: str) -> None:
    """An installed distribution on ``root`` (a sys.path entry): its package and its metadata."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    for name, text in files.items():
        (root / package / name).write_text(textwrap.dedent(text))
    info = root / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[swarm_tasks.workflows]\n{package} = {entry_point}\n")


@pytest.fixture
def installed_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root


def test_swarm_tasks_workflows_are_found_by_their_plugins_and_their_specs_tools_exist():
    workflows = discover()
    assert workflows.kinds() == ["agents", "build", "review"]
    runtime_tools = WorkerRuntime.tool_registry(workflows)
    review = ReviewJob(source=SourceSpec(location="."),
                       models=dict.fromkeys(("scanner", "reviewer", "subreviewer"), "m"))
    build = BuildJob(repo="/nowhere", goal="g")
    specs = [*review_specs(review), *build_specs(build, dict.fromkeys(("planner", "worker", "judge"), "m"))]
    named = {tool for spec in specs for tool in spec.tools}
    assert {"scan_file", "commit_and_push"} <= named  # one tool of each workflow, at least
    assert named <= set(runtime_tools.names())


def test_a_workflow_of_another_distribution_runs_with_its_tool_and_idle_hook(installed_path: Path, redis_url: str,
                                                                             tmp_path: Path):
    distribution(installed_path, "wordcount_swarm", {"plugin.py": WORDCOUNT_PLUGIN, "script.py": WORDCOUNT_SCRIPT},
                 "wordcount_swarm.plugin:WORKFLOW")
    workflows = discover()
    assert workflows.kinds() == ["agents", "build", "review", "wordcount"]
    settings = SwarmSettings(redis_url=SecretStr(redis_url), state_dir=tmp_path / "state", model_guard="local-only",
                             sandbox="auto")
    scheduler = LocalScheduler()
    runtime = WorkerRuntime(settings, connect(settings), scheduler, workflows=workflows, control=False, node="t")
    try:
        spec = AgentSpec(name="counter", role="agent", model="scripted/py:wordcount_swarm.script:counter",
                         tools=("finish", "write_file", "count_words"))
        run = start_agents(runtime.services, [spec], [ChildRequest("counter", "count", key="c")], kind="wordcount")
        drain(runtime, scheduler)
        assert runtime.run_idle(run.id) == "completed"
        assert runtime.services.runs.get(run.id).result == {"words": [2]}
    finally:
        runtime.close()


def test_a_plugin_that_cannot_load_or_clashes_stops_the_worker_with_the_reason(installed_path: Path):
    distribution(installed_path, "broken_swarm", {"plugin.py": "import no_such_module_here\n"},
                 "broken_swarm.plugin:WORKFLOW")
    with pytest.raises(PluginError, match=r"broken_swarm\.plugin:WORKFLOW could not be loaded: ModuleNotFoundError"):
        discover()

    plain = load("swarm_tasks.plain.plugin")
    with pytest.raises(PluginError, match="two workflow plug-ins declare the run kind 'agents'"):
        Workflows([plain, plain])
    review = load("swarm_tasks.review.plugin")
    twice = Workflow(kind="again", on_idle=plain.on_idle, tools=review.tools[:1])
    with pytest.raises(PluginError, match="two tools named scan_file"):
        WorkerRuntime.tool_registry(Workflows([review, twice]))


def test_a_worker_warms_each_workflow_up_as_it_starts_and_one_that_raises_is_named_not_fatal(caplog, redis_url: str,
                                                                                           tmp_path: Path):
    swarm_settings = SwarmSettings(redis_url=SecretStr(redis_url), state_dir=tmp_path / "state",
                                   model_guard="local-only")
    plain = load("swarm_tasks.plain.plugin")
    ran: list[str] = []

    def broken() -> None:
        raise OSError("no temporary directory")

    fine = Workflow(kind="fine", on_idle=plain.on_idle, warm_up=lambda: ran.append("fine"))
    workflows = Workflows([plain, fine, Workflow(kind="broken", on_idle=plain.on_idle, warm_up=broken)])
    with caplog.at_level("WARNING", logger="swarm_tasks.plugins"):
        runtime = WorkerRuntime(swarm_settings, connect(swarm_settings), LocalScheduler(), workflows=workflows,
                                node="warm-test")
    try:
        assert ran == ["fine"]
        assert "the broken workflow's warm-up raised OSError: no temporary directory" in caplog.text
    finally:
        runtime.close()
    ran.clear()
    WorkerRuntime(swarm_settings, connect(swarm_settings), LocalScheduler(), workflows=workflows, node="warm-test",
                  control=False).close()
    assert ran == []  # an in-process runtime (no control loop: not a worker) does not warm up


def test_the_review_warm_up_reviews_a_small_tree_and_renders_its_report():
    from swarm_tasks.review.workflow import warm_up

    review = load("swarm_tasks.review.plugin")
    assert review.warm_up is warm_up
    warm_up()  # raises if any analyzer or report format cannot run
