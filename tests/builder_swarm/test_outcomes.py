"""How a build ends, as a user sees it: ``swarm build --json`` through the real CLI, on real worker
processes started once for the module. Each case asserts the end state, the reason and the exit code
(0 completed, 4 partial, 1 failed) and what is on the remote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from coordination.embedded import EmbeddedRedis
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster
from tests.builder_swarm.helpers import git, make_remote, refs, show, tip

pytestmark = pytest.mark.slow
QUEUES = ("plan", "work", "judge", "agents", "control")
SCRIPTS = "scripted/py:tests.builder_swarm.scripts"
TODO_MODELS = "scripted/py:swarm_tasks.builder.scripted"
OK, FAILED, PARTIAL = 0, 1, 4


@pytest.fixture(scope="module")
def fleet(embedded_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two worker processes on a database of their own; the environment a CLI call needs to use them."""
    url = embedded_redis.url.rsplit("/", 1)[0] + "/9"
    redis.Redis.from_url(url).flushdb()
    state = tmp_path_factory.mktemp("fleet")
    settings = SwarmSettings(redis_url=SecretStr(url), state_dir=state / "state", model_guard="local-only",
                             agent_turn_lease_s=30.0, agent_step_grace_s=30.0, sweep_interval_s=0.2)
    cluster = LocalCluster(settings, workers=2, queues=QUEUES, concurrency=4, name_prefix="outcome",
                           log_dir=state / "logs").start(timeout_s=180)
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    yield {**keep, "SWARM_REDIS_URL": url, "SWARM_STATE_DIR": str(state / "cli"), "SWARM_MODEL_GUARD": "local-only"}
    cluster.stop()
    redis.Redis.from_url(url).flushdb()


def build(env: dict[str, str], remote: Path, *args: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "swarm_tasks.cli", "build", str(remote), "--json", *args],
                          capture_output=True, text=True, env=env, timeout=240, check=False)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def swarm_tags(bare: Path, run: str) -> list[str]:
    return [r for r in refs(bare) if r.startswith(f"refs/tags/swarm/{run}/")]


def test_a_planner_that_fails_or_plans_nothing_fails_the_build(fleet, tmp_path: Path) -> None:
    bare = make_remote(tmp_path / "r", {"a.txt": "a\n"})
    code, out = build(fleet, bare, "--goal", "add a feature", "--planner-model", f"{SCRIPTS}:refused_planner",
                      "--worker-model", f"{TODO_MODELS}:worker")
    assert (code, out["status"]) == (FAILED, "failed")
    assert out["reason"].startswith("the planner of cycle 1 failed: ") and "0 commit(s) landed" in out["reason"]
    code, out = build(fleet, bare, "--goal", "add a feature", "--planner-model", f"{SCRIPTS}:idle_planner",
                      "--worker-model", f"{TODO_MODELS}:worker")
    assert (code, out["status"]) == (FAILED, "failed")
    assert out["reason"] == ("the planner filed no task for the goal 'add a feature' (it said: I see nothing to do "
                             "here); 0 commit(s) landed")
    assert out["result"]["tip"] == tip(bare) and out["result"]["commits_landed"] == 0


def test_nothing_landed_when_the_remote_refuses_every_push(fleet, tmp_path: Path) -> None:
    files = {f"m{i}.py": "x = 1\n" for i in range(6)}
    bare = make_remote(tmp_path / "hook", files)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are closed for the release freeze' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = tip(bare)
    code, out = build(fleet, bare, "--goal", "double", "--codemod", "sed -i 's/1/2/' {path}", "--builders", "2")
    assert (code, out["status"]) == (FAILED, "failed")
    assert out["reason"].startswith("nothing landed: 6 of 6 task(s) failed: remote refused the push: ")
    assert "(6 tasks)" in out["reason"]
    assert all("pushes are closed" in t["reason"] for t in out["result"]["failed_tasks"])
    assert tip(bare) == before and swarm_tags(bare, out["run"]) == []

    # Model mode, a remote that refuses any pack (not a hook): the same end, each task with its reason.
    bare = make_remote(tmp_path / "size", {"TODO.md": "notes/a.txt | one\nnotes/b.txt | two\n", "notes/a.txt": "",
                                           "notes/b.txt": ""})
    git(bare, "config", "receive.maxInputSize", "1")
    code, out = build(fleet, bare, "--goal", "add the TODO lines", "--model", f"{TODO_MODELS}:planner",
                      "--worker-model", f"{TODO_MODELS}:worker", "--max-cycles", "1")
    assert (code, out["status"]) == (FAILED, "failed")
    assert out["reason"].startswith("nothing landed: 2 of 2 task(s) failed: ")
    assert [t["status"] for t in out["result"]["failed_tasks"]] == ["failed", "failed"]
    assert swarm_tags(bare, out["run"]) == [] and out["result"]["tip"] == tip(bare)


def test_a_codemod_lands_every_edit_once_and_stops_when_it_is_not_idempotent(fleet, tmp_path: Path) -> None:
    """The command edits its file and appends to a shared changelog (outside {path}): all fifteen
    entries land, once each; run again on the tip it would append again, so the run stops there."""
    files = {f"src/m{i:02d}.py": "value = 0\n" for i in range(15)}
    bare = make_remote(tmp_path / "r", {**files, "CHANGELOG.md": "# changes\n"})
    command = "sed -i 's/0/1/' {path} && echo \"- normalized {path}\" >> CHANGELOG.md"
    code, out = build(fleet, bare, "--goal", "normalize", "--codemod", command, "--files", "src/*.py",
                      "--builders", "4")
    assert (code, out["status"]) == (PARTIAL, "partial")
    assert "the codemod is not idempotent: run again on the tip it changes 1 file(s) this run already changed " \
           "(CHANGELOG.md)" in out["reason"]
    assert "it was applied once and the run stopped" in out["reason"]
    log = show(bare, "CHANGELOG.md").splitlines()
    assert log[0] == "# changes" and sorted(log[1:]) == [f"- normalized {f}" for f in sorted(files)]
    assert all(show(bare, f) == "value = 1" for f in files)
    assert out["result"]["stopped_because"] == "not_idempotent" and len(out["result"]["cycles"]) == 1
    assert swarm_tags(bare, out["run"]) == []  # a cycle that would change again is not a state to keep

    # Asked for exactly one pass, the same command is a complete run.
    bare = make_remote(tmp_path / "once", {**files, "CHANGELOG.md": "# changes\n"})
    code, out = build(fleet, bare, "--goal", "normalize", "--codemod", command, "--files", "src/*.py",
                      "--max-cycles", "1")
    assert (code, out["status"]) == (OK, "completed"), out["reason"]
    assert len(show(bare, "CHANGELOG.md").splitlines()) == 16


def test_a_file_the_codemod_fails_on_fails_alone_and_the_failed_build_keeps_its_record(fleet, tmp_path: Path) -> None:
    files = {f"pkg/m{i:02d}.py": "x = 0\n" for i in range(20)}
    files["pkg/m13.py"] = "x = (\n"  # the command cannot parse this one
    bare = make_remote(tmp_path / "r", {**files, "docs/index.rst": "Title\n=====\n"})
    command = ("python3 -c 'import ast, sys; p = sys.argv[1]; s = open(p).read(); ast.parse(s, p); "
               "open(p, \"w\").write(s.replace(\"0\", \"1\"))' {path}")
    code, out = build(fleet, bare, "--goal", "set x", "--codemod", command, "--builders", "3")
    assert (code, out["status"]) == (PARTIAL, "partial")
    assert out["reason"].startswith("the command failed on 1 file(s): pkg/m13.py: exit 1: ")
    assert "SyntaxError" in out["reason"] and "judge" not in out["reason"]
    result = out["result"]
    assert list(result["failed_files"]) == ["pkg/m13.py"]
    assert result["tip"] == tip(bare) and result["commits_landed"] >= 1
    assert all(show(bare, f) == "x = 1" for f in files if f != "pkg/m13.py") and show(bare, "pkg/m13.py") == "x = ("
    assert show(bare, "docs/index.rst") == "Title\n====="  # tried first: the command fails on .rst, left out
    assert "*.rst" in result["targets"]["skip_kinds"] and result["tagged"] == []
    assert swarm_tags(bare, out["run"]) == []


def test_every_codemod_commit_passed_the_check_before_it_landed(fleet, tmp_path: Path) -> None:
    files = {f"m{i}.txt": f"item {i}\n" for i in range(8)}
    bare = make_remote(tmp_path / "r", files)
    command = "case {path} in m5.txt) echo FORBIDDEN >> {path};; *) echo ok >> {path};; esac"
    code, out = build(fleet, bare, "--goal", "mark", "--codemod", command, "--check", "! grep -rq FORBIDDEN .",
                      "--builders", "2", "--max-cycles", "1")
    assert (code, out["status"]) == (PARTIAL, "partial")
    assert out["reason"].startswith("1 of 4 task(s) failed: check failed (exit 1), so its change was not pushed "
                                    "(1 task)")
    assert subprocess.run(["git", "grep", "-q", "FORBIDDEN", "main"], cwd=bare, check=False).returncode == 1
    assert show(bare, "m0.txt") == "item 0\nok"
    result = out["result"]
    assert result["checks_run"]["full"] >= result["commits_landed"] > 0

    # A quick check on the changed files gates each landing; the full check runs once, on the tip.
    bare = make_remote(tmp_path / "quick", files)
    code, out = build(fleet, bare, "--goal", "mark", "--codemod", command, "--check", "! git grep -q FORBIDDEN",
                      "--check-changed", "! grep -q FORBIDDEN {paths}", "--builders", "2", "--max-cycles", "1")
    assert (code, out["status"]) == (PARTIAL, "partial") and "FORBIDDEN" not in show(bare, "m5.txt")
    checks = out["result"]["checks_run"]
    assert checks["quick"] >= out["result"]["commits_landed"] == 3 and checks["full"] == 1
