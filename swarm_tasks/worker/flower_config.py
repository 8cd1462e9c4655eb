"""Flower for a swarm, configured from :class:`SwarmSettings`: ``celery -A swarm_tasks flower``.

Flower executes its config file (``./flowerconfig.py``, or the one ``--conf`` names) after reading
``FLOWER_*`` variables and the command line, and parses the command line once more afterwards; the
repository's ``flowerconfig.py`` (also in the container image) hands over to :func:`configure`.
Every value set here is a default: an option given on the command line always wins.

What it sets, and why:

* ``basic_auth`` from ``SWARM_FLOWER_BASIC_AUTH`` (``user:password``).
* ``address`` 127.0.0.1 unless one is given (Flower's own default is every interface), and it refuses
  to listen beyond loopback with no authentication at all: task arguments name runs and agents, and
  Flower's API can send tasks.
* ``read_only``: revoking or terminating an agent step in Flower acts on the Celery message behind
  the run's back (the agent waits until the sweeper re-sends it). Steer runs with ``swarm cancel`` and
  ``swarm resume``; pass ``--read_only=False`` to get Flower's buttons back.
* the HTTP API (``/api/workers``, ``/api/tasks``) answers as the pages do: Flower 2 refuses it with 401
  unless authentication is configured or ``FLOWER_UNAUTHENTICATED_API`` is set, so on loopback with no
  authentication and read-only (where the pages already answer anyone local) it answers, without the
  ``Access-Control-Allow-Origin: *`` Flower would then send, so no other web site a browser visits can
  read it (:func:`install_open_api`). With basic auth or OAuth the API asks for the same credential as
  the pages. An explicit ``FLOWER_UNAUTHENTICATED_API`` in the environment is Flower's as it is.
* the tasks page shows the ``args`` column: ``run=.. agent=.. role=.. spec=.. seq=..``.
* offline workers are forgotten after five minutes (an autoscaled fleet comes and goes).
* ``/metrics`` also exports ``swarm_queue_messages{queue,state}`` (see :mod:`swarm_tasks.worker.flower_metrics`).
* a task keeps the name its worker reported (``swarm.agent.step:<spec>``) when the client's
  ``task-sent`` event, which carries the plain task name, arrives after the worker's events
  (:class:`ShadowNamedTask`).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from typing import Any

from celery import states
from celery.events.state import Task
from prometheus_client.registry import REGISTRY, CollectorRegistry
from pydantic import ValidationError

from coordination.errors import ConfigurationError
from swarm_tasks.settings import SwarmSettings, get_settings
from swarm_tasks.worker import flower_metrics

FLOWER_DEFAULT_TASK_COLUMNS = "name,uuid,state,received,runtime,worker"
TASK_COLUMNS = "name,args,state,received,started,runtime,worker,uuid"
PURGE_OFFLINE_WORKERS_S = 300
LOOPBACK_ADDRESS = "127.0.0.1"
UNAUTHENTICATED_API = "FLOWER_UNAUTHENTICATED_API"


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name or "" (every interface)


def basic_auth_credential(settings: SwarmSettings) -> str | None:
    """``SWARM_FLOWER_BASIC_AUTH`` checked: ``user:password``, both parts non-empty."""
    if settings.flower_basic_auth is None:
        return None
    credential = settings.flower_basic_auth.get_secret_value()
    user, colon, password = credential.partition(":")
    if not (user and colon and password):
        raise ConfigurationError("SWARM_FLOWER_BASIC_AUTH must be user:password (both non-empty)")
    return credential


def flower_options(current: Mapping[str, Any], settings: SwarmSettings) -> dict[str, Any]:
    """The Flower options to set, given the options Flower has parsed so far (``options.as_dict()``)."""
    if settings.redis_url is None:
        # Without it this process would start a private embedded Redis and watch an empty swarm.
        raise ConfigurationError(
            "Flower needs SWARM_REDIS_URL: the Redis your workers use (export SWARM_REDIS_URL=redis://HOST:6379/0). "
            "Runs of a local `swarm review` live in the embedded Redis of its state directory: "
            "`swarm redis-url` prints that server's URL while a swarm command keeps it running")
    chosen: dict[str, Any] = {}
    basic_auth = list(current.get("basic_auth") or [])
    credential = basic_auth_credential(settings)
    if credential is not None and credential not in basic_auth:
        chosen["basic_auth"] = basic_auth = [*basic_auth, credential]
    address = current.get("address") or ""
    if not address:
        chosen["address"] = address = LOOPBACK_ADDRESS
    authenticated = bool(basic_auth or current.get("auth"))
    if not current.get("unix_socket") and not is_loopback(address) and not authenticated:
        raise ConfigurationError(
            f"Flower would listen on {address} with no authentication: set SWARM_FLOWER_BASIC_AUTH=user:password, "
            "use OAuth (--auth and FLOWER_OAUTH2_*), or keep it on 127.0.0.1 behind an authenticating proxy")
    if current.get("tasks_columns", FLOWER_DEFAULT_TASK_COLUMNS) == FLOWER_DEFAULT_TASK_COLUMNS:
        chosen["tasks_columns"] = TASK_COLUMNS
    if current.get("purge_offline_workers") is None:
        chosen["purge_offline_workers"] = PURGE_OFFLINE_WORKERS_S
    if not current.get("read_only"):
        chosen["read_only"] = True
    return chosen


class ShadowNamedTask(Task):
    """Flower's record of a task, merging out-of-order events without losing the shadow name.

    Agent steps are sent with ``shadow="swarm.agent.step:<spec>"``: the worker's ``task-received`` event
    carries that name, the client's ``task-sent`` event the plain ``swarm.agent.step``. The two come
    from different processes, so Flower may get ``task-sent`` last; Celery's merge then takes every
    field of the "earlier" event and renames a finished task back to ``swarm.agent.step``. A late
    ``task-sent`` now contributes only what no worker event carries.
    """

    merge_rules = {**Task.merge_rules,
                   states.PENDING: ("queue", "exchange", "routing_key", "root_id", "parent_id", "eta", "expires")}


def install_task_names() -> None:
    """Make Flower's event state use :class:`ShadowNamedTask` (Flower creates tasks with ``self.Task``)."""
    from flower.events import EventsState

    EventsState.Task = ShadowNamedTask


def open_api(options: Mapping[str, Any]) -> bool:
    """Should the API answer without a credential, given Flower's final options? Only where the pages
    already do: no authentication, loopback (or a unix socket), and read-only, so nothing can be sent or
    revoked through it."""
    if options.get("basic_auth") or options.get("auth") or not options.get("read_only"):
        return False
    return bool(options.get("unix_socket")) or is_loopback(str(options.get("address") or ""))


def install_open_api() -> None:
    """Decide Flower's ``unauthenticated_api`` per request from its final options (the command line is
    parsed again after this file, so only then are they known): :func:`open_api`, unless
    ``FLOWER_UNAUTHENTICATED_API`` is set in the environment (Flower's own variable; a user's value wins).
    Opened by us, the API sends no ``Access-Control-Allow-Origin: *``: any page a local browser opens
    could otherwise read task arguments; same-origin pages and curl need no such header."""
    from flower.utils import strtobool
    from flower.views import BaseHandler

    default_headers = BaseHandler.set_default_headers

    def explicit() -> str:
        return os.environ.get(UNAUTHENTICATED_API) or ""

    def unauthenticated_api(self: BaseHandler) -> bool:
        if explicit():
            return bool(strtobool(explicit()))
        return open_api(self.application.options.as_dict())

    def set_default_headers(self: BaseHandler) -> None:
        if explicit():
            default_headers(self)
        else:
            self.set_header("X-Content-Type-Options", "nosniff")

    BaseHandler.unauthenticated_api = property(unauthenticated_api)  # type: ignore[assignment,method-assign]
    BaseHandler.set_default_headers = set_default_headers  # type: ignore[method-assign]


def configure(current: Mapping[str, Any], settings: SwarmSettings | None = None,
              registry: CollectorRegistry = REGISTRY) -> dict[str, Any]:
    """Entry point of ``flowerconfig.py``: the options to apply, the queue metrics installed (Flower
    serves the default Prometheus registry on ``/metrics``) and the API opened where it is safe."""
    settings = settings or get_settings()
    chosen = flower_options(current, settings)
    flower_metrics.install(settings, registry)
    install_task_names()
    install_open_api()
    return chosen


def configure_or_exit(current: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`configure` for ``flowerconfig.py``: a configuration Flower must not start with is one clear
    line on stderr and exit status 2, not a traceback from inside Flower's option parser."""
    try:
        return configure(current)
    except (ConfigurationError, ValidationError) as exc:
        print(f"flower: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["TASK_COLUMNS", "ShadowNamedTask", "basic_auth_credential", "configure", "configure_or_exit",
           "flower_options", "install_open_api", "install_task_names", "is_loopback", "open_api"]
