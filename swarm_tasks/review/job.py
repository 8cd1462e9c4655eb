"""The review job: what a user submits, validated before anything is enqueued."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from swarm_tasks.errors import JobSpecError
from swarm_tasks.review.config import ReviewConfig
from swarm_tasks.runs import RunLimits
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.sources import SourceSpec, materialize

# The roles of a review, each with its own model (and queue): a cheap model for the quick scan.
REVIEW_ROLES = ("scanner", "reviewer", "subreviewer")


class ReviewJob(BaseModel):
    """A deep review of one repository."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SourceSpec
    config: ReviewConfig = Field(default_factory=ReviewConfig)
    models: dict[str, str] = Field(default_factory=dict, description="Model per role: scanner, reviewer, "
                                   "subreviewer. A role without a model runs deterministic analyzers.")
    limits: RunLimits = Field(default_factory=RunLimits)
    title: str = ""

    @field_validator("models")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(REVIEW_ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(REVIEW_ROLES)}")
        empty = sorted(role for role, model in value.items() if not model.strip())
        if empty:  # a typo'd variable would otherwise quietly turn a model review into analyzers only
            raise ValueError(f"no model named for {', '.join(empty)}: name a litellm model, or leave the role "
                             "out to run its deterministic analyzers")
        return value

    def model_for(self, role: str) -> str | None:
        return self.models.get(role)

    @property
    def mode(self) -> str:
        used = [r for r in REVIEW_ROLES if self.models.get(r)]
        return "deterministic" if not used else "model" if len(used) == len(REVIEW_ROLES) else "mixed"

    @classmethod
    def parse(cls, data: JsonValue) -> ReviewJob:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'job'}: {e['msg']}" for e in exc.errors())
            raise JobSpecError(f"invalid review job: {problems}") from None


def check_since(job: ReviewJob) -> None:
    """:class:`JobSpecError` when ``config.since`` is not a commit of a local repository (a git URL is
    checked on the worker once cloned)."""
    if job.config.since is None or job.source.is_git:
        return
    from swarm_tasks.errors import GitError
    from swarm_tasks.host.gitread import merge_base

    try:
        merge_base(Path(job.source.location), job.config.since)
    except GitError as exc:
        raise JobSpecError(f"--since: {exc}") from None


def resolve_models(models: Mapping[str, str], settings: SwarmSettings) -> dict[str, str]:
    """The model of each review role: the job's, else SWARM_MODELS' for the role, else SWARM_MODEL
    (a role left without one runs its deterministic analyzers)."""
    return {role: m for role in REVIEW_ROLES if (m := models.get(role) or settings.model_for(role))}


@lru_cache(maxsize=64)
def _job(raw: str) -> ReviewJob:
    return ReviewJob.model_validate_json(raw)


def job_from_spec(spec: JsonValue) -> ReviewJob:
    """The job stored in a run record (parsed once per process)."""
    import json

    return _job(json.dumps(spec, sort_keys=True))


def review_root(job: ReviewJob, state_dir: Path, run_id: str) -> Path:
    """The repository on this worker (a git URL is cloned on first use)."""
    return materialize(job.source, state_dir, run_id)
