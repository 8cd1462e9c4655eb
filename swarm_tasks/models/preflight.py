"""Before a run starts: every model it names can be called with a key, and what it costs is known.

:func:`check_models` is what the CLI, the Python API and the workflows call before anything is
enqueued. It refuses (``ModelKeyMissing``, a :class:`~swarm_tasks.errors.JobSpecError`, so the CLI
exits 2) a model whose provider credentials are missing, naming the variable to set, and a cost cap
that cannot hold because a model has no known price; it returns warnings for what is merely worth
saying (an unpriced model under the default cost cap, a fleet that could not be asked).

Where the keys must be: local workers (started by this process) get this process's provider
variables (:meth:`SwarmSettings.provider_environment`), so this process's environment is checked. A
remote fleet has its own; each worker advertises the *names* of the provider variables it has
(never their values, see :func:`advertised_names`) and a key missing here is looked for there (with
no live worker on the role's queue to ask, a key missing here is refused: better said now than by
every agent failing later).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from coordination.registry import Registration
from swarm_tasks.errors import JobSpecError, ModelKeyMissing
from swarm_tasks.settings import SwarmSettings

SCRIPTED_PREFIX = "scripted/"
# litellm lists these as missing although it has a default for them.
_OPTIONAL = frozenset({"AZURE_API_VERSION"})
_KEYISH = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIALS", "PROJECT", "REGION", "BASE", "VERSION", "PROFILE")


@dataclass
class ModelCheck:
    """What the preflight found: the models it checked, and what the user should hear."""

    checked: dict[str, str] = field(default_factory=dict)  # role -> model
    warnings: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)


def advertised_names(settings: SwarmSettings) -> str:
    """The names (never the values) of the provider variables this worker process has, comma-separated:
    put in its registration so a submitter can check a remote fleet for a key."""
    names = settings.provider_environment()
    return ",".join(sorted(n for n, v in names.items() if v and any(w in n.upper() for w in _KEYISH)))


def _missing(model: str, settings: SwarmSettings, role: str) -> list[str]:
    """Variables litellm says ``model`` needs and this process lacks (after our own key and base)."""
    from swarm_tasks.models.litellm_setup import litellm  # imports litellm: only when asked

    endpoint = settings.endpoint_for(model, role)
    if endpoint.key_env and endpoint.api_key is None:
        return [endpoint.key_env]  # SWARM_MODEL_OPTIONS names a variable that is not set
    key = endpoint.api_key.get_secret_value() if endpoint.api_key is not None else None
    try:
        found = litellm.validate_environment(model=model, api_key=key, api_base=endpoint.api_base)
    except Exception:  # litellm cannot tell (an unknown provider): the first call will say
        return []
    if found.get("keys_in_environment"):
        return []
    return [k for k in found.get("missing_keys") or [] if k not in _OPTIONAL]


def price_known(model: str, settings: SwarmSettings) -> bool:
    from swarm_tasks.models.catalog import price_known as known  # imports litellm: only when asked

    return known(model, settings)


def _fleet_has(names: Sequence[str], queue: str, fleet: Iterable[Registration]) -> bool | None:
    """Whether a live worker on ``queue`` advertises every one of ``names``; None if none is live."""
    serving = [w for w in fleet if queue in w.capabilities]
    if not serving:
        return None
    return any(set(names) <= set(filter(None, w.meta.get("model_env", "").split(","))) for w in serving)


def check_models(models: Mapping[str, str], settings: SwarmSettings, *, cost_capped: bool = False,
                 fleet: Sequence[Registration] | None = None,
                 queues: Mapping[str, str] | None = None) -> ModelCheck:
    """Refuse a run whose models cannot be called or priced; see the module docstring.

    ``models`` maps role -> litellm model (roles without a model are skipped). ``cost_capped``: the user
    set a cost cap (a job's ``max_cost_usd`` or a ``SWARM_*_MAX_COST_USD``), which an unpriced model
    would silently escape, so it is refused rather than warned about. ``fleet``: the live workers of a
    remote fleet (None: workers are started here, with this process's environment). ``queues``: the
    queue each role's agents run on (default: ``settings.queue_for``).
    """
    check = ModelCheck()
    for role, first in sorted(models.items()):
        if not first:
            continue
        check.checked[role] = first
        for model in dict.fromkeys([first, *settings.model_fallbacks]):  # a fallback is called for the role too
            if not model.startswith(SCRIPTED_PREFIX):
                _check_key(role, model, settings, fleet, (queues or {}).get(role) or settings.queue_for(role), check)
            if not price_known(model, settings) and model not in check.unpriced:
                check.unpriced.append(model)
    for model in check.unpriced:
        if cost_capped:
            raise JobSpecError(
                f"no price is known for model {model!r}, so the run's cost cap cannot hold: set its price in "
                f'SWARM_MODEL_PRICES (JSON: {{"{model}": {{"input_usd_per_mtok": ..., "output_usd_per_mtok": ...}}}})'
                " or drop the cost cap (per-agent token budgets, SWARM_AGENT_MAX_TOKENS, still hold)")
        check.warnings.append(
            f"no price is known for model {model!r}: its calls count as $0 against cost budgets; only token "
            "budgets (SWARM_AGENT_MAX_TOKENS) bound it. Set SWARM_MODEL_PRICES to price it.")
    return check


def _check_key(role: str, model: str, settings: SwarmSettings, fleet: Sequence[Registration] | None,
               queue: str, check: ModelCheck) -> None:
    missing = _missing(model, settings, role)
    if not missing:
        return
    names = " and ".join(missing) if len(missing) < 3 else ", ".join(missing)
    if len(missing) == 2 and all(n.endswith("_API_KEY") for n in missing):
        names = " or ".join(missing)  # e.g. GOOGLE_API_KEY or GEMINI_API_KEY: either one will do
    if fleet is not None:
        remote = _fleet_has(missing, queue, fleet)
        if remote:
            return
        if remote is None:
            raise ModelKeyMissing(role, model, missing,
                                  f"{role} model {model!r} needs {names}: it is not set here, and no live worker "
                                  f"serves queue {queue!r} to say it has it (start workers with it in their "
                                  "environment, or set it here)")
        raise ModelKeyMissing(role, model, missing,
                              f"{role} model {model!r} needs {names}: no live worker on queue {queue!r} has it "
                              "in its environment (set it where the workers run, or give the model its own key "
                              "with SWARM_MODEL_OPTIONS api_key_env)")
    raise ModelKeyMissing(role, model, missing,
                          f"{role} model {model!r} needs {names}: set it in the environment (or give the model "
                          "its own key with SWARM_MODEL_OPTIONS api_key_env, or SWARM_API_KEY for every model)")


def cost_capped(settings: SwarmSettings, limits: object = None) -> bool:
    """True if the user set a cost cap: a job's ``max_cost_usd``/``role_max_cost_usd`` or a
    ``SWARM_RUN_MAX_COST_USD``/``SWARM_AGENT_MAX_COST_USD`` of their own (not the defaults)."""
    if {"run_max_cost_usd", "agent_max_cost_usd"} & settings.model_fields_set:
        return True
    fields_set = getattr(limits, "model_fields_set", set())
    if isinstance(limits, Mapping):
        fields_set = set(limits)
    return bool({"max_cost_usd", "role_max_cost_usd"} & set(fields_set))


__all__ = ["ModelCheck", "ModelKeyMissing", "advertised_names", "check_models", "cost_capped", "price_known"]
