"""Where a job's code comes from: a directory on disk or a git URL, made present on each worker.

A local path must be visible to every worker (same machine or shared storage). A git URL is cloned
once per run per machine into the state directory; concurrent processes on one machine race
harmlessly (each clones into a temporary directory and the first rename wins).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from coordination.connection import redact_url
from swarm_tasks.errors import JobSpecError

_GIT_SCHEMES = ("http", "https", "ssh", "git", "file")
_REMOTE_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
# Whatever the user's git configuration allows: a remote helper command never runs for a source.
_NO_EXT = ("-c", "protocol.ext.allow=never")


def is_git_url(text: str) -> bool:
    scheme = urlsplit(text).scheme
    return scheme in _GIT_SCHEMES or (text.endswith(".git") and ":" in text and not Path(text).exists())


class SourceSpec(BaseModel):
    """A path or a git URL (credentials may be in the URL; they are never logged), and a ref."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    location: str = Field(min_length=1)
    ref: str | None = Field(default=None, description="Branch, tag or commit for git URLs.")

    @property
    def is_git(self) -> bool:
        return is_git_url(self.location)

    def shown(self) -> str:
        return redact_url(self.location)


def refuse_option_like(spec: SourceSpec) -> None:
    """Refuse a location or ref git could take as an option (``--upload-pack=...`` runs a command) or that
    carries control characters. Git gets them after ``--`` as well; this says so plainly, before any git
    runs, and holds on every worker too (a job can be submitted without the CLI)."""
    for what, value in (("SOURCE", spec.location), ("ref", spec.ref)):
        if value is None:
            continue
        if value.lstrip().startswith("-"):
            raise JobSpecError(f"{what} {redact_url(value)!r} starts with '-': it would be read as a git option, "
                               "not a path, URL or ref; refused (give a path as ./-name)")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise JobSpecError(f"{what} {redact_url(value)!r} contains a control character; refused")
    if _REMOTE_HELPER.match(spec.location):  # 'ext::sh -c ...' runs a command wherever git allows it
        raise JobSpecError(f"SOURCE {spec.shown()!r} names a git remote helper (transport::address); refused: "
                           "give a path or an http(s), ssh, git or file URL")
    if spec.ref is not None and (not spec.ref.strip() or any(c in spec.ref for c in " ~^:?*[\\")
                                 or ".." in spec.ref or "@{" in spec.ref):
        raise JobSpecError(f"ref {spec.ref!r} is not a valid branch, tag or commit name")


def check_source(spec: SourceSpec, *, timeout_s: float = 20.0) -> SourceSpec:
    """Refuse a source that cannot work, before anything is enqueued; returns it normalised."""
    refuse_option_like(spec)
    if spec.is_git:
        _check_file_url(spec)
        env = {**_git_env(), "GIT_TERMINAL_PROMPT": "0"}
        args = ["git", *_NO_EXT, "ls-remote", "--exit-code", "--", spec.location, *([spec.ref] if spec.ref else [])]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env,  # noqa: S603
                                  check=False)
        except subprocess.TimeoutExpired:
            raise JobSpecError(f"git remote {spec.shown()} did not answer within {timeout_s:.0f}s") from None
        if done.returncode != 0:
            detail = redact_url(_git_error(done.stderr) or "no such ref")
            raise JobSpecError(f"cannot read git remote {spec.shown()}"
                               f"{f' at {spec.ref}' if spec.ref else ''}: {detail}")
        return spec
    path = Path(spec.location).expanduser()
    if not path.exists():
        raise JobSpecError(f"path {spec.location} does not exist")
    if not path.is_dir():
        raise JobSpecError(f"path {spec.location} is not a directory")
    return spec.model_copy(update={"location": str(path.resolve())})


def _check_file_url(spec: SourceSpec) -> None:
    """A ``file://`` URL names a directory here: say plainly when it is missing or not a repository (git
    answers both with advice about access rights, ending in "...and the repository exists.")."""
    parts = urlsplit(spec.location)
    if parts.scheme != "file":
        return
    path = Path(unquote(parts.path))
    if not path.exists():
        raise JobSpecError(f"{spec.shown()}: {path} does not exist")
    if not path.is_dir():
        raise JobSpecError(f"{spec.shown()}: {path} is a file, not a git repository")
    if not ((path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())):
        raise JobSpecError(f"{spec.shown()} is not a git repository: {path} has no .git (and is not a bare "
                           f"repository); to review the directory as it is, pass its path: {path}")


def _git_error(stderr: str) -> str:
    """The line of git's error output that says what went wrong (its first ``fatal:``), not its advice."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else "")


def checkout_dir(state_dir: Path, run_id: str) -> Path:
    return state_dir / "repos" / run_id


def materialize(spec: SourceSpec, state_dir: Path, run_id: str, *, timeout_s: float = 600.0) -> Path:
    """The directory holding the source on this machine (cloning a git URL on first use)."""
    refuse_option_like(spec)
    if not spec.is_git:
        path = Path(spec.location)
        if not path.is_dir():
            raise JobSpecError(f"source {spec.location} is not a directory on this worker; local paths must be "
                               "visible to every worker (same machine or shared storage), or use a git URL")
        return path
    dest = checkout_dir(state_dir, run_id)
    if (dest / ".git").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=dest.parent))
    args = ["git", *_NO_EXT, "clone", "--quiet", "--depth", "1", *(["--branch", spec.ref] if spec.ref else []), "--",
            spec.location, str(scratch / "repo")]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False,  # noqa: S603
                              env={**_git_env(), "GIT_TERMINAL_PROMPT": "0"})
        if done.returncode != 0:
            raise JobSpecError(f"git clone of {spec.shown()} failed: {redact_url(done.stderr.strip())[-400:]}")
        with contextlib.suppress(OSError):  # another process of this machine got there first
            os.rename(scratch / "repo", dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dest


def _git_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND", "GIT_ASKPASS")
    return {k: v for k, v in os.environ.items() if k in keep}
