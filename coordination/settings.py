"""Settings of the coordination layer, read once from the environment (prefix ``SWARM_``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


class CoordinationSettings(BaseSettings):
    """Where the shared state lives and the limits that protect it.

    Every field can be set as ``SWARM_<FIELD>`` in the environment (``SWARM_REDIS_URL=...``).
    """

    model_config = SettingsConfigDict(env_prefix="SWARM_", extra="ignore", validate_default=True)

    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://, rediss:// or unix:// URL, with username and password if needed; "
        "redis+cluster:// or rediss+cluster:// (one or more seed nodes, comma separated: "
        "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000) for a Redis Cluster. "
        "Unset: start an embedded Redis server owned by this process.",
    )
    redis_cluster: bool = Field(
        default=False, description="SWARM_REDIS_URL (a redis:// or rediss:// URL) names a node of a Redis Cluster; "
        "the same as writing its scheme as redis+cluster://.")
    redis_ssl_ca_certs: Path | None = Field(default=None, description="CA bundle for rediss:// URLs.")
    redis_ssl_certfile: Path | None = Field(default=None, description="Client certificate for rediss://.")
    redis_ssl_keyfile: Path | None = Field(default=None, description="Client key for rediss://.")
    redis_socket_timeout_s: float = Field(default=30.0, gt=0, description="Seconds per Redis command.")
    redis_connect_timeout_s: float = Field(default=5.0, gt=0, description="Seconds to connect.")
    redis_reconnect_s: float = Field(
        default=120.0, gt=0, description="Seconds a client following a run waits for an unreachable Redis to come "
        "back (a restart, a failover) before giving up; workers wait as long as it takes. Both retry with the "
        "same jittered backoff (coordination.store.RECONNECT).")
    redis_max_connections: int = Field(
        default=1024, ge=1, description="Connections one process opens at most (opened as needed); a thread "
        "that finds them all busy waits for one (up to redis_socket_timeout_s) instead of failing.")
    key_prefix: str = Field(default="swarm", pattern=r"^[A-Za-z0-9_.-]{1,32}$",
                            description="First part of every Redis key, so several deployments share one Redis.")
    embedded_dir: Path | None = Field(
        default=None, description="Directory of the embedded server's data (an append-only file), config and log "
        "(closed to other users: mode 0700), used without SWARM_REDIS_URL: its runs are kept, and every process "
        "of the directory shares the one server. Default for swarm processes: <SWARM_STATE_DIR>/redis; unset "
        "(the coordination layer alone): a private server in a temporary directory.")
    embedded_appendonly: bool = Field(default=False, description="The private (temporary) embedded server keeps "
                                      "an AOF (survives its restart); the embedded_dir one always does.")
    max_record_bytes: int = Field(default=1_048_576, gt=0, description="Largest encoded record, in bytes.")
    max_result_bytes: int = Field(
        default=16 * 1_048_576, gt=0, description="Largest result an agent may end with, in bytes (a result too "
        "large for its record is stored apart from it, compressed); a larger one fails the agent with that reason.")
    max_message_bytes: int = Field(default=262_144, gt=0, description="Largest mailbox message body, in bytes.")
    event_stream_maxlen: int = Field(default=20_000, gt=0, description="Events kept per run (approximate).")
    notes_stream_maxlen: int = Field(default=5_000, gt=0, description="Notes kept per scope (approximate).")
    lease_s: float = Field(default=30.0, gt=0, description="Seconds a task claim lasts without a heartbeat.")
    sweep_interval_s: float = Field(default=5.0, gt=0, description="Seconds between lease sweeps.")
    max_attempts: int = Field(default=3, ge=1, description="Claims a task gets before it is failed.")
    cas_max_attempts: int = Field(default=64, ge=1, description="Compare-and-set tries in update().")
    cas_backoff_base_s: float = Field(default=0.001, gt=0, description="First retry backoff, seconds.")
    cas_backoff_cap_s: float = Field(default=0.05, gt=0, description="Largest retry backoff, seconds.")

    @field_validator("redis_url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in _SCHEMES:
            raise ValueError(f"SWARM_REDIS_URL must start with one of {', '.join(s + '://' for s in _SCHEMES)}; "
                             f"got {scheme or 'no scheme'}://")
        return value

    @model_validator(mode="after")
    def _cluster_needs_url(self) -> CoordinationSettings:
        if self.redis_cluster and self.redis_url is None:
            raise ValueError("SWARM_REDIS_CLUSTER=1 needs SWARM_REDIS_URL naming a node of the cluster "
                             "(an embedded server is never a cluster)")
        return self

    @property
    def cluster(self) -> bool:
        """True when the coordination Redis is a Redis Cluster (by URL scheme or ``SWARM_REDIS_CLUSTER``)."""
        if self.redis_url is None:
            return False
        return self.redis_cluster or urlsplit(self.redis_url.get_secret_value()).scheme in CLUSTER_SCHEMES
