"""The build demo: a swarm makes real code changes to the shipped example ``examples/textkit``.

    .venv/bin/python -m swarm_tasks.builder.demo [--builders 3] [--latency 0.2] [--keep DIR]

The example's modules have no docstrings and one function has a planted bug, so its tests fail. The
demo copies it into a fresh git repository behind a local bare remote, starts the local
OpenAI-compatible test server playing every model of the build (:mod:`swarm_tasks.builder.demo_model`),
and runs ``swarm build`` on it as a user would (an embedded Redis and two local worker processes):
the planner files a task per undocumented module and one to make the failing test pass, workers edit,
check and push concurrently, and the judge runs the check on the tip and stops. It prints the outcome
and the commits that landed, and exits with the status of ``swarm build`` (0: completed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from swarm_tasks.builder.gitops import run_git
from swarm_tasks.models.mock_server import MockServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "textkit"
SCRIPT = "py:swarm_tasks.builder.demo_model:respond"
GOAL = "Give every module of textkit a docstring and make the failing test pass"
_IDENTITY = ("-c", "user.name=textkit", "-c", "user.email=textkit@example.invalid", "-c", "commit.gpgsign=false")


def _git(cwd: Path, *args: str) -> str:
    return run_git([*_IDENTITY, *args], cwd=cwd).stdout.decode().strip()


def make_remote(root: Path) -> Path:
    """The example as the one commit of a bare repository ``root/textkit.git``."""
    seed, bare = root / "textkit", root / "textkit.git"
    shutil.copytree(EXAMPLE, seed, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    _git(root, "init", "--quiet", "-b", "main", str(seed))
    _git(seed, "add", "--all")
    _git(seed, "commit", "--quiet", "-m", "textkit as shipped")
    _git(root, "clone", "--quiet", "--bare", str(seed), str(bare))
    return bare


def demo_env(api_base: str, state_dir: Path) -> dict[str, str]:
    """The environment of the ``swarm build`` the demo runs: its own embedded Redis and workers, every
    model call to the local test server, nothing else reachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update({"SWARM_API_BASE": api_base, "SWARM_API_KEY": "sk-demo", "SWARM_MODEL_GUARD": "local-only",
                "SWARM_STATE_DIR": str(state_dir), "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    return env


def run_demo(root: Path, *, builders: int = 3, latency_s: float = 0.0, timeout_s: float = 600.0) -> int:
    bare = make_remote(root)
    base = _git(bare, "rev-parse", "main")
    check = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider"
    with MockServer(latency_s=latency_s, script=SCRIPT) as server:
        print(f"remote {bare}; models: the local test server at {server.url}", flush=True)
        argv = [sys.executable, "-m", "swarm_tasks.cli", "build", str(bare), "--goal", GOAL, "--check", check,
                "--model", "openai/demo-model", "--builders", str(builders), "--max-cycles", "2", "--json",
                "--timeout", str(timeout_s)]
        done = subprocess.run(argv, capture_output=True, text=True, env=demo_env(server.url, root / "state"),  # noqa: S603 - our own CLI
                              timeout=timeout_s + 120, check=False)
    if not done.stdout.strip():
        print(done.stderr, file=sys.stderr)
        return done.returncode or 1
    out = json.loads(done.stdout)
    result = out.get("result") or {}
    print(f"build {out['run']} {out['status']}: {out.get('reason')}")
    print(f"check on the tip: {'passed' if result.get('check_passed') else 'not passed'}; "
          f"tasks: {result.get('tasks')}; checks run: {result.get('checks_run')}")
    print(_git(bare, "log", "--oneline", "--stat", f"{base}..main"))
    return done.returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarm_tasks.builder.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--builders", type=int, default=3, help="workers at once")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the test server takes per reply")
    parser.add_argument("--keep", type=Path, help="keep the remote and state in this (new) directory")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=False)
        return run_demo(args.keep.absolute(), builders=args.builders, latency_s=args.latency)
    with tempfile.TemporaryDirectory(prefix="swarm-build-demo-") as tmp:
        return run_demo(Path(tmp), builders=args.builders, latency_s=args.latency)


if __name__ == "__main__":
    sys.exit(main())
