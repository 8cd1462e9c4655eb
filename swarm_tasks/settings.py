"""All configuration of swarm-tasks, declared once. Every field is ``SWARM_<FIELD>`` in the environment.

Units are in the field names (``_s`` seconds, ``_usd`` US dollars, ``_bytes`` bytes). Nothing else in
the project reads ``os.environ``: build a :class:`SwarmSettings` (or take one passed in) instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator
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


# Environment variables a model provider may read in the process that makes the call (litellm reads them
# there): local workers started by our own code get exactly these from the launching process, besides
# SWARM_*. Prefixes of the providers litellm speaks to, plus proxy and CA settings their HTTP clients use.
PROVIDER_ENV_PREFIXES = (
    "OPENAI_", "ANTHROPIC_", "AZURE_", "AWS_", "GEMINI_", "GOOGLE_", "VERTEXAI_", "VERTEX_", "MISTRAL_",
    "COHERE_", "CO_API_", "GROQ_", "DEEPSEEK_", "XAI_", "TOGETHER_", "TOGETHERAI_", "OPENROUTER_", "OR_",
    "HUGGINGFACE_", "HF_", "FIREWORKS_", "FIREWORKSAI_", "PERPLEXITY_", "PERPLEXITYAI_", "DATABRICKS_",
    "WATSONX_", "WX_", "OLLAMA_", "REPLICATE_", "CEREBRAS_", "NVIDIA_NIM_", "DASHSCOPE_", "AI21_",
    "SAMBANOVA_", "CLOUDFLARE_", "FRIENDLIAI_", "NSCALE_", "HOSTED_VLLM_", "LM_STUDIO_", "LITELLM_",
)
PROVIDER_ENV_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                      "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class ModelOptions(BaseModel):
    """How to reach one model (or every model of one role): endpoint, key, window and call limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_base: str | None = Field(default=None, description="Endpoint for this model (wins over SWARM_API_BASE).")
    api_key_env: str | None = Field(
        default=None, pattern=_ENV_NAME, description="Name of the environment variable holding this model's key "
        "(the key itself never sits in a setting); wins over SWARM_API_KEY and the provider's own variable.")
    context_window_tokens: int | None = Field(default=None, gt=0, description="Prompt tokens the model accepts "
                                              "(default: litellm's model map, else 128,000).")
    max_output_tokens: int | None = Field(default=None, gt=0, description="max_tokens sent with each call "
                                          "(default: SWARM_MODEL_MAX_OUTPUT_TOKENS within the model's own cap).")
    max_concurrent_calls: int | None = Field(default=None, gt=0, description="Calls to this model in flight at "
                                             "once across every worker (a semaphore in Redis).")
    requests_per_minute: int | None = Field(default=None, gt=0, description="Calls to this model started per "
                                            "minute across every worker (a window in Redis).")


@dataclass(frozen=True, slots=True)
class ModelEndpoint:
    """Where one call goes and with which key (None: litellm reads the provider's own variables)."""

    api_base: str | None
    api_key: SecretStr | None
    key_env: str | None  # the variable the key comes from, named in errors ("SWARM_API_KEY", "OPENAI_KEY_B")


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
    api_base: str | None = Field(default=None, description="Base URL for every model without its own "
                                "(SWARM_MODEL_OPTIONS); unset: each provider's own endpoint.")
    api_key: SecretStr | None = Field(default=None, description="API key for every model without its own "
                                      "(SWARM_MODEL_OPTIONS); unset: each provider's own variable (OPENAI_API_KEY...).")
    model_options: dict[str, ModelOptions] = Field(
        default_factory=dict, description="Per model (a litellm model string) or per role (scanner, worker...), "
        'JSON: {"openai/gpt-5.2": {"api_key_env": "TEAM_B_OPENAI_KEY", "requests_per_minute": 500}, '
        '"scanner": {"api_base": "https://proxy.internal/v1"}}. A role\'s entry wins over its model\'s, '
        'which wins over "*" (every model).')
    model_max_output_tokens: int = Field(default=8192, gt=0, description="max_tokens sent with each call, within "
                                         "the model's own output cap, unless its SWARM_MODEL_OPTIONS says otherwise.")
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
        default="threads", description="Celery pool for agent queues (see swarm_tasks.worker.runtime for why).")
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
    agent_max_turns: int | None = Field(
        default=None, ge=1, description="Cap on model turns per agent. Each kind of agent has its own limit "
        "(a scan 8, a reviewer 20, a planner 80; 60 if it sets none); this caps them all.")
    agent_max_tokens: int = Field(default=2_000_000, ge=1, description="Prompt+completion tokens per agent "
                                  "(a cap over each agent's own limit, like every SWARM_AGENT_MAX_*).")
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
    run_max_agents: int = Field(default=20_000, ge=1, description="Agents one run may start in total (the "
                                "default of a job that sets none; recorded in the run when it starts).")
    run_max_concurrent_agents: int = Field(default=6_000, ge=1, description="Agents of one run alive at once "
                                           "(default of a job that sets none).")
    run_max_cost_usd: float = Field(default=100.0, gt=0, description="Dollars one run may spend (default of a "
                                    "job that sets none).")
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

    @model_validator(mode="after")
    def _embedded_in_state_dir(self) -> SwarmSettings:
        # Runs of a swarm without SWARM_REDIS_URL are kept with its other state: status, report and
        # resume work after the command that ran them exited.
        if self.embedded_dir is None:
            self.embedded_dir = self.state_dir / "redis"
        return self

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

    _options: dict[tuple[str, str | None], ModelOptions] = PrivateAttr(default_factory=dict)

    def model_for(self, role: str) -> str | None:
        """The model of ``role``: its own, else the default, else None (deterministic mode)."""
        return self.models.get(role) or self.model

    def queue_for(self, role: str) -> str:
        return ROLES_DEFAULT_QUEUE.get(role, "agents")

    def options_for(self, model: str, role: str | None = None) -> ModelOptions:
        """The model's options: its role's entry over its own over "*" (field by field). Memoised: every
        model call asks several times."""
        found = self._options.get((model, role))
        if found is None:
            merged: dict[str, object] = {}
            for name in ("*", model, role):
                entry = self.model_options.get(name) if name else None
                if entry is not None:
                    merged.update(entry.model_dump(exclude_none=True))
            found = self._options[(model, role)] = ModelOptions(**merged)  # type: ignore[arg-type]
        return found

    def endpoint_for(self, model: str, role: str | None = None) -> ModelEndpoint:
        """Base URL and key of a call to ``model`` for ``role``: its SWARM_MODEL_OPTIONS entry, else
        SWARM_API_BASE / SWARM_API_KEY, else nothing (litellm reads the provider's own variables)."""
        options = self.options_for(model, role)
        base = options.api_base or self.api_base
        if options.api_key_env:
            value = os.environ.get(options.api_key_env)
            return ModelEndpoint(base, SecretStr(value) if value else None, options.api_key_env)
        if self.api_key is not None and self.api_key.get_secret_value():
            return ModelEndpoint(base, self.api_key, "SWARM_API_KEY")
        return ModelEndpoint(base, None, None)

    def provider_environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The model provider variables of ``environ`` (default: this process's environment) that a
        local worker needs: every provider prefix litellm reads, proxies and CA bundles, and each
        variable SWARM_MODEL_OPTIONS names as a key. Handed to worker processes, never logged."""
        source = os.environ if environ is None else environ
        named = {o.api_key_env for o in self.model_options.values() if o.api_key_env}
        return {name: value for name, value in source.items()
                if name in named or name in PROVIDER_ENV_NAMES or name.startswith(PROVIDER_ENV_PREFIXES)}

    def provider_secrets(self) -> tuple[str, ...]:
        """Provider keys this process can see (for masking them in transcripts and logs)."""
        return tuple(v for k, v in self.provider_environment().items()
                     if v and len(v) >= 8 and any(w in k for w in ("KEY", "TOKEN", "SECRET", "PASSWORD")))


@lru_cache(maxsize=1)
def get_settings() -> SwarmSettings:
    """Settings read from the environment once per process (entry points only; pass them on)."""
    return SwarmSettings()
