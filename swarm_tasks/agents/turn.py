"""One turn of one agent, held by the current worker (see :mod:`swarm_tasks.agents.runner`).

An LLM turn: answer any tool calls a dead worker left unanswered, check budgets, compact the
context if it nears the window, call the model, run the tool calls, record everything in one
compare-and-set (two when a call is not idempotent: the call is marked in flight first, so a crash
during it is reported to the model as interrupted instead of being silently repeated).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from coordination.budget import Budget, Verdict
from coordination.errors import LeaseLost
from coordination.store import Op, RetryPolicy, hincrby, wake_when_done
from swarm_tasks.agents.budgets import AgentBudget, check_run, note_calls
from swarm_tasks.agents.calls import (
    INTERRUPTED,
    CallsOutcome,
    Finish,
    Spawn,
    WaitTasks,
    parse_finish,
    parse_spawn,
    task_outcomes,
    tool_message,
    unanswered,
)
from swarm_tasks.agents.children import ChildRequest, collect, resolve_callable, spawn
from swarm_tasks.agents.program import EmittedEvent, Ending, FollowUp, ProgramContext, ProgramResult
from swarm_tasks.agents.prompt import TurnPrompt, reply_usage
from swarm_tasks.agents.services import AgentServices, Holder, RunContext, run_is_live
from swarm_tasks.agents.spec import AgentKind, AgentSpec, WorkspaceMode
from swarm_tasks.agents.state import AgentState, AgentStatus, Usage
from swarm_tasks.agents.tools.base import ToolContext, ToolResult, run_tool
from swarm_tasks.errors import BudgetExceeded, ContextOverflow, LoopDetected, ModelError, StoppedBySignal
from swarm_tasks.models.types import ChatMessage, ToolCall
from swarm_tasks.outcome import MAX_REASON_CHARS, ReasonClass
from swarm_tasks.runs import RunRecord

NUDGE = ("You replied without calling a tool. Continue the task using your tools, and call `finish` "
         "when the task is complete.")
MAX_MODEL_FAILURES = 3
TURN_RETRY = RetryPolicy(base_s=1.0, cap_s=30.0)  # pause before a turn that raised is tried again

log = logging.getLogger("swarm_tasks.agents")


class Turn:
    """Runs the turn of the agent held by ``holder``."""

    def __init__(self, services: AgentServices, ctx: RunContext, spec: AgentSpec, holder: Holder,
                 chain: Callable[[], bool] | None = None) -> None:
        self.services = services
        # Asked when the agent goes on at once: True, and its next step is run by the caller in the same
        # task instead of being sent (``chained``), saving a broker round trip per turn.
        self.chain = chain
        self.chained = False
        self.settings = services.settings
        self.ctx = ctx
        self.spec = spec
        self.holder = holder
        self.now = ctx.state.records.now
        self.read_only: tuple[Path, ...] = ()  # vouched for by the prepare hook, never by the agent
        self.fit: Callable[[str], str] | None = None  # cuts a tool result to what the model's window allows

    @property
    def agent(self) -> AgentState:
        return self.holder.agent

    def run(self, record: RunRecord) -> None:
        if not run_is_live(record):
            self.end(AgentStatus.CANCELLED, f"run {record.status.value}", reason_class=ReasonClass.CANCELLED)
        elif self.spec.kind is AgentKind.PROGRAM:
            self.run_program(record)
        elif self.prepared():
            self.run_llm(record)

    def prepared(self) -> bool:
        """Run the spec's ``prepare`` hook on the tool pool (the lease kept alive); a failure ends the agent."""
        if not self.spec.prepare:
            return True
        try:
            hook = resolve_callable(self.spec.prepare)
            made = self.holder.wait(self.services.tool_executor.submit(hook, self.program_context()))
            self.read_only = tuple(Path(p) for p in made or ())
        except Exception as exc:  # the agent cannot work without what prepare makes; say why
            self.end(AgentStatus.FAILED, f"preparing its turn failed: {type(exc).__name__}: {exc}",
                     reason_class=ReasonClass.CRASH)
            return False
        return True

    # -- ending and continuing -------------------------------------------------------------------
    def end(self, status: AgentStatus, reason: str | None, *, result: JsonValue = None,
            append: list[ChatMessage] | None = None, rewrite: list[ChatMessage] | None = None,
            usage: Usage | None = None, extra_ops: list[Op] | None = None,
            children: list[ChildRequest] | None = None, reason_class: ReasonClass | None = None,
            **changes: object) -> None:
        """Record the agent as ended; follow-up agents are started first so none is lost in a crash.
        An agent that did not finish gets a ``reason_class`` (inferred from its status if not given)."""
        follow = self.on_end(Ending(status, reason, result))
        children = [*(children or []), *follow.children]
        extra_ops = [*(extra_ops or []), *self.emitted(follow.events, follow.counters)]
        started: list[AgentState] = []
        if children:
            outcome = spawn(self.ctx.agents, self.ctx.specs.get, children, limits=self.ctx.record().limits,
                            parent=self.agent, call_id=f"end{self.agent.seq}")
            started = outcome.started
        sent_early = self.send_early(started)
        now = self.now()
        total = self.agent.usage.plus(usage) if usage else self.agent.usage
        events = self.turn_event(append, usage) + list(extra_ops or [])
        reason = self.services.redact(reason)[:MAX_REASON_CHARS] if reason else reason
        if status is not AgentStatus.DONE and reason_class is None:
            reason_class = {AgentStatus.CANCELLED: ReasonClass.CANCELLED,
                            AgentStatus.STOPPED: ReasonClass.BUDGET}.get(status, ReasonClass.AGENT_ERROR)
        changes = {"attempts": 0, "last_error": None, **changes}
        self.holder.save(self.agent.evolve(status=status, reason=reason, result=result, ended_at=now, updated_at=now,
                                           reason_class=reason_class if status is not AgentStatus.DONE else None,
                                           owner=None, owner_expires_at=None, due_at=None, usage=total,
                                           inflight=[], **changes),
                         append=append, rewrite=rewrite, usage=usage, extra_ops=events)
        if status in (AgentStatus.FAILED, AgentStatus.STOPPED):  # the worker's log names it: `swarm logs RUN`
            subject = self.agent.labels.get("file") or self.agent.labels.get("task") or ""
            log.warning("run %s: agent %s (%s%s) %s [%s]: %s", self.ctx.run_id, self.agent.id, self.spec.name,
                        f" on {subject!r}" if subject else "", status.value,
                        reason_class.value if reason_class else "-", reason)
        if not sent_early:
            self.services.send(self.ctx, started)
        self.services.promote_and_schedule(self.ctx, deferrable=True)

    def send_early(self, started: list[AgentState]) -> bool:
        """Send the steps of the agents an ending started before the ending is written, so they start
        while it is (a chain of agents each starting the next waits one write less per link). Their
        records already exist, READY: if the ending's write is lost, whoever redoes the turn finds them
        created, and a step sent twice is fenced by its agent's version. False if sending failed: they
        are sent again once the ending is written, where a failure is handled as it always was."""
        if not started:
            return True
        try:
            return self.services.send(self.ctx, started)
        except Exception as exc:  # a dropped broker connection, say: the send after the ending tries again
            log.warning("run %s: sending the steps of %d agents %s started failed (%s); sent again after its "
                        "ending is recorded", self.ctx.run_id, len(started), self.agent.id, exc)
            return False

    def give_up(self, error: str | None = None) -> None:
        """End the agent FAILED: its turn was tried ``agent_max_turn_attempts`` times and never recorded,
        either raising ``error`` the last time or (no error) because its workers died or stalled. Its
        hooks still run (a workflow's bookkeeping); if the ending itself raises, a bare ending is written."""
        if error is not None:
            attempts = self.agent.attempts
            reason = f"its turn failed {attempts} times in a row, the last time with {error}"
        else:  # called as the next attempt starts: the ones before it never came back
            attempts = self.agent.attempts - 1
            reason = (f"its turn was started {attempts} times and never finished: the worker running it died or "
                      "stalled each time (killed, out of memory, or a crash on this agent's input)")
            if self.agent.last_error:
                reason += f"; an earlier attempt raised {self.agent.last_error}"
            error = self.agent.last_error
        try:
            self.end(AgentStatus.FAILED, reason, attempts=attempts, last_error=error, reason_class=ReasonClass.CRASH)
        except LeaseLost:
            raise
        except Exception:
            log.exception("ending agent %s after %d failed attempts raised; ending it without its hooks",
                          self.agent.id, attempts)
            now = self.now()
            self.holder.save(self.agent.evolve(
                status=AgentStatus.FAILED, reason=self.services.redact(reason)[:MAX_REASON_CHARS], ended_at=now,
                updated_at=now, owner=None, owner_expires_at=None, due_at=None, inflight=[], attempts=attempts,
                last_error=error, reason_class=ReasonClass.CRASH))
            self.services.promote_and_schedule(self.ctx, deferrable=True)

    def retry_later(self, error: str) -> None:
        """Release the turn unrecorded, to be tried again after a growing pause (the one backoff policy)."""
        now = self.now()
        delay = TURN_RETRY.delay_s(self.agent.attempts)
        self.holder.save(self.agent.evolve(status=AgentStatus.READY, seq=self.agent.seq + 1, owner=None,
                                           owner_expires_at=None, last_error=error, updated_at=now,
                                           due_at=now + delay + self.settings.agent_step_grace_s))
        self.services.send(self.ctx, [self.agent], countdown_s=delay)

    def on_end(self, ending: Ending) -> FollowUp:
        """The spec's ``on_end`` hook; its failure is logged, never allowed to stop the ending itself."""
        if not self.spec.on_end:
            return FollowUp()
        try:
            returned = resolve_callable(self.spec.on_end)(self.program_context(), ending)
        except Exception:
            log.exception("on_end hook %s of agent %s failed", self.spec.on_end, self.agent.id)
            return FollowUp()
        return returned if isinstance(returned, FollowUp) else FollowUp(children=list(returned))

    def start_agents(self, requests: list[ChildRequest]) -> list[str]:
        """Start agents on behalf of a tool (``extras["start_agents"]``): detached, so the caller does not
        wait for them; ids derive from the turn, so a re-run call starts nobody twice."""
        outcome = spawn(self.ctx.agents, self.ctx.specs.get, [replace(r, detached=True) for r in requests],
                        limits=self.ctx.record().limits, parent=self.agent, call_id=f"tool{self.agent.seq}")
        self.services.send(self.ctx, outcome.started)
        return [a.id for a in outcome.started]

    def turn_event(self, append: list[ChatMessage] | None, usage: Usage | None) -> list[Op]:
        """An ``agent.turn`` event for the live view: which node ran it, what it cost, which tools."""
        tools = [c["function"]["name"] for m in append or [] for c in m.get("tool_calls") or []]
        if usage is None or not (usage.model_calls or tools):
            return []
        return [self.ctx.state.events.op("agent.turn", self.agent.id, {
            "turn": self.agent.turn + (1 if usage.model_calls else 0), "node": self.services.node,
            "tokens": usage.tokens, "cost_usd": round(usage.cost_usd, 6), "tools": tools[:20]}, versioned=False)]

    def cont(self, *, append: list[ChatMessage], usage: Usage, countdown_s: float = 0.0,
             rewrite: list[ChatMessage] | None = None, **changes: object) -> None:
        """Record the turn and put the agent's next step on its queue."""
        now = self.now()
        events = self.turn_event(append, usage)
        new = self.agent.evolve(status=AgentStatus.READY, seq=self.agent.seq + 1, owner=None, owner_expires_at=None,
                                due_at=now + countdown_s + self.settings.agent_step_grace_s, updated_at=now,
                                usage=self.agent.usage.plus(usage), inflight=[], attempts=0, last_error=None,
                                **changes)
        self.holder.save(new, append=append, rewrite=rewrite, usage=usage, extra_ops=events)
        if countdown_s <= 0 and self.chain is not None and self.chain():
            self.chained = True  # the caller runs the step now; unrun, the sweeper re-sends it (due_at)
        else:
            self.services.send(self.ctx, [self.agent], countdown_s=countdown_s)

    # -- program agents --------------------------------------------------------------------------
    def program_context(self) -> ProgramContext:
        return ProgramContext(agent=self.agent, spec=self.spec, run=self.ctx.record(), state=self.ctx.state,
                              workspace=self.workspace(), settings=self.settings,
                              run_live=lambda: run_is_live(self.ctx.record(max_age_s=0.5)))

    def run_program(self, record: RunRecord) -> None:
        assert self.spec.program is not None
        pctx = self.program_context()
        try:
            fn = resolve_callable(self.spec.program)
            result: ProgramResult = self.holder.wait(self.services.tool_executor.submit(fn, pctx))
        except StoppedBySignal:
            raise  # the worker is stopping, not the program failing: the turn is redone
        except Exception as exc:  # a program bug ends this agent, never the worker
            self.end(AgentStatus.FAILED, f"program {self.spec.program} raised {type(exc).__name__}: {exc}", turn=1,
                     reason_class=ReasonClass.CRASH)
            return
        self.end(result.status, result.reason, result=result.result, usage=result.usage,
                 extra_ops=self.emitted(result.events, result.counters), children=result.children, turn=1,
                 reason_class=result.reason_class)

    def emitted(self, events: list[EmittedEvent], counters: dict[str, int]) -> list[Op]:
        """Ops for a program's or hook's events and live counters, written with the agent's final record."""
        ops = [self.ctx.state.events.op(e.type, e.subject, e.data, versioned=False) for e in events]
        key = self.ctx.state.keys.usage("counters")
        ops += [hincrby(key, name, n) for name, n in counters.items() if n]
        return ops

    # -- LLM agents ------------------------------------------------------------------------------
    def run_llm(self, record: RunRecord) -> None:
        agent = self.agent
        # The budget check's tallies are read with the conversation: one round trip for both.
        history, (run_usage, role_usage) = self.ctx.agents.conversation_and_usages(agent, "run",
                                                                                  f"role:{agent.role}")
        pending: list[ChatMessage] = []
        usage = Usage()
        changes: dict[str, Any] = {}
        if agent.waiting_call and agent.waiting_tasks:  # woken: every task it filed has ended
            pending.append(tool_message(agent.waiting_call, task_outcomes(self.ctx, agent.id)))
            changes.update(waiting_call=None, waiting_on=[], waiting_tasks=False)
        elif agent.waiting_call:  # woken: every sub-agent has ended
            results = collect(self.ctx.agents, agent.waiting_on)
            results += [{"status": "refused", "reason": why} for why in agent.waiting_refused]
            pending.append(tool_message(agent.waiting_call, json.dumps(results, ensure_ascii=False)))
            changes.update(waiting_call=None, waiting_on=[], waiting_refused=[])
        model = self.spec.model or record.models.get(agent.role) or self.settings.model_for(agent.role)
        if not model:
            self.end(AgentStatus.FAILED, f"no model configured for role {agent.role!r}: set SWARM_MODEL or "
                     "SWARM_MODELS, or use the workflow's deterministic mode", append=pending,
                     reason_class=ReasonClass.NO_MODEL, **changes)
            return
        gateway = self.services.built_gateway() or self.holder.wait(
            self.services.tool_executor.submit(self.services.model_gateway))  # built once, off this thread
        prompt = TurnPrompt(self, gateway, model)
        self.fit = prompt.fit_result
        left = unanswered(history + pending)
        if left:  # a worker died during these calls
            outcome = self.process_calls(left, interrupted=set(agent.inflight))
            pending += outcome.messages
            usage = usage.plus(Usage(tool_calls=outcome.calls))
            if outcome.stop is not None:
                self.end(AgentStatus.STOPPED, outcome.stop, append=pending, usage=usage,
                         reason_class=outcome.stop_class, **changes)
                return
            if outcome.control is not None:
                self.apply_control(outcome.control, pending, usage, **changes)
                return
            run_usage, role_usage = self.ctx.agents.usages("run", f"role:{agent.role}")  # after tools: again
        try:
            AgentBudget.resolve(self.spec.limits, self.settings).check(agent, self.now())
            check_run(record.limits, run_usage, agent.role, role_usage)
        except BudgetExceeded as exc:
            self.end(AgentStatus.STOPPED, budget_reason(exc), append=pending, usage=usage,
                     reason_class=ReasonClass.BUDGET if exc.scope == "agent" else ReasonClass.COST_CAP, **changes)
            return
        conversation = history + pending
        if not self.reserved(prompt, conversation, record, pending, usage, changes):
            return
        sending = prompt.size(conversation)  # shown as tokens in flight while the provider thinks
        self.ctx.agents.count_in_flight(sending)
        try:
            sent = prompt.send(conversation)
        except BaseException:
            self.ctx.agents.count_in_flight(-sending)
            raise
        if sent.reply is None:
            self.ctx.agents.count_in_flight(-sending)
            sending = 0
        usage = usage.plus(sent.usage)
        rewrite: list[ChatMessage] | None = None
        if sent.compactions:  # the stored conversation is replaced by the compacted one
            rewrite, pending = sent.conversation, []
            changes.update(compactions=agent.compactions + sent.compactions)
        reply = sent.reply
        if reply is None:
            assert sent.error is not None
            if isinstance(sent.error, ContextOverflow):
                self.end(AgentStatus.FAILED, f"the prompt does not fit the model's context window even after "
                         f"compacting it: {sent.error}", append=pending, rewrite=rewrite, usage=usage,
                         reason_class=ReasonClass.MODEL_ERROR, **changes)
                return
            failures = agent.model_failures + 1
            exc = sent.error
            if failures >= MAX_MODEL_FAILURES or exc.permanent:  # a refused key will not be accepted later
                self.end(AgentStatus.FAILED, model_failure_reason(exc, model, failures), append=pending,
                         rewrite=rewrite, usage=usage, model_failures=failures,
                         reason_class=ReasonClass(exc.kind), **changes)
            else:  # a provider outage or rate limit: try again later (when it said), from this same point
                wait = max(5.0 * failures, exc.retry_after_s or 0.0)
                self.cont(append=pending, rewrite=rewrite, usage=usage, countdown_s=wait,
                          model_failures=failures, **changes)
            return
        spent = reply_usage(reply)
        self.ctx.agents.count_spent(spent, in_flight_done=sending)  # one round trip for both counters
        usage = usage.plus(spent)
        changes.update(turn=agent.turn + 1, model=reply.model, model_failures=0,
                       last_prompt_tokens=reply.prompt_tokens)
        assistant = self.masked(reply.message())
        messages = [*pending, assistant]
        try:
            changes["recent_calls"] = note_calls(agent.recent_calls, reply.tool_calls,
                                                 self.settings.agent_repeat_limit)
        except LoopDetected as exc:
            self.end(AgentStatus.STOPPED, f"loop detected: {exc}", append=messages, rewrite=rewrite, usage=usage,
                     reason_class=ReasonClass.LOOP, **changes)
            return
        if not reply.tool_calls:  # the model must act through tools; its text is not an ending
            nudge: ChatMessage = {"role": "user", "content": NUDGE}
            self.cont(append=[*messages, nudge], rewrite=rewrite, usage=usage, **changes)
            return
        risky = [c.id for c in reply.tool_calls if not self.idempotent(c.name)]
        if risky:  # record the calls before doing something that must not be repeated
            events = self.turn_event(messages, usage)
            self.holder.save(self.agent.evolve(inflight=risky, usage=self.agent.usage.plus(usage), attempts=0,
                                               last_error=None, **changes),
                             append=messages, rewrite=rewrite, usage=usage, extra_ops=events)
            messages, usage, rewrite, changes = [], Usage(), None, {}
        outcome = self.process_calls(list(reply.tool_calls), interrupted=set())
        messages += outcome.messages
        usage = usage.plus(Usage(tool_calls=outcome.calls))
        if outcome.stop is not None:
            self.end(AgentStatus.STOPPED, outcome.stop, append=messages, rewrite=rewrite, usage=usage,
                     reason_class=outcome.stop_class, **changes)
            return
        if outcome.control is not None:
            self.apply_control(outcome.control, messages, usage, rewrite=rewrite, **changes)
            return
        self.cont(append=messages, rewrite=rewrite, usage=usage, **changes)

    def reserved(self, prompt: TurnPrompt, conversation: list[ChatMessage], record: RunRecord,
                 pending: list[ChatMessage], usage: Usage, changes: dict[str, Any]) -> bool:
        """Set aside the most this call can cost against the run's cap (so agents calling at once cannot
        overshoot it together); False if the agent was stopped (nothing more fits) or put off (it fits
        once calls of others in flight end)."""
        costs = prompt.ceiling(conversation)
        if not costs or not costs[1]:
            return True  # free, or unpriced (the preflight said so; token budgets bound it)
        floor, ceiling = costs
        cap = record.limits.max_cost_usd
        budget = Budget(self.services.client, self.ctx.state.keys.usage("run"), self.ctx.state.keys.reservations())
        held = budget.reserve(self.agent.id, ceiling, cap, floor)
        if held.verdict is Verdict.RESERVED:
            return True
        if held.verdict is Verdict.CAP_REACHED:
            reason = budget_reason(BudgetExceeded("cost_usd", cap, round(held.spent, 6), scope="run"))
            self.end(AgentStatus.STOPPED, f"{reason}; its next prompt alone costs ${floor:.4f}", append=pending,
                     usage=usage, reason_class=ReasonClass.COST_CAP, **changes)
            return False
        self.cont(append=pending, usage=usage, countdown_s=1.0 + random.random(), **changes)
        return False

    def masked(self, message: ChatMessage) -> ChatMessage:
        """The model's message as the transcript keeps it: this deployment's secrets masked in its text
        and in its calls' arguments, like tool results (the calls themselves run as the model sent them)."""
        mask = self.services.mask_configured
        out: ChatMessage = {**message}
        if isinstance(out.get("content"), str):
            out["content"] = mask(out["content"])
        if out.get("tool_calls"):
            out["tool_calls"] = [{**c, "function": {**c["function"], "arguments": mask(c["function"]["arguments"])}}
                                 if isinstance(c.get("function", {}).get("arguments"), str) else c
                                 for c in out["tool_calls"]]
        return out

    # -- tools -----------------------------------------------------------------------------------
    def idempotent(self, name: str) -> bool:
        tool = self.services.tools.get(name)
        return True if tool is None else tool.idempotent

    def workspace(self) -> Path:
        label = self.agent.labels.get("workspace")
        if label:
            return Path(label)
        owner = self.agent.id
        if self.spec.workspace is WorkspaceMode.PARENT and self.agent.parent:
            owner = self.agent.parent
        path = self.settings.state_dir / "workspaces" / self.agent.run / owner
        if not path.is_dir():  # one stat on the usual path: mkdir of an existing directory costs an error
            path.mkdir(parents=True, exist_ok=True)
        return path

    def process_calls(self, calls: list[ToolCall], *, interrupted: set[str]) -> CallsOutcome:
        outcome = CallsOutcome()
        allowed = set(self.spec.tools)
        finish = next((c for c in calls if c.name == "finish"), None)
        for call in calls:
            outcome.calls += 1
            tool = self.services.tools.get(call.name)
            if tool is None or call.name not in allowed:
                outcome.messages.append(tool_message(call.id, f"error: unknown tool {call.name!r}; your tools are: "
                                                              f"{', '.join(sorted(allowed))}"))
                continue
            if call.name == "finish":
                continue  # handled after the others
            if call.name == "spawn_agents":
                if finish is not None:
                    outcome.messages.append(tool_message(call.id, "error: not started because you also finished"))
                    continue
                control = self.parse_spawn(call)
                if isinstance(control, str):
                    outcome.messages.append(tool_message(call.id, control))
                elif outcome.control is None:
                    outcome.control = control
                else:
                    outcome.messages.append(tool_message(call.id, "error: one spawn_agents or wait_for_tasks "
                                                                  "per turn"))
                continue
            if call.name == "wait_for_tasks":
                self.parse_wait(call, outcome, finishing=finish is not None)
                continue
            if call.id in interrupted:
                outcome.messages.append(tool_message(call.id, INTERRUPTED))
                continue
            ctx = ToolContext(run_id=self.agent.run, agent_id=self.agent.id, role=self.agent.role, call_id=call.id,
                              workspace=self.workspace(), settings=self.settings, state=self.ctx.state,
                              sandbox=self.services.sandbox() if call.name == "shell" else None,
                              read_only=self.read_only,
                              extras={"pingpong_limit": 40, "run_spec": self.ctx.record().spec,
                                      "agent_input": self.agent.input, "start_agents": self.start_agents})
            # Every tool runs on the tool pool while this thread keeps the lease alive: even a "quick" one
            # (an analyzer, a grep) can take longer than a lease on a busy machine.
            try:
                result: ToolResult = self.holder.wait(self.services.tool_executor.submit(run_tool, tool,
                                                                                         call.arguments, ctx))
            except (LoopDetected, BudgetExceeded) as exc:  # a contract violation stops the agent, not the worker
                kind = "loop detected" if isinstance(exc, LoopDetected) else "budget exceeded"
                outcome.stop = f"{kind}: {exc}"
                outcome.stop_class = (ReasonClass.LOOP if isinstance(exc, LoopDetected) else
                                      ReasonClass.BUDGET if exc.scope == "agent" else ReasonClass.COST_CAP)
                outcome.messages.append(tool_message(call.id, f"error: {outcome.stop}"))
                # Nothing else of this turn runs (a finish or spawn included, and calls after it); each
                # still gets an answer, so every call stays paired with its result.
                answered = {m.get("tool_call_id") for m in outcome.messages}
                outcome.messages += [tool_message(c.id, "error: not run: the agent was stopped")
                                     for c in calls if c.id not in answered]
                outcome.control = None
                return outcome
            content = self.services.mask_configured(result.content)
            outcome.messages.append(tool_message(call.id, self.fit(content) if self.fit else content))
        if finish is not None:
            parsed = self.parse_finish(finish)
            if isinstance(parsed, str):
                outcome.messages.append(tool_message(finish.id, parsed))
            else:
                outcome.messages.append(tool_message(finish.id, "finished"))
                outcome.control = parsed
        return outcome

    def parse_wait(self, call: ToolCall, outcome: CallsOutcome, *, finishing: bool) -> None:
        if finishing:
            outcome.messages.append(tool_message(call.id, "error: not waiting because you also finished"))
        elif outcome.control is not None:
            outcome.messages.append(tool_message(call.id, "error: one spawn_agents or wait_for_tasks per turn"))
        elif self.ctx.state.board.open_children(self.agent.id) == 0:
            outcome.messages.append(tool_message(call.id, task_outcomes(self.ctx, self.agent.id)))
        else:
            outcome.control = WaitTasks(call)

    def parse_finish(self, call: ToolCall) -> Finish | str:
        return parse_finish(self.services.tools, self.spec, call)

    def parse_spawn(self, call: ToolCall) -> Spawn | str:
        return parse_spawn(self.services.tools, self.spec, call)

    def apply_control(self, control: Finish | Spawn | WaitTasks, messages: list[ChatMessage], usage: Usage,
                            rewrite: list[ChatMessage] | None = None, **changes: object) -> None:
        if isinstance(control, Finish):
            result: JsonValue = {"summary": control.args.summary, "result": control.args.result}
            status = AgentStatus.DONE if control.args.success else AgentStatus.FAILED
            follow = FollowUp()
            if self.spec.on_finish and status is AgentStatus.DONE:
                hook = resolve_callable(self.spec.on_finish)
                returned = hook(self.program_context(), control.args.result)
                follow = returned if isinstance(returned, FollowUp) else FollowUp(children=list(returned))
                if follow.record is not None:
                    result = {**result, "record": follow.record}
            self.end(status, None if control.args.success else control.args.summary, result=result,
                     append=messages, rewrite=rewrite, usage=usage, children=follow.children,
                     extra_ops=self.emitted(follow.events, follow.counters), **changes)
            return
        if isinstance(control, WaitTasks):
            self.wait(control.call.id, [], messages, usage, rewrite, waiting_tasks=True, **changes)
            return
        spawned = spawn(self.ctx.agents, self.ctx.specs.get, control.requests, limits=self.ctx.record().limits,
                        parent=self.agent, call_id=control.call.id)
        if not spawned.started:
            refused = "; ".join(f"{r.spec}: {why}" for r, why in spawned.refused)
            msgs = [*messages, tool_message(control.call.id, f"error: no sub-agent started ({refused})")]
            self.cont(append=msgs, rewrite=rewrite, usage=usage, **changes)
            return
        refused = [f"{r.spec}: {why}" for r, why in spawned.refused]  # the model hears of these on waking
        self.wait(control.call.id, [a.id for a in spawned.started], messages, usage, rewrite,
                  waiting_refused=refused, **changes)
        self.services.send(self.ctx, spawned.started)

    def wait(self, call_id: str, agents: list[str], messages: list[ChatMessage], usage: Usage,
             rewrite: list[ChatMessage] | None, **changes: object) -> None:
        """Record the agent as waiting; it is woken when its open-children count (sub-agents and the
        board tasks it filed) reaches zero."""
        now = self.now()
        payload = json.dumps({"kind": "agent", "agent": self.agent.id})
        k = self.ctx.state.keys
        wake = wake_when_done(k.children_open(), self.agent.id, k.wake_requests(), k.wakeups(), 100_000, payload)
        self.holder.save(self.agent.evolve(status=AgentStatus.WAITING, waiting_call=call_id, waiting_on=agents,
                                           owner=None, owner_expires_at=None, due_at=now + 300.0, updated_at=now,
                                           usage=self.agent.usage.plus(usage), inflight=[], attempts=0,
                                           last_error=None, **changes),
                         append=messages, rewrite=rewrite, usage=usage, extra_ops=[wake])


def budget_reason(exc: BudgetExceeded) -> str:
    """A budget stop, said so a user knows which knob it was."""
    if exc.scope == "run" and exc.kind == "cost_usd":
        return (f"the run's cost cap was reached: ${exc.used:g} spent of ${exc.limit:g} "
                "(raise --max-cost or SWARM_RUN_MAX_COST_USD)")
    if exc.scope.startswith("role ") and exc.kind == "cost_usd":
        return f"the {exc.scope}'s cost cap was reached: ${exc.used:g} spent of ${exc.limit:g}"
    knob = {"turns": "SWARM_AGENT_MAX_TURNS", "tokens": "SWARM_AGENT_MAX_TOKENS",
            "cost_usd": "SWARM_AGENT_MAX_COST_USD", "wall_s": "SWARM_AGENT_MAX_WALL_S"}.get(exc.kind)
    return f"{exc}" + (f" (the agent's own limit, {knob} unless its spec sets one)" if knob else "")


def model_failure_reason(exc: ModelError, model: str, failures: int) -> str:
    """Why the model call failed, said so a user can act on it (the key to set, the model to check)."""
    code = f"{exc.status_code} " if exc.status_code else ""
    name = exc.model or model
    if exc.kind == "auth":
        return f"the model {name} was refused ({code}authentication): {exc.advice or 'check its API key'}"
    if exc.kind == "guard":
        return f"{exc}"
    if exc.permanent:
        return f"the model {name} was not found ({code.strip() or 'unknown model'}): check the model name; {exc}"
    return f"model failed {failures} times in a row: {exc}"
