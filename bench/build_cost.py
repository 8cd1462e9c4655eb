"""``python -m bench build-cost``: one model-mode build goal at 1, 4 and 8 builders; wall time and tokens.

The goal: add N features to a small package. Each feature is its own module, and every task also
appends its import to the package's ``__init__.py`` and a line to ``CHANGELOG.md``: the two files
every task touches, the shape that made conflicts expensive (19x the cost at 8 builders). The
models are a script played by the local OpenAI-compatible test server at a fixed latency per turn,
charging tokens per turn as a provider does (prompt and completion, through litellm's usage): a
planner that reads the feature list and files one task per feature, and workers that write the
module, edit the two shared files, commit and push, and resolve conflicts the way a model would
(read each conflicted file, write it back with both sides, continue the rebase, push again), each
step a turn. The check (``python3 -c 'import app'``) gates every landing; the judge runs it on the tip.
A warm-up build runs first and is not measured (first imports and model calls in each worker).

Reported per builder count: wall time from submission to the run's end, tasks landed per minute
(the speed-up over one builder), tokens and model calls, and every feature verified on the tip.
Goal: 8 builders at least 4x faster than 1, with at most 1.5x the tokens. The same goal at 8
builders with every conflict sent to a model (no union driver, no mechanical merge) is measured
beside it, to show what the cheap resolutions save. Default 16 features at 0.4 s a turn;
``--full`` 24 features at 1 s.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import SecretStr

from bench.common import BenchResult, Row, machine_info, progress, redis_for_bench
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.builder.gitops import run_git
from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.workflow import submit_build
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.models.mock_server import MockServer
from swarm_tasks.models.script import ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.runs import RunLimits, RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster

SCRIPT = "py:bench.build_cost:respond"
MODEL = "openai/bench-model"
QUEUES = ("plan", "work", "judge", "agents", "control")
CHECK = "python3 -c 'import app'"
_IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-c", "commit.gpgsign=false")
_NUMBERED = re.compile(r"^\s*\d+\t(.*)$")
_MARKER = re.compile(r"^(<<<<<<<|=======|>>>>>>>|\|\|\|\|\|\|\|)( |$)")
_CONFLICTED = re.compile(r"conflicts with it in (.+?)\. A rebase")
_NEXT = re.compile(r"conflicts too, in (.+?):\n")


# -- the scripted models ----------------------------------------------------------------------------

def _call(name: str, **arguments: object) -> Step:
    return Step(tool_calls=[ScriptedCall(name=name, arguments=arguments)])


def _calls(messages: list[ChatMessage]) -> list[tuple[str, dict[str, object], str]]:
    answers = {m.get("tool_call_id"): str(m.get("content") or "") for m in messages if m["role"] == "tool"}
    out = []
    for m in messages:
        for call in m.get("tool_calls") or [] if m["role"] == "assistant" else []:
            fn = call["function"]
            out.append((fn["name"], json.loads(fn["arguments"] or "{}"), answers.get(call["id"], "")))
    return out


def _text(answer: str, *, keep_markers: bool = True) -> str:
    lines = [m.group(1) for line in answer.splitlines() if (m := _NUMBERED.match(line))]
    if not keep_markers:
        lines = [line for line in lines if not _MARKER.match(line)]
    return "".join(f"{line}\n" for line in lines)


def planner(messages: list[ChatMessage]) -> Step:
    calls = _calls(messages)
    if not calls:
        return _call("read_file", path="FEATURES.md")
    names = [c[0] for c in calls]
    if "file_tasks" not in names:
        features = [line.strip("- ").strip() for line in _text(calls[0][2]).splitlines() if line.startswith("- ")]
        return _call("file_tasks", tasks=[
            {"title": f"add {f}", "files": [f"app/{f}.py", "app/__init__.py", "CHANGELOG.md"],
             "body": f"Add app/{f}.py with a function {f}(), export it from app/__init__.py and note it in "
                     f"CHANGELOG.md.\nFEATURE={f}"} for f in features])
    if "wait_for_tasks" not in names:
        return _call("wait_for_tasks")
    return _call("finish", summary="every feature was filed and has ended")


def worker(messages: list[ChatMessage]) -> Step:
    task = next((str(m.get("content") or "") for m in messages if m["role"] == "user"), "")
    found = re.search(r"^FEATURE=(\w+)$", task, re.MULTILINE)
    if found is None:
        return _call("finish", summary="no feature named in the task", success=False)
    feature = found.group(1)
    calls = _calls(messages)
    steps = [("write_file", {"path": f"app/{feature}.py",
                             "content": f'"""Feature {feature}."""\n\n\ndef {feature}():\n    return "{feature}"\n'}),
             ("read_file", {"path": "app/__init__.py"}), ("write_file", {"path": "app/__init__.py"}),
             ("read_file", {"path": "CHANGELOG.md"}), ("write_file", {"path": "CHANGELOG.md"}),
             ("commit_and_push", {"message": f"Add {feature}"})]
    if len(calls) < len(steps):  # the plan: one edit per turn
        name, args = steps[len(calls)]
        if name == "write_file" and "content" not in args:
            before = _text(calls[-1][2])
            line = (f"from app.{feature} import {feature}\n" if args["path"] == "app/__init__.py"
                    else f"- added {feature}\n")
            args = {**args, "content": before + line}
        return _call(name, **args)
    name, args, answer = calls[-1]
    if name == "commit_and_push" and (answer.startswith("landed") or "already landed" in answer):
        return _call("finish", summary=answer.splitlines()[0])
    if name in ("commit_and_push", "continue_rebase"):
        found = _CONFLICTED.search(answer) or _NEXT.search(answer)
        if found:  # resolve each conflicted file: read it, keep both sides, write it back
            return _call("read_file", path=found.group(1).split(", ")[0])
        if answer.startswith(("the rebase is complete", "the branch moved again", "nothing to push")) \
                or "landing attempt(s) left" in answer:
            return _call("commit_and_push", message=f"Add {feature}")
        return _call("finish", summary=answer.splitlines()[0][:300] if answer else "no answer", success=False)
    if name == "read_file":
        return _call("write_file", path=str(args["path"]), content=_text(answer, keep_markers=False))
    if name == "write_file":
        pending = [c for c in calls if c[0] in ("commit_and_push", "continue_rebase")]
        listed = _CONFLICTED.search(pending[-1][2]) or _NEXT.search(pending[-1][2])
        files = listed.group(1).split(", ") if listed else []
        done = {str(a.get("path")) for n, a, _ in calls[calls.index(pending[-1]):] if n == "write_file"}
        left = [f for f in files if f not in done]
        return _call("read_file", path=left[0]) if left else _call("continue_rebase")
    return _call("finish", summary=f"stopped after {name}", success=False)


def respond(messages: list[ChatMessage], _tools: object = None) -> Step:
    system = next((str(m.get("content") or "") for m in messages if m["role"] == "system"), "")
    if "planner of a build swarm" in system:
        return planner(messages)
    if "worker of a build swarm" in system:
        return worker(messages)
    return _call("finish", summary="nothing to do", success=False)


# -- the measurement --------------------------------------------------------------------------------

def make_remote(root: Path, features: list[str]) -> Path:
    seed, bare = root / "seed", root / "app.git"
    (seed / "app").mkdir(parents=True)
    (seed / "app" / "__init__.py").write_text('"""The package the features are added to."""\n')
    (seed / "CHANGELOG.md").write_text("# Changes\n\n")
    (seed / "FEATURES.md").write_text("# Features to add\n\n" + "".join(f"- {f}\n" for f in features))
    (seed / ".gitignore").write_text("__pycache__/\n")
    run_git([*_IDENTITY, "init", "--quiet", "-b", "main"], cwd=seed)
    run_git([*_IDENTITY, "add", "--all"], cwd=seed)
    run_git([*_IDENTITY, "commit", "--quiet", "-m", "start"], cwd=seed)
    run_git([*_IDENTITY, "clone", "--quiet", "--bare", str(seed), str(bare)], cwd=root)
    return bare


@dataclass(slots=True)
class Measured:
    builders: int
    cheap_merges: bool
    wall_s: float
    tokens: float
    model_calls: float
    landed: int
    verified: bool
    status: str
    reason: str


def _verify(bare: Path, features: list[str]) -> bool:
    """Every feature's module, export and changelog line on the tip, each exactly once."""
    init = run_git(["show", "main:app/__init__.py"], cwd=bare).stdout.decode()
    log = run_git(["show", "main:CHANGELOG.md"], cwd=bare).stdout.decode()
    files = set(run_git(["ls-tree", "-r", "--name-only", "main"], cwd=bare).stdout.decode().split())
    return all(init.count(f"from app.{f} import {f}\n") == 1 and log.count(f"- added {f}\n") == 1
               and f"app/{f}.py" in files for f in features)


def measure(client: SwarmClient, root: Path, features: list[str], builders: int, *, cheap: bool = True,
            timeout_s: float = 1800.0) -> Measured:
    bare = make_remote(root, features)
    job = BuildJob(repo=str(bare), goal="add every feature of FEATURES.md", check=CHECK, builders=builders,
                   max_cycles=1, models={"planner": MODEL, "worker": MODEL}, push_attempts=30,
                   union_merge=BuildJob.model_fields["union_merge"].default if cheap else (),
                   mechanical_merge=cheap, limits=RunLimits(max_agents=5000))
    started = time.monotonic()
    run = submit_build(client, job)
    deadline = started + timeout_s
    while not client.runs.get(run.id).status.terminal and time.monotonic() < deadline:
        time.sleep(0.2)
    wall = time.monotonic() - started
    record = client.runs.get(run.id)
    usage = client.run(run.id).agents.usage("run")
    result = record.result if isinstance(record.result, dict) else {}
    return Measured(builders, cheap, wall, usage.get("prompt_tokens", 0.0) + usage.get("completion_tokens", 0.0),
                    usage.get("model_calls", 0.0), int(result.get("commits_landed") or 0),
                    record.status is RunStatus.COMPLETED and _verify(bare, features), record.status.value,
                    record.reason or "")


def run(full: bool, *, features: int | None = None, latency_s: float | None = None,
        builders: tuple[int, ...] = (1, 4, 8), workers: int = 2, compare_models: bool | None = None) -> BenchResult:
    # The run that sends every conflict to a model is a comparison, not a goal, and the slowest of the
    # default run (73 s of 173 s): `--full` makes it, a quick look does not (its ten-minute bound).
    compare = full if compare_models is None else compare_models
    count = features or (24 if full else 16)
    latency = latency_s if latency_s is not None else (1.0 if full else 0.4)
    names = [f"feature_{i:02d}" for i in range(count)]
    measured: list[Measured] = []
    with redis_for_bench() as target, tempfile.TemporaryDirectory(prefix="bench-build-cost-") as tmp, \
            MockServer(latency_s=latency, script=SCRIPT) as mock:
        settings = SwarmSettings(redis_url=SecretStr(target.url), state_dir=Path(tmp) / "state", api_base=mock.url,
                                 api_key=SecretStr("sk-bench"), model_guard="local-only", worker_concurrency=64,
                                 agent_turn_lease_s=300.0, agent_step_grace_s=300.0)
        handle = use_settings(settings)
        client = SwarmClient.create(settings, handle.client, CeleryScheduler(app))
        cluster = LocalCluster(settings, workers=workers, queues=QUEUES, concurrency=64, name_prefix="cost",
                               log_dir=Path(tmp) / "logs", extra_env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        cluster.start(timeout_s=180)
        try:
            progress("build-cost: a warm-up build (first model calls and imports in each worker), not measured")
            measure(client, Path(tmp) / "warm-up", names[:2], 2)
            plan = [(n, True) for n in builders] + ([(max(builders), False)] if compare else [])
            for index, (n, cheap) in enumerate(plan):
                progress(f"build-cost: {count} features, {n} builder(s), "
                         f"{'cheap merges' if cheap else 'every conflict to a model'}, {latency}s a turn")
                measured.append(measure(client, Path(tmp) / f"run{index}", names, n, cheap=cheap))
        finally:
            cluster.stop()
        machine = machine_info(target.client)
    return _result(measured, count, latency, workers, machine)


def _result(measured: list[Measured], count: int, latency: float, workers: int,
            machine: dict[str, object]) -> BenchResult:
    one = next(m for m in measured if m.builders == 1 and m.cheap_merges)
    top = max(m.builders for m in measured)
    rows: list[Row] = []
    for m in measured:
        label = f"{m.builders} builders" + ("" if m.cheap_merges else ", every conflict to a model")
        rate, base_rate = count / m.wall_s * 60, count / one.wall_s * 60
        speed_goal = m.builders == 8 and m.cheap_merges
        rows += [
            Row(f"features landed and verified, {label}", float(count if m.verified else 0), baseline=float(count),
                baseline_name="asked", ratio=1.0 if m.verified else 0.0, goal="all", goal_met=m.verified),
            Row(f"wall time, {label}", m.wall_s, unit="s"),
            Row(f"features landed per minute, {label}", rate, unit="/min", baseline=base_rate,
                baseline_name="1 builder", ratio=rate / base_rate, goal=">= 4x" if speed_goal else None,
                goal_met=rate / base_rate >= 4 if speed_goal else None),
            Row(f"tokens, {label}", m.tokens, baseline=one.tokens, baseline_name="1 builder",
                ratio=m.tokens / one.tokens if one.tokens else None, goal="<= 1.5x" if speed_goal else None,
                goal_met=(m.tokens / one.tokens <= 1.5) if speed_goal and one.tokens else None),
            Row(f"model calls, {label}", m.model_calls, unit="calls"),
        ]
    notes = [f"{count} features, each a task: its own module plus one line appended to app/__init__.py and one to "
             f"CHANGELOG.md (both touched by every task); scripted planner and workers on the local test server at "
             f"{latency:g} s a turn, {workers} worker processes; the check `{CHECK}` gates every landing.",
             "cheap merges: CHANGELOG.md merges with git's union driver, and two insertions at one place in "
             "app/__init__.py are kept both without a model"
             + ("; the last run sends every conflict to the model (--no-mechanical-merge, no union files) at "
                f"{top} builders, for comparison." if any(not m.cheap_merges for m in measured) else
                " (the comparison sending every conflict to a model runs with --full)."),
             *(f"{m.builders} builder(s){'' if m.cheap_merges else ' (models)'}: {m.status}: {m.reason[:200]}"
               for m in measured)]
    details = {"runs": [asdict(m) for m in measured]}
    return BenchResult(name="build-cost", rows=rows, machine=machine,
                       params={"features": count, "latency_s": latency, "workers": workers,
                               "builders": sorted({m.builders for m in measured})}, notes=notes, details=details)
