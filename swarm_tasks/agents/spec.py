"""What an agent is, apart from what runs it: instructions, model, tools, sub-agents, limits.

A spec is data. It is stored once per run (so any worker process on any machine can run any agent
of the run) and named by agents. Two kinds: an LLM agent (a model loop with tools) and a program
agent (a deterministic Python callable that runs as the agent's single turn, named as such in
reports: e.g. an analyzer reviewer when no model is configured).
"""

from __future__ import annotations

from enum import StrEnum

import redis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from coordination import codec, store
from coordination.errors import NotFound
from coordination.keys import Keys, check_id
from coordination.store import Op, RecordStore, Versioned, Write
from swarm_tasks.signing import RecordSigner


class AgentKind(StrEnum):
    """How an agent thinks: a model loop, or a deterministic program."""

    LLM = "llm"
    PROGRAM = "program"


class Limits(BaseModel):
    """Hard per-agent budgets; None means the settings' default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_wall_s: float | None = Field(default=None, gt=0)


class WorkspaceMode(StrEnum):
    """Whose workspace an agent's tools work in."""

    OWN = "own"
    PARENT = "parent"  # a helper working in its parent's files (e.g. resolving the parent's rebase)


class AgentSpec(BaseModel):
    """A named kind of agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    role: str
    kind: AgentKind = AgentKind.LLM
    instructions: str = ""
    model: str | None = Field(default=None, description="litellm model string; None: the role's model.")
    fallbacks: tuple[str, ...] = ()
    tools: tuple[str, ...] = Field(default=("finish",), description="Tool names from the tool registry.")
    subagents: tuple[str, ...] = Field(default=(), description="Spec names this agent may spawn.")
    program: str | None = Field(default=None, description="module:function for program agents.")
    limits: Limits = Field(default_factory=Limits)
    result_schema: dict[str, object] | None = Field(
        default=None, description="JSON schema the finish tool's `result` must satisfy.")
    queue: str | None = Field(default=None, description="Celery queue; None: the role's queue.")
    on_finish: str | None = Field(
        default=None, description="module:function called with (ProgramContext, result) when the agent "
        "finishes; returns follow-up agents to start (e.g. sub-reviewers chosen by data-driven rules).")
    on_end: str | None = Field(
        default=None, description="module:function called with (ProgramContext, Ending) however the agent "
        "ended (done, failed, stopped, cancelled), after on_finish: workflow bookkeeping that must never be "
        "skipped, such as giving back a claimed task and starting a successor.")
    prepare: str | None = Field(
        default=None, description="module:function called with a ProgramContext before each turn of an LLM "
        "agent, in the tool thread pool: makes what the turn needs present on whichever machine runs it "
        "(e.g. a clone of the repository as the agent's workspace). It may return host directories the "
        "turn's shell may read besides the workspace (e.g. the objects a clone borrows). Raising ends the "
        "agent as failed.")
    workspace: WorkspaceMode = Field(default=WorkspaceMode.OWN, description="own: a workspace per agent; "
                                     "parent: the parent agent's workspace.")

    @field_validator("name", "role")
    @classmethod
    def _ident(cls, value: str) -> str:
        return check_id(value, "spec name or role")

    @field_validator("program")
    @classmethod
    def _program(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError("program must be 'module:function'")
        return value

    def model_post_init(self, _context: object) -> None:
        if self.kind is AgentKind.PROGRAM and not self.program:
            raise ValueError(f"program agent spec {self.name!r} needs program='module:function'")
        if self.kind is AgentKind.LLM and "finish" not in self.tools:
            raise ValueError(f"spec {self.name!r}: an LLM agent ends by calling finish, so it needs that tool")


class SpecBook:
    """The specs of one run, stored in Redis so every worker sees the same ones."""

    def __init__(self, client: redis.Redis, records: RecordStore, keys: Keys,
                 signer: RecordSigner | None = None) -> None:
        self.redis = client
        self.records = records
        self.keys = keys
        self.signer = signer
        self._cache: dict[str, AgentSpec] = {}

    def _ident(self, name: str) -> str:
        return f"{self.keys.scope}/{name}"

    def put(self, spec: AgentSpec) -> None:
        """Store ``spec`` (replacing a spec of the same name), signed when the deployment signs."""
        data = codec.encode(spec, limit=self.records.max_record_bytes, what=f"agent spec {spec.name}")
        ops: list[Op] = []
        if self.signer is not None:  # the spec's hooks, tools and model are what a worker runs
            ops.append(store.set_value(self.keys.record("spec-sig", spec.name),
                                       self.signer.sign("agent spec", self._ident(spec.name), data)))
        self.records.update(self.keys.record("spec", spec.name), lambda _cur: Write(data, ops=ops))
        self._cache[spec.name] = spec

    def put_all(self, specs: list[AgentSpec]) -> None:
        for spec in specs:
            self.put(spec)

    def get(self, name: str) -> AgentSpec:
        """The spec named ``name`` (cached: specs do not change during a run)."""
        if name not in self._cache:
            rec: Versioned | None = self.records.get(self.keys.record("spec", name))
            if rec is None:
                raise NotFound(f"no agent spec {name!r} in run {self.keys.scope!r}")
            if self.signer is not None:
                signature = self.redis.get(self.keys.record("spec-sig", name))
                self.signer.verify("agent spec", self._ident(name), rec.data,
                                   signature.decode() if isinstance(signature, bytes) else signature)
            self._cache[name] = codec.decode(AgentSpec, rec.data, key=rec.key)
        return self._cache[name]
