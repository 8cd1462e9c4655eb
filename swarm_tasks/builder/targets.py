"""Which files a codemod runs on: the globs the user gave, or what the command can handle.

With ``--files`` the user decides. Without it, a command whose program is a well-known tool gets that
tool's files (``ruff format`` and ``pyupgrade``: ``*.py``, ``*.pyi``); any other command is tried
first on a few files of each kind (file suffix) in a scratch clone, and a kind it fails on every time
is left out, with the file it failed on and why. Binary files are given to a command only when a glob
names them. What was chosen is written once per run (by the first planner) and read by everyone
after it, so the judge's pass runs on exactly the planner's files.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from coordination import codec
from coordination.errors import AlreadyExists
from coordination.run import RunState
from swarm_tasks.builder.codemod import Codemod, apply_in, split_by_file
from swarm_tasks.builder.gitops import run_git

PYTHON = ("*.py", "*.pyi")
JS = ("*.js", "*.jsx", "*.mjs", "*.cjs", "*.ts", "*.tsx", "*.json", "*.css", "*.scss", "*.md", "*.yaml", "*.yml",
      "*.html", "*.vue")
KNOWN_TOOLS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("ruff", "black", "isort", "pyupgrade", "autopep8", "autoflake", "docformatter", "flynt",
                     "yapf", "add-trailing-comma", "reorder-python-imports", "pycln", "ssort", "refurb"), PYTHON),
    "prettier": JS, "eslint": ("*.js", "*.jsx", "*.mjs", "*.cjs", "*.ts", "*.tsx"),
    "gofmt": ("*.go",), "goimports": ("*.go",), "rustfmt": ("*.rs",), "shfmt": ("*.sh", "*.bash"),
    "clang-format": ("*.c", "*.h", "*.cc", "*.cpp", "*.hpp", "*.cxx"), "stylua": ("*.lua",),
}
_WRAPPERS = ("uv", "uvx", "pipx", "poetry", "pdm", "hatch", "npx", "env", "exec", "nice", "timeout")
PROBES_PER_KIND = 3
NO_SUFFIX = "(no suffix)"
_BINARY_SNIFF = 8000


def command_program(command: str) -> str | None:
    """The program a command line runs (``ruff`` for ``.venv/bin/ruff format {path}``, the module
    for ``python -m black``), skipping variable assignments and wrappers such as ``uv run``."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    words = [w for w in words if w not in ("run", "exec", "--")]

    def skipped(word: str) -> bool:  # VAR=value, a wrapper, its options and numbers (timeout 30 ...)
        assignment = "=" in word and word[0].isalpha()
        return assignment or os.path.basename(word) in _WRAPPERS or word.startswith("-") or word.isdigit()

    while words and skipped(words[0]):
        words.pop(0)
    if not words:
        return None
    name = os.path.basename(words[0])
    if name.startswith("python") and len(words) > 2 and words[1] == "-m":
        name = words[2]
    return name


def known_globs(command: str) -> tuple[str, ...] | None:
    """The files a well-known tool handles, None for any other command."""
    program = command_program(command)
    return KNOWN_TOOLS.get(program) if program else None


def kind_of(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    return f"*{suffix}" if suffix else NO_SUFFIX


def is_binary(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return b"\0" in handle.read(_BINARY_SNIFF)
    except OSError:
        return False


class SkippedKind(BaseModel):
    """Files of one kind the command was not given, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: int
    sample: str = ""
    reason: str


class Targets(BaseModel):
    """The files of a codemod run, as chosen by its first planner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    globs: list[str]
    how: str = Field(description="How the globs were chosen, for the run's result.")
    skip_kinds: list[str] = Field(default_factory=list)
    skipped: dict[str, SkippedKind] = Field(default_factory=dict)
    skip_binary: bool = True

    def select(self, root: Path) -> list[str]:
        files = split_by_file(root, self.globs)
        skip = set(self.skip_kinds)
        return [f for f in files if kind_of(f) not in skip and not (self.skip_binary and is_binary(root / f))]

    def describe_skipped(self) -> str:
        parts = []
        for kind, why in sorted(self.skipped.items()):
            where = f" (it failed on {why.sample}: {why.reason})" if why.sample else f" ({why.reason})"
            parts.append(f"{why.files} {kind} file(s){where}")
        return "; ".join(parts)


def _probe(root: Path, codemod: Codemod, files: Sequence[str]) -> tuple[bool, str, str]:
    """Try the command on up to three of ``files`` (first, middle, last); (any worked, file, why not)."""
    picks = list(dict.fromkeys([files[0], files[len(files) // 2], files[-1]]))[:PROBES_PER_KIND]
    sample, why = picks[0], ""
    for pick in picks:
        applied = apply_in(root, codemod, [pick])
        run_git(["reset", "--quiet", "--hard"], cwd=root)  # the probe's own edits are not the work
        if pick not in applied.failures:
            return True, pick, ""
        sample, why = pick, applied.failures[pick]
    return False, sample, why


def choose_targets(root: Path, codemod: Codemod, globs: Sequence[str]) -> Targets:
    """Decide the files of a run in the clone ``root`` (at the branch tip; left as it was)."""
    if globs:
        return Targets(globs=list(globs), how=f"--files {' '.join(globs)}", skip_binary=False)
    known = known_globs(codemod.command)
    if known is not None:
        return Targets(globs=list(known), how=f"the files {command_program(codemod.command)} handles "
                       f"({', '.join(known)}); give --files to choose others")
    everything = split_by_file(root, ["*"])
    binary = [f for f in everything if is_binary(root / f)]
    by_kind: dict[str, list[str]] = {}
    for path in everything:
        if path not in set(binary):
            by_kind.setdefault(kind_of(path), []).append(path)
    skipped: dict[str, SkippedKind] = {}
    if binary:
        skipped["binary"] = SkippedKind(files=len(binary), reason="binary files are given only to a command "
                                        "whose --files names them")
    for kind, files in sorted(by_kind.items()):
        works, sample, why = _probe(root, codemod, files)
        if not works:
            skipped[kind] = SkippedKind(files=len(files), sample=sample, reason=why)
    kinds = [k for k in skipped if k != "binary"]
    return Targets(globs=["*"], skip_kinds=kinds, skipped=skipped,
                   how="every tracked file of a kind the command worked on when tried first (give --files to "
                       "choose)")


def _key(state: RunState) -> str:
    return state.keys.record("build", "targets")


def save_targets(state: RunState, targets: Targets) -> Targets:
    """Keep the run's targets; the first writer wins (a re-run planner reads the first choice back)."""
    try:
        state.records.create(_key(state), codec.encode(targets))
    except AlreadyExists:
        found = load_targets(state)
        assert found is not None
        return found
    return targets


def load_targets(state: RunState) -> Targets | None:
    rec = state.records.get(_key(state))
    return None if rec is None else codec.decode(Targets, rec.data, key=_key(state))


def describe(targets: Targets | None) -> JsonValue:
    """The targets as kept in a run's result."""
    if targets is None:
        return {}
    return json.loads(targets.model_dump_json())  # type: ignore[no-any-return]
