"""Notes and the progress document: memory that outlives the agent's context window."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult
from swarm_tasks.errors import ToolError


def _state(ctx: ToolContext) -> Any:
    if ctx.state is None:
        raise ToolError("no shared state is attached to this agent")
    return ctx.state


class NoteArgs(ToolArgs):
    text: str = Field(min_length=1, max_length=8000, description="The note.")
    kind: str = Field(default="progress", pattern=r"^[a-z][a-z0-9_-]{0,31}$",
                      description="progress, decision, finding, todo, ...")
    scope: Literal["agent", "run"] = Field(default="agent", description="Your own notes, or the run's shared notes.")


class WriteNote(Tool):
    """Appends a note that survives context compaction and is visible to later agents."""

    name = "write_note"
    description = ("Save a note (progress, decision, todo) that survives when your context is compacted. "
                   "scope=run shares it with every agent of the run.")
    Args = NoteArgs
    idempotent = False

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        scope = ctx.agent_id if args.scope == "agent" else "run"
        note_id = _state(ctx).notes.append(scope, args.text, kind=args.kind, author=ctx.agent_id)
        return ToolResult(f"noted ({args.scope}, {args.kind}) as {note_id}")


class ReadNotesArgs(ToolArgs):
    scope: Literal["agent", "run"] = "agent"
    kind: str | None = None
    limit: int = Field(default=20, ge=1, le=200)


class ReadNotes(Tool):
    """Reads the newest notes of this agent or of the run, and the run's progress document."""

    name = "read_notes"
    description = "Read the newest notes (yours or the run's) and the run's progress document."
    Args = ReadNotesArgs

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        state = _state(ctx)
        scope = ctx.agent_id if args.scope == "agent" else "run"
        notes = state.notes.latest(scope, kind=args.kind, limit=args.limit)
        doc, version = state.progress.read()
        lines = [f"[{n.kind}] {n.author}: {n.text}" for n in reversed(notes)] or ["(no notes)"]
        if version:
            lines += ["", f"Progress document (version {version}):", doc.summary,
                      *(f"## {name}\n{text}" for name, text in sorted(doc.sections.items()))]
        return ToolResult("\n".join(lines))


class ProgressArgs(ToolArgs):
    section: str = Field(pattern=r"^[A-Za-z0-9 _.-]{1,64}$", description="Section of the progress document.")
    text: str = Field(max_length=16_000, description="New text of that section (replaces it).")


class UpdateProgress(Tool):
    """Rewrites one section of the run's progress document by compare-and-set."""

    name = "update_progress"
    description = "Replace one section of the run's shared progress document (others' sections are kept)."
    Args = ProgressArgs

    def run(self, args: Any, ctx: ToolContext) -> ToolResult:
        def change(doc: Any) -> Any:
            doc.sections[args.section] = args.text
            return doc

        _doc, version = _state(ctx).progress.update(change, author=ctx.agent_id)
        return ToolResult(f"progress section {args.section!r} saved (version {version})")
