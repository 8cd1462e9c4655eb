"""Every Redis key name the project uses, and nowhere else.

Keys of one swarm run share the hash tag ``{run}`` so that a multi-key Lua script stays in one
cluster slot, and so that many runs can share one Redis without seeing each other.
"""

from __future__ import annotations

import hashlib
import re

from coordination.errors import InvalidIdentifier

_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")

GLOBAL_SCOPE = "global"


def check_id(value: str, what: str = "identifier") -> str:
    """Return ``value`` if it is a safe identifier, else raise :class:`InvalidIdentifier`."""
    if not isinstance(value, str) or not _IDENT.match(value):
        raise InvalidIdentifier(
            f"{what} {value!r} is not valid: use 1-128 letters, digits, '_', '.', ':', '@' or '-', "
            "starting with a letter or digit")
    return value


def limit_name(name: str) -> str:
    """A key-safe form of any name (a model string has '/'): readable, and unique by a short digest."""
    safe = re.sub(r"[^A-Za-z0-9_.:@-]", "_", name)[:96]
    if safe == name:
        return name
    return f"{safe}~{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"


class Keys:
    """Key names of one scope (a swarm run, or the global scope for nodes and the run index)."""

    def __init__(self, prefix: str, scope: str) -> None:
        self.prefix = prefix
        self.scope = check_id(scope, "run id")
        self._base = f"{prefix}:{{{self.scope}}}"

    # -- generic records ------------------------------------------------------------------
    def record(self, kind: str, ident: str) -> str:
        return f"{self._base}:rec:{kind}:{check_id(ident, kind + ' id')}"

    # -- task board -----------------------------------------------------------------------
    def task(self, task_id: str) -> str:
        return f"{self._base}:task:{check_id(task_id, 'task id')}"

    def ready(self, role: str) -> str:
        return f"{self._base}:ready:{check_id(role, 'role')}"

    def roles(self) -> str:
        return f"{self._base}:roles"

    def status(self, status: str) -> str:
        return f"{self._base}:status:{status}"

    def leases(self) -> str:
        return f"{self._base}:leases"

    def dependents(self, task_id: str) -> str:
        return f"{self._base}:dependents:{check_id(task_id, 'task id')}"

    def children_open(self) -> str:
        return f"{self._base}:children_open"

    def children(self, parent_id: str) -> str:
        return f"{self._base}:children:{check_id(parent_id, 'task id')}"

    def wake_requests(self) -> str:
        return f"{self._base}:wake_requests"

    def wakeups(self) -> str:
        return f"{self._base}:wakeups"

    # -- events, notes, progress -------------------------------------------------------------
    def events(self) -> str:
        return f"{self._base}:events"

    def notes(self, scope: str) -> str:
        return f"{self._base}:notes:{check_id(scope, 'note scope')}"

    def progress(self) -> str:
        return f"{self._base}:progress"

    # -- registry ---------------------------------------------------------------------------
    def registration(self, ident: str) -> str:
        return f"{self._base}:reg:{check_id(ident, 'registration id')}"

    def registry_index(self, facet: str, value: str) -> str:
        return f"{self._base}:regidx:{facet}:{check_id(value, facet)}"

    # -- mailboxes ---------------------------------------------------------------------------
    def mailbox(self, agent_id: str) -> str:
        return f"{self._base}:mbox:{check_id(agent_id, 'agent id')}"

    def reply(self, correlation_id: str) -> str:
        return f"{self._base}:reply:{check_id(correlation_id, 'correlation id')}"

    # -- agents (state records, conversation logs, turn deadlines, usage roll-ups) ------------------
    def agent(self, agent_id: str) -> str:
        return f"{self._base}:agent:{check_id(agent_id, 'agent id')}"

    def agent_result(self, agent_id: str) -> str:
        """An agent's result when it is too large to ride in its record (stored apart, written with it)."""
        return f"{self._base}:agent_result:{check_id(agent_id, 'agent id')}"

    def conversation(self, agent_id: str, generation: int) -> str:
        return f"{self._base}:conv:{check_id(agent_id, 'agent id')}:{int(generation)}"

    def agent_deadlines(self) -> str:
        """Sorted set of live agents scored by when someone must look at them (lease or step due)."""
        return f"{self._base}:agent_deadlines"

    def agent_status(self, status: str) -> str:
        return f"{self._base}:agent_status:{status}"

    def agent_queue(self) -> str:
        """Sorted set of agents waiting for a concurrency slot, oldest first."""
        return f"{self._base}:agent_queue"

    def pair_messages(self) -> str:
        """Hash counting messages per pair of agents (ping-pong detection)."""
        return f"{self._base}:pair_messages"

    def agent_children(self, agent_id: str) -> str:
        return f"{self._base}:agent_children:{check_id(agent_id, 'agent id')}"

    def work_claims(self) -> str:
        """Hash of run-wide work keys -> the agent that took that work on, for work done inside an agent
        rather than as an agent of its own (a deterministic review's dependency scans and sub-reviews)."""
        return f"{self._base}:work_claims"

    def usage(self, facet: str) -> str:
        """Hash of usage counters (tokens, cost, turns) for ``run``, ``role:<r>`` or ``agent:<id>``."""
        return f"{self._base}:usage:{facet}"

    def reservations(self) -> str:
        """Hash of holder -> dollars set aside for its call in flight (see coordination.budget)."""
        return f"{self._base}:reserved"

    def run_record(self) -> str:
        return f"{self._base}:run"

    def findings(self) -> str:
        return f"{self._base}:findings"

    def dedupe(self, name: str) -> str:
        """Hash of idempotency keys already applied (effects that must happen once per key)."""
        return f"{self._base}:dedupe:{check_id(name, 'dedupe name')}"

    # -- build swarm ------------------------------------------------------------------------------
    def hotspots(self) -> str:
        """Hash of file path -> how often it was contended or conflicted when a push was rebased."""
        return f"{self._base}:hotspots"

    def push_rounds(self) -> str:
        """Hash of agent id -> how many times that worker has asked to land its change."""
        return f"{self._base}:push_rounds"

    def costly_conflicts(self) -> str:
        """Hash of file path -> how often a rebase conflict in it had to be resolved by a model."""
        return f"{self._base}:costly_conflicts"

    def check_runs(self) -> str:
        """Hash of kind of check (quick, full) -> how many times the build ran it."""
        return f"{self._base}:check_runs"

    # -- global scope: index of runs ------------------------------------------------------------
    def runs_index(self) -> str:
        return f"{self._base}:runs"

    def task_done(self, task_id: str) -> str:
        """A signed task message that ran to its end (global scope): a replay of it is refused."""
        return f"{self._base}:task_done:{check_id(task_id, 'task message id')}"

    # -- global scope: calls to a shared service (a model) by every worker ------------------------
    def calls_in_flight(self, name: str) -> str:
        """Sorted set of call tokens holding a slot of ``name``, scored by when the slot lapses."""
        return f"{self._base}:limit:inflight:{limit_name(name)}"

    def calls_started(self, name: str) -> str:
        """Sorted set of call tokens started for ``name`` in the last minute, scored by start time."""
        return f"{self._base}:limit:started:{limit_name(name)}"

    def landing_wake(self, name: str) -> str:
        """List holding at most one token, pushed when a turn at landing on ``name`` ends: one waiter wakes."""
        return f"{self._base}:landing:wake:{limit_name(name)}"

    # -- everything of the scope, for cleanup -----------------------------------------------
    def pattern(self) -> str:
        return f"{self._base}:*"
