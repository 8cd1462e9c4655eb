"""Helpers of the build swarm tests: throwaway bare remotes, raw git, and an in-process driver."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.builder.workflow import on_idle
from swarm_tasks.runs import RunRecord, RunStatus

IDENTITY = ("-c", "user.name=Seed", "-c", "user.email=seed@example.invalid", "-c", "commit.gpgsign=false")
SCRIPTED = "scripted/py:swarm_tasks.builder.scripted"
# Counts its own applications, so a lost or doubled one shows: not idempotent on purpose.
COUNTING = ("awk 'NR == 1 { n = substr($0, 10) + 1; print \"applied: \" n; next } { print }' {path} > {path}.tmp "
            "&& mv {path}.tmp {path}")
# Sorted, marker-free notes: what the scripted workers' changes must keep true.
NOTES_CHECK = ("for f in $(git ls-files '*.txt'); do LC_ALL=C sort -c \"$f\" || exit 1; done; "
               "! git grep -nE '^(<<<<<<<|=======|>>>>>>>)' -- '*.txt'")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def make_remote(root: Path, files: dict[str, str], *, branch: str = "main") -> Path:
    """A bare repository ``root/remote.git`` whose ``branch`` holds ``files`` in one commit."""
    bare, seed = root / "remote.git", root / "seed"
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--bare", "-b", branch, str(bare))
    git(root, "init", "--quiet", "-b", branch, str(seed))
    for rel, text in files.items():
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        (seed / rel).write_text(text)
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "seed")
    git(seed, "push", "--quiet", str(bare), f"{branch}:{branch}")
    return bare


def checkout(bare: Path, dest: Path, ref: str = "main") -> Path:
    git(bare.parent, "clone", "--quiet", "--branch", ref, str(bare), str(dest))
    return dest


def tip(bare: Path, ref: str = "main") -> str:
    return git(bare, "rev-parse", ref)


def show(bare: Path, path: str, ref: str = "main") -> str:
    return git(bare, "show", f"{ref}:{path}")


def refs(bare: Path) -> list[str]:
    return sorted(git(bare, "for-each-ref", "--format=%(refname)").splitlines())


def drive(local, run_id: str, *, rounds: int = 40) -> RunRecord:
    """Run a build in-process: drain steps, and when the run goes idle call the workflow's idle hook."""
    services: SwarmClient = local.services
    for _ in range(rounds):
        local.drain(max_steps=20_000)
        record = services.runs.get(run_id)
        if record.status.terminal:
            return record
        on_idle(services, record)
    raise AssertionError(f"build {run_id} still {services.runs.get(run_id).status} after {rounds} idle rounds")


def wait_run(client: SwarmClient, run_id: str, timeout_s: float) -> RunRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = client.runs.get(run_id)
        if record.status is not RunStatus.RUNNING and record.status.terminal:
            return record
        time.sleep(0.25)
    raise AssertionError(f"build {run_id} still {client.runs.get(run_id).status} after {timeout_s}s")
