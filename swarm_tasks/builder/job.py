"""The build job: what a user submits, validated before anything is enqueued.

A build pushes to ONE branch of a shared remote (a bare repository on disk works). It runs in one of
two modes, named for what they are: ``model`` (planner, worker and judge agents driven by models)
or ``codemod`` (no model at all: a command run once per file, e.g. ``ruff format {path}``).

Credentials never enter the run record (which the dashboard, the API and every agent's tools see): a
password in the repository URL is split off at submission into a key of its own that only
:func:`run_job` reads; ``SWARM_GIT_USERNAME`` / ``SWARM_GIT_PASSWORD`` are read by each process from
its own environment and never stored.
"""

from __future__ import annotations

import json
import subprocess
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PrivateAttr, ValidationError, field_validator

from coordination.connection import redact_url
from coordination.run import RunState
from swarm_tasks.builder.codemod import Codemod, render_command
from swarm_tasks.builder.gitops import Credential, RemoteSpec, run_git, validate_remote
from swarm_tasks.errors import GitError, JobSpecError
from swarm_tasks.runs import RunLimits
from swarm_tasks.settings import SwarmSettings

# The roles of a build, each with its own model, queue and (through RunLimits.role_max_cost_usd) budget.
BUILD_ROLES = ("planner", "worker", "judge", "resolver")
TASK_ROLE = "worker"  # the board role of the tasks planners file
# Files many tasks append to: merged by git's union driver (both sides' lines kept) when branches meet.
UNION_DEFAULT = ("CHANGELOG*", "CHANGES*", "HISTORY*", "NEWS*", "RELEASE_NOTES*", "*.changelog")
_SYNTAX_TIMEOUT_S = 10.0


class BuildMode(StrEnum):
    """How the build thinks."""

    MODEL = "model"
    CODEMOD = "codemod"


class BuildJob(BaseModel):
    """A build swarm on one repository and branch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(min_length=1, description="Path of a repository (a bare one works) or a git URL; "
                      "an HTTP(S) URL may carry user:password@, which is never logged.")
    branch: str = Field(default="main", min_length=1, description="The one branch every worker pushes to.")
    goal: str = Field(min_length=1, max_length=20_000)
    check: str | None = Field(default=None, description="The full check (a shell command): run by the judge "
                              "on the branch tip once per cycle, and before each landing when no check_changed "
                              "is given.")
    check_changed: str | None = Field(default=None, description="Quick check run before each landing on the "
                                      "files the change touched: a shell command with {paths} standing for them "
                                      "(e.g. 'ruff check {paths}').")
    codemod: str | None = Field(default=None, description="Codemod mode: a shell command run per file, "
                                "{path} standing for the file (appended if absent).")
    codemod_changed_exit: tuple[int, ...] = Field(default=(), description="Exit statuses besides 0 that mean "
                                                  "the codemod succeeded (pyupgrade exits 1 when it rewrote a "
                                                  "file).")
    files: tuple[str, ...] = Field(default=(), description="Globs (gitignore syntax) of the files a codemod "
                                   "runs on; empty: the files the command handles (a known tool's, else the kinds "
                                   "of file it worked on when tried first).")
    union_merge: tuple[str, ...] = Field(default=UNION_DEFAULT, description="Globs of files that many tasks "
                                         "append to (changelogs): merged with git's union driver when branches "
                                         "meet, so appends never conflict.")
    mechanical_merge: bool = Field(default=True, description="Resolve a rebase conflict that is only two "
                                   "insertions at one place by keeping both (the branch's lines first) before any "
                                   "model sees it; off for files whose line order matters (sorted lists).")
    models: dict[str, str] = Field(default_factory=dict, description="Model per role: planner, worker, judge, "
                                   "resolver. Unset roles use SWARM_MODELS / SWARM_MODEL; the judge without a "
                                   "model is the deterministic judge.")
    max_cycles: int = Field(default=3, ge=1, le=100)
    builders: int = Field(default=4, ge=1, le=512, description="Worker agents working at once.")
    push_attempts: int = Field(default=10, ge=1, le=200, description="Pushes per landing (each retry after "
                               "the branch moved costs one), and landing requests per model worker.")
    check_timeout_s: float = Field(default=600.0, gt=0)
    codemod_timeout_s: float = Field(default=120.0, gt=0, description="Seconds for the command on one file.")
    remote_timeout_s: float = Field(default=60.0, gt=0, description="Seconds per fetch, push or clone.")
    task_lease_s: float = Field(default=600.0, gt=0, description="A worker's claim on its task lasts this "
                                "long without a heartbeat (every model turn and build tool call is one).")
    task_attempts: int = Field(default=3, ge=1, le=20, description="Workers a task gets before it fails.")
    batch_size: int | None = Field(default=None, ge=1, le=10_000, description="Codemod files per task; "
                                   "unset: about three tasks per builder.")
    limits: RunLimits = Field(default_factory=RunLimits)
    title: str = ""
    # The credential git is given (from the settings, or the run's secret key); never dumped.
    _credential: Credential | None = PrivateAttr(default=None)

    @field_validator("check", "codemod", "check_changed")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None

    @field_validator("check_changed")
    @classmethod
    def _has_paths(cls, value: str | None) -> str | None:
        if value is not None and "{paths}" not in value:
            raise ValueError("check_changed must contain {paths} (where the changed files go), e.g. "
                             "'ruff check {paths}'")
        return value

    @field_validator("union_merge")
    @classmethod
    def _plain_globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [g for g in value if not g or any(c.isspace() for c in g) or g.startswith(("#", "!"))]
        if bad:
            raise ValueError(f"union_merge globs must be single words (no spaces, '#' or '!'): {bad}")
        return value

    @field_validator("models")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(BUILD_ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(BUILD_ROLES)}")
        return {role: model for role, model in value.items() if model}

    @property
    def mode(self) -> BuildMode:
        return BuildMode.CODEMOD if self.codemod else BuildMode.MODEL

    def codemod_spec(self, settings: SwarmSettings | None = None) -> Codemod:
        """The codemod command with its time limit, the exit statuses that mean success and the settings
        of the sandbox it runs in."""
        if self.codemod is None:
            raise JobSpecError("not a codemod build")
        return Codemod(self.codemod, self.codemod_timeout_s, (0, *self.codemod_changed_exit), settings)

    @property
    def shown_repo(self) -> str:
        return redact_url(self.repo)

    def remote(self) -> RemoteSpec:
        """The shared remote (:class:`GitError` for an invalid URL or branch name)."""
        return RemoteSpec(url=self.repo, branch=self.branch, credential=self._credential,
                          timeout_s=self.remote_timeout_s)

    def with_credential(self, credential: Credential | None) -> BuildJob:
        """This job with git given ``credential`` (unchanged for None)."""
        if credential is None:
            return self
        job = self.model_copy()
        job._credential = credential
        return job

    def without_secret(self) -> tuple[BuildJob, Credential | None]:
        """The job as it may be stored and shown (the repository URL without its password, no
        credential attached), and the credential split from the URL (None if it carried none)."""
        public = self.model_copy()
        public._credential = None
        parts = urlsplit(self.repo) if "://" in self.repo else None
        if parts is None or parts.password is None:
            return public, None
        secret = RemoteSpec(url=self.repo, branch=self.branch).effective_credential
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{host}" if user else host
        public = public.model_copy(update={"repo": urlunsplit((parts.scheme, netloc, parts.path, parts.query,
                                                               parts.fragment))})
        return public, secret

    @classmethod
    def parse(cls, data: JsonValue) -> BuildJob:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'job'}: {e['msg']}" for e in exc.errors())
            raise JobSpecError(redact_url(f"invalid build job: {problems}")) from None


@lru_cache(maxsize=64)
def _job(raw: str) -> BuildJob:
    return BuildJob.model_validate_json(raw)


def job_from_spec(spec: JsonValue) -> BuildJob:
    """The job stored in a run record (parsed once per process), without any credential: for git
    use :func:`run_job`."""
    return _job(json.dumps(spec, sort_keys=True))


def _secret_key(state: RunState) -> str:
    return state.keys.record("secret", "git")


def store_secret(state: RunState, credential: Credential | None) -> None:
    """Keep the credential split from the URL where only :func:`run_job` reads it (nothing shows it)."""
    if credential is not None:
        state.redis.set(_secret_key(state), json.dumps({"username": credential.username,
                                                         "password": credential.password}))


def forget_secret(state: RunState) -> None:
    """The build has ended: no worker needs its credential any more."""
    state.redis.delete(_secret_key(state))


def run_job(spec: JsonValue, state: RunState, settings: SwarmSettings) -> BuildJob:
    """The job of a build run with the credential git needs: the one split from its URL at submission,
    else ``SWARM_GIT_USERNAME`` / ``SWARM_GIT_PASSWORD`` of this process for an HTTP(S) remote."""
    job = job_from_spec(spec)
    raw = state.redis.get(_secret_key(state))
    if raw:
        data = json.loads(raw)
        credential: Credential | None = Credential(str(data["username"]), str(data["password"]))
    else:
        credential = Credential.from_settings(settings, job.repo)
    return job.with_credential(credential)


def resolve_models(job: BuildJob, settings: SwarmSettings) -> dict[str, str]:
    """The model of each role after the settings' defaults; the resolver defaults to the worker's."""
    models = {role: m for role in BUILD_ROLES if (m := job.models.get(role) or settings.model_for(role))}
    if "resolver" not in models and "worker" in models:
        models["resolver"] = models["worker"]
    return models


def _shell_syntax(what: str, command: str) -> None:
    """Refuse a command line bash cannot parse (checked with ``bash -n``, nothing is run)."""
    done = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True,  # noqa: S603, S607
                          timeout=_SYNTAX_TIMEOUT_S, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["syntax error"])[-1]
        raise JobSpecError(f"the {what} command is not a valid shell command line: {detail}")


def _refuse_checked_out_branch(path: Path, branch: str) -> None:
    """Pushing to the branch a non-bare repository has checked out is refused by git itself."""
    bare = run_git(["rev-parse", "--is-bare-repository"], cwd=path, check=False)
    if bare.stdout.decode().strip() != "false":
        return
    head = run_git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=path, check=False).stdout.decode().strip()
    mode = run_git(["config", "--get", "receive.denyCurrentBranch"], cwd=path, check=False).stdout.decode().strip()
    if head == branch and mode not in ("updateInstead", "ignore", "warn"):
        raise JobSpecError(f"{path} has branch {branch!r} checked out, so git refuses pushes to it: use a bare "
                           "repository (git clone --bare) as the shared remote, or another branch")


def validate_job(job: BuildJob, settings: SwarmSettings) -> tuple[BuildJob, str]:
    """Check everything that can be checked before a run exists; returns the job with a local path made
    absolute, and the branch tip. :class:`JobSpecError` / :class:`GitError` say what is wrong."""
    job = job.with_credential(Credential.from_settings(settings, job.repo))
    try:
        remote = job.remote()
    except GitError as exc:
        raise JobSpecError(str(exc)) from None
    local = remote.local_path
    if local is not None:
        job = job.model_copy(update={"repo": str(local)})
        remote = job.remote()
    tip = validate_remote(remote)
    if local is not None:
        _refuse_checked_out_branch(local, job.branch)
    if job.check:
        _shell_syntax("check", job.check)
    if job.check_changed:
        _shell_syntax("check_changed", job.check_changed.replace("{paths}", "a.py"))
    if job.codemod:
        _shell_syntax("codemod", render_command(job.codemod, "some/file.txt"))
    elif job.files or job.codemod_changed_exit:
        raise JobSpecError("files (globs) and codemod_changed_exit only apply to codemod mode: give a codemod "
                           "command too")
    if job.mode is BuildMode.MODEL:
        models = resolve_models(job, settings)
        missing = [r for r in ("planner", "worker") if r not in models]
        if missing:
            raise JobSpecError(f"model mode needs a model for {', '.join(missing)} (--model, --planner-model, "
                               "--worker-model, or SWARM_MODEL); for a build without models give a --codemod "
                               "command")
    return job, tip
