"""All configuration of swarm-tasks, declared once. Every field is ``SWARM_<FIELD>`` in the environment.

Units are in the field names (``_s`` seconds, ``_usd`` US dollars, ``_bytes`` bytes). Nothing else in
the project reads ``os.environ``: build a :class:`SwarmSettings` (or take one passed in) instead.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from coordination.errors import ConfigurationError
from coordination.settings import CoordinationSettings

ROLES_DEFAULT_QUEUE = {
    "planner": "plan", "worker": "work", "judge": "judge", "resolver": "work",
    "scanner": "scan", "reviewer": "review", "subreviewer": "review", "agent": "agents",
}
QUEUES = ("agents", "plan", "work", "judge", "scan", "review", "control")
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp", "redis", "rediss", "unix")


def _default_state_dir() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "swarm-tasks"


class ModelPrice(BaseModel):
    """What a model costs, in US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_usd_per_mtok: float = Field(ge=0, description="Dollars per million prompt tokens.")
    output_usd_per_mtok: float = Field(ge=0, description="Dollars per million completion tokens.")

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok) / 1e6


class SwarmSettings(CoordinationSettings):
    """Configuration of the Celery app, the agents, their models, budgets and sandbox."""

    model_config = SettingsConfigDict(env_prefix="SWARM_", extra="ignore", validate_default=True)

    # -- models -----------------------------------------------------------------------------------
    model: str | None = Field(
        default=None, description="litellm model string used by every role without its own "
        "(e.g. anthropic/claude-opus-4-5). Unset and no role model: deterministic analysis, named as such.")
    models: dict[str, str] = Field(
        default_factory=dict, description='Model per role, JSON: {"planner": "openai/gpt-5.2", ...}.')
    model_fallbacks: list[str] = Field(default_factory=list, description="Models tried when the first fails.")
    model_retries: int = Field(default=2, ge=0, description="Retries of a failed model call.")
    model_timeout_s: float = Field(default=300.0, gt=0, description="Seconds per model call.")
    api_base: str | None = Field(default=None, description="Base URL for OpenAI-compatible endpoints.")
    api_key: SecretStr | None = Field(default=None, description="API key passed to litellm, if any.")
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description="Prices of models litellm does not know (self-hosted, new) or that you "
        'pay differently for, JSON: {"openai/my-model": {"input_usd_per_mtok": 3, "output_usd_per_mtok": 15}}. '
        "They win over litellm's price map, so cost budgets hold for every model.")
    model_guard: Literal["off", "local-only"] = Field(
        default="off", description="local-only: refuse any model call that would leave this machine (tests).")

    # -- Celery -----------------------------------------------------------------------------------
    broker_url: SecretStr | None = Field(
        default=None, description="Celery's broker when it is not the coordination Redis: "
        "amqp://user:pw@host:5672/vhost "
        "(RabbitMQ: quorum queues, publisher confirms) or redis://. Needed when SWARM_REDIS_URL is a Redis Cluster: "
        "kombu cannot use one. Unset: SWARM_REDIS_URL is the broker too.")
    broker_visibility_timeout_s: int = Field(default=3600, gt=0, description="Redis broker re-delivery time.")
    worker_pool: Literal["threads", "prefork", "solo"] = Field(
        default="threads", description="Celery pool for agent queues (see swarm_tasks.runtime for why).")
    worker_concurrency: int = Field(default=512, ge=1, description="Agent turns one worker process runs at once.")
    task_signing_key: SecretStr | None = Field(
        default=None, description="If set, task messages are signed with HMAC-SHA256 (name, id, queue, expiry and "
        "body) and others refused, replays too; runs and agent specs are signed by their submitter and verified "
        "by workers before they act on them.")
    task_signature_ttl_s: float = Field(
        default=86_400.0, gt=0, description="Seconds a signed task message stays valid after it is sent (after its "
        "countdown); a worker refuses it later. Keep it above the longest wait in a queue.")
    flower_basic_auth: SecretStr | None = Field(default=None, description="user:password for Flower.")

    # -- dashboard --------------------------------------------------------------------------------
    dashboard_basic_auth: SecretStr | None = Field(
        default=None, description="user:password the dashboard asks for (HTTP basic auth). Required to serve "
        "it on any address but loopback; with it set, loopback asks too.")
    dashboard_hosts: list[str] = Field(
        default_factory=list, description='Names the dashboard answers to besides localhost and IP addresses '
        '(the name a browser or proxy uses for it), JSON: ["swarm.example.com"]. A request for any other Host '
        "is refused (DNS rebinding).")

    # -- agents -----------------------------------------------------------------------------------
    agent_max_turns: int = Field(default=60, ge=1, description="Model turns per agent.")
    agent_max_tokens: int = Field(default=2_000_000, ge=1, description="Prompt+completion tokens per agent.")
    agent_max_cost_usd: float = Field(default=5.0, gt=0, description="Dollars per agent.")
    agent_max_wall_s: float = Field(default=3600.0, gt=0, description="Seconds from an agent's start to its end.")
    agent_turn_lease_s: float = Field(default=30.0, gt=0, description="Seconds a turn is held without a heartbeat "
                                      "(the holder extends it every third of that, even mid model call).")
    agent_step_grace_s: float = Field(default=120.0, gt=0,
                                      description="Seconds a queued step may wait before the sweeper re-sends it.")
    agent_max_turn_attempts: int = Field(
        default=4, ge=1, description="Times one turn of an agent may be started without being recorded (its step "
        "raised, or its worker died or stalled past the lease) before the agent fails with the last reason: a "
        "poison input ends its agent, never its redelivery.")
    agent_repeat_limit: int = Field(default=3, ge=2, description="Identical consecutive tool calls allowed.")
    run_max_agents: int = Field(default=20_000, ge=1, description="Agents one run may start in total.")
    run_max_concurrent_agents: int = Field(default=6_000, ge=1, description="Agents of one run alive at once.")
    run_max_cost_usd: float = Field(default=100.0, gt=0, description="Dollars one run may spend.")
    context_compact_ratio: float = Field(default=0.75, gt=0, lt=1,
                                         description="Compact when a prompt reaches this share of the window.")

    # -- build swarm ------------------------------------------------------------------------------
    git_username: str | None = Field(
        default=None, description="User name for an HTTP(S) build remote whose URL carries no password "
        "(default: the URL's user name). Used only together with git_password.")
    git_password: SecretStr | None = Field(
        default=None, description="Password or token for an HTTP(S) build remote whose URL carries none; handed "
        "to git by a credential helper, never stored in the run or logged.")

    # -- tools and sandbox ------------------------------------------------------------------------
    state_dir: Path = Field(default_factory=_default_state_dir, description="Workspaces, reports, logs.")
    sandbox: Literal["auto", "bwrap", "subprocess"] = Field(
        default="auto", description="auto: bubblewrap when it works here, else a restricted subprocess.")
    shell_timeout_s: float = Field(default=120.0, gt=0, description="Seconds per shell command.")
    shell_max_output_bytes: int = Field(default=32_768, gt=0, description="Shell output kept per command.")
    shell_memory_bytes: int = Field(default=2 * 1024**3, gt=0, description="Address-space limit per command.")
    shell_max_processes: int = Field(default=256, gt=0, description="Processes a command may create.")
    shell_max_file_bytes: int = Field(default=256 * 1024**2, gt=0, description="Largest file a command may write.")
    file_max_read_bytes: int = Field(default=262_144, gt=0, description="Bytes a file tool returns per read.")
    file_max_write_bytes: int = Field(default=4 * 1024**2, gt=0, description="Bytes a file tool may write.")

    @field_validator("broker_url")
    @classmethod
    def _check_broker(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme.endswith("+cluster"):
            raise ValueError("SWARM_BROKER_URL cannot be a Redis Cluster: Celery's Redis transport (kombu) does not "
                             "support one. Use RabbitMQ (amqp://) or a single Redis server for the broker")
        if scheme not in BROKER_SCHEMES:
            raise ValueError(f"SWARM_BROKER_URL must start with one of {', '.join(s + '://' for s in BROKER_SCHEMES)}; "
                             f"got {scheme or 'no scheme'}://")
        return value

    def celery_broker_url(self, redis_url: str) -> str:
        """Celery's broker: SWARM_BROKER_URL, else the coordination Redis at ``redis_url``."""
        if self.broker_url is not None:
            return self.broker_url.get_secret_value()
        if self.cluster:
            raise ConfigurationError("SWARM_REDIS_URL names a Redis Cluster, which Celery cannot use as its broker "
                             "(kombu has no cluster transport): set SWARM_BROKER_URL to RabbitMQ (amqp://...) "
                             "or to a single Redis server")
        return redis_url

    def celery_result_url(self, redis_url: str) -> str | None:
        """Where Celery may keep task results: the coordination Redis, or a Redis broker when coordination
        is a cluster (Celery's Redis backend cannot use one); None: no backend (no task keeps a result)."""
        if not self.cluster:
            return redis_url
        broker = self.celery_broker_url(redis_url)
        return broker if urlsplit(broker).scheme in ("redis", "rediss", "unix") else None

    def model_for(self, role: str) -> str | None:
        """The model of ``role``: its own, else the default, else None (deterministic mode)."""
        return self.models.get(role) or self.model

    def queue_for(self, role: str) -> str:
        return ROLES_DEFAULT_QUEUE.get(role, "agents")


@lru_cache(maxsize=1)
def get_settings() -> SwarmSettings:
    """Settings read from the environment once per process (entry points only; pass them on)."""
    return SwarmSettings()
