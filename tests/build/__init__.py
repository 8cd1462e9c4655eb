"""Helpers shared by the build tests: throwaway bare remotes seeded with files, and raw git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from swarm_tasks.build import RemoteSpec

IDENTITY = ("-c", "user.name=Seed", "-c", "user.email=seed@example.invalid", "-c", "commit.gpgsign=false")


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Raw git in ``cwd`` (independent of the code under test); stripped stdout."""
    result = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def make_remote(root: Path, files: dict[str, str], *, branch: str = "main",
                extra_branches: tuple[str, ...] = ()) -> RemoteSpec:
    """A bare repository ``root/remote.git`` whose ``branch`` holds ``files`` in one commit."""
    bare = root / "remote.git"
    seed = root / "seed"
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--bare", "-b", branch, str(bare))
    git(root, "init", "--quiet", "-b", branch, str(seed))
    for rel, text in files.items():
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        (seed / rel).write_text(text)
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "seed")
    git(seed, "push", "--quiet", str(bare), f"{branch}:{branch}", *(f"{branch}:{b}" for b in extra_branches))
    return RemoteSpec(url=str(bare), branch=branch, timeout_s=30.0)


def remote_tip(spec: RemoteSpec) -> str:
    return git(Path(spec.url), "rev-parse", f"refs/heads/{spec.branch}")


def remote_file(spec: RemoteSpec, rel: str) -> str:
    return git(Path(spec.url), "show", f"{spec.branch}:{rel}")
