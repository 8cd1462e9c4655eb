"""Exceptions of swarm_tasks: one root, a shallow tree. Tool failures are not here: they go back to
the model as tool results. Budget and contract violations raise."""

from __future__ import annotations


class SwarmError(Exception):
    """Root of every error raised by swarm_tasks."""


class JobSpecError(SwarmError, ValueError):
    """A job (review, build) was described wrongly; nothing was enqueued."""


class ModelKeyMissing(JobSpecError):
    """A model of the job cannot be called: its provider's key (or base URL) is not in the environment."""

    def __init__(self, role: str, model: str, variables: list[str], message: str) -> None:
        super().__init__(message)
        self.role = role
        self.model = model
        self.variables = variables


class BrokerUnavailable(SwarmError):
    """A message (an agent's step, a run's idle hook) could not be put on the Celery broker: it is away
    (restarting, unreachable) after the publisher's own retries. What the message was for is already
    written in Redis; the sender decides whether that is enough (a worker: the sweeper re-sends) or
    the caller must hear of it."""


class BudgetExceeded(SwarmError):
    """An agent or run reached one of its hard limits (turns, tokens, cost, wall time, agents)."""

    def __init__(self, kind: str, limit: float, used: float, scope: str = "agent") -> None:
        super().__init__(f"{scope} budget exceeded: {kind} used {used:g} of {limit:g}")
        self.kind = kind
        self.limit = limit
        self.used = used
        self.scope = scope


class LoopDetected(SwarmError):
    """An agent repeated the same tool call, or two agents ping-ponged messages, past the limit."""


class ModelError(SwarmError):
    """The model could not be called (after retries and fallbacks) or answered unusably.

    ``kind`` is a :class:`swarm_tasks.outcome.ReasonClass` value (auth, rate_limit, timeout,
    unreachable, guard, model_error); ``permanent`` errors (a refused key, an unknown model, the
    guard) are not worth another try; ``advice`` is a sentence for the user (e.g. the key to set).
    ``charged_*``: what its failed attempts cost anyway (a timed-out request was billed, estimated);
    ``retry_after_s``: how long the provider asked us to wait before the next call, if it said."""

    default_kind = "model_error"
    charged_prompt_tokens: int = 0
    charged_completion_tokens: int = 0
    charged_cost_usd: float = 0.0
    retry_after_s: float | None = None

    def __init__(self, message: str, *, kind: str | None = None, model: str | None = None,
                 status_code: int | None = None, permanent: bool = False, advice: str = "") -> None:
        super().__init__(message)
        self.kind = kind or self.default_kind
        self.model = model
        self.status_code = status_code
        self.permanent = permanent
        self.advice = advice


class ContextOverflow(ModelError):
    """The prompt does not fit the model's context window: sending it again would fail again (compact it).
    ``window_tokens``: the window the provider stated, if it did."""

    window_tokens: int | None = None


class RealProviderBlocked(ModelError):
    """The model guard refused a call that would have reached a real provider over the network."""

    default_kind = "guard"

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("permanent", True)
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ToolError(SwarmError):
    """Raised inside a tool to report a failure; the runner turns it into an error tool result."""


class SandboxError(SwarmError):
    """The sandbox could not be set up as configured (e.g. bwrap requested but unusable)."""


class WorkspaceError(SwarmError):
    """A path escapes the workspace or a workspace cannot be prepared."""


class PluginError(SwarmError):
    """A workflow plug-in cannot be loaded, or clashes with another (a run kind or tool name twice)."""


class RunNotFound(SwarmError, LookupError):
    """No run has the given id."""


class GitError(SwarmError):
    """A git operation failed in a way the caller must hear about (not a retried push race)."""


class StoppedBySignal(SwarmError):
    """A helper process of ours (an analyzer: ruff, ESLint) was stopped by a signal from outside, as a warm
    stop of its worker does (systemd and ``killpg`` signal every process of the worker). Not a result: the
    turn raises and is redone, where reporting it made a finding ("analyzer failed") that a run without the
    stop has not."""


class ReviewError(SwarmError):
    """A code review could not start or continue: a bad root path, an unreadable rules file, a bad record."""


class MessageSignatureError(SwarmError):
    """A task message is not signed, its HMAC does not match the signing key, or it is signed for another
    task, id or queue, has expired, or already ran (a replay)."""


class RecordSignatureError(SwarmError):
    """A record workers act on (a run's job, an agent spec) is unsigned or does not match its signature:
    it was written or changed in Redis by someone without the signing key."""
