"""ESLint with eslint-plugin-security beside our own JS rules, where Node and both packages are installed.

JS users already trust it, so its findings are reported under its own name (tool
``eslint-plugin-security``, its rule ids) and merged with ours where both saw one flaw. It is found
beside the interpreter (``<venv>/eslint``, installed by ``scripts/install-eslint.sh``), runs with our
configuration only (``--no-config-lookup``: a repository's ``eslint.config.js`` is code and is never
loaded; ``--no-inline-config``: the code under review does not switch rules off), once per run and
worker process over the JavaScript files the review starts from (a Node start costs ~0.3 s), like ruff.
TypeScript is left to our rules: it needs a parser we do not install. Where any of it is missing,
:func:`eslint_problem` says what, and the report says that ESLint did not run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from swarm_tasks.review.analyzers.base import STOP_SIGNALS, raise_if_stopped
from swarm_tasks.review.enums import Severity

TOOL = "eslint-plugin-security"
ESLINT_SUFFIXES = (".js", ".cjs", ".mjs", ".jsx")
BATCH_MAX_FILES = 2000
# The plugin's rules on our scale; the CWE lets the severity table and merging recognise the flaw.
RULES: dict[str, tuple[Severity, str | None]] = {
    "security/detect-eval-with-expression": (Severity.HIGH, "CWE-95"),
    "security/detect-child-process": (Severity.LOW, None),  # the require itself; see _cwe for exec(...)
    "security/detect-non-literal-fs-filename": (Severity.MEDIUM, "CWE-22"),
    "security/detect-non-literal-regexp": (Severity.LOW, "CWE-1333"),
    "security/detect-unsafe-regex": (Severity.MEDIUM, "CWE-1333"),
    "security/detect-non-literal-require": (Severity.MEDIUM, "CWE-829"),
    "security/detect-object-injection": (Severity.LOW, "CWE-915"),
    "security/detect-possible-timing-attacks": (Severity.MEDIUM, "CWE-208"),
    "security/detect-pseudoRandomBytes": (Severity.MEDIUM, "CWE-338"),
    "security/detect-buffer-noassert": (Severity.LOW, "CWE-119"),
    "security/detect-new-buffer": (Severity.LOW, None),
    "security/detect-no-csrf-before-method-override": (Severity.MEDIUM, "CWE-352"),
    "security/detect-disable-mustache-escape": (Severity.HIGH, "CWE-79"),
    "security/detect-bidi-characters": (Severity.MEDIUM, "CWE-451"),
    "security/detect-invisible-characters": (Severity.MEDIUM, "CWE-451"),
}


class EslintMessage(BaseModel):
    """One message of ``eslint --format json``."""

    model_config = ConfigDict(extra="ignore")

    rule_id: str | None = Field(default=None, alias="ruleId")
    message: str
    line: int = Field(default=1, ge=0)
    end_line: int | None = Field(default=None, alias="endLine")


class EslintFile(BaseModel):
    """One file of ``eslint --format json``."""

    model_config = ConfigDict(extra="ignore")

    file_path: str = Field(alias="filePath")
    messages: list[EslintMessage] = Field(default_factory=list)


_OUTPUT = TypeAdapter(list[EslintFile])


def eslint_home() -> Path:
    """Where scripts/install-eslint.sh puts ESLint: beside this interpreter's virtualenv."""
    return Path(sys.prefix) / "eslint"


@lru_cache(maxsize=1)
def eslint_problem() -> str | None:
    """Why ESLint cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "Node is not installed"
    home = eslint_home()
    if not (home / "node_modules" / "eslint" / "bin" / "eslint.js").is_file() or not (
            home / "node_modules" / "eslint-plugin-security").is_dir() or not (
            home / "swarm-eslint.config.cjs").is_file():
        return f"ESLint and eslint-plugin-security are not installed in {home} (scripts/install-eslint.sh)"
    return None


def wants_eslint(path: str) -> bool:
    """Whether ESLint reads this file (JavaScript; not TypeScript)."""
    return path.endswith(ESLINT_SUFFIXES)


def cwe_of(message: EslintMessage) -> str | None:
    """The weakness a message is about: detect-child-process is a command injection only for an exec of a
    non-literal command, not for the require."""
    rule = message.rule_id or ""
    if rule == "security/detect-child-process" and "non literal" in message.message.lower():
        return "CWE-78"
    return RULES.get(rule, (Severity.LOW, None))[1]


class _Batch:
    def __init__(self, files: list[str]) -> None:
        self.files = files
        self.started = False
        self.ready = threading.Event()
        self.results: dict[str, list[EslintMessage]] = {}
        self.error: str | None = None
        self.stopped: int | None = None  # ESLint's return code when a signal from outside stopped it

    def start(self, root: Path, timeout_s: float, *, background: bool) -> None:
        """Run ESLint over the batch once (in a thread: Node's start then overlaps other reviewers' work)."""
        with _lock:
            if self.started:
                return
            self.started = True
        if background:
            threading.Thread(target=self._run, args=(root, timeout_s), name="eslint", daemon=True).start()
        else:
            self._run(root, timeout_s)

    def _run(self, root: Path, timeout_s: float) -> None:
        try:
            _run(root, self, timeout_s)
        finally:
            self.ready.set()


_batches: dict[tuple[str, str], _Batch] = {}
_lock = threading.Lock()


def register(root: Path, key: str, paths: list[str], timeout_s: float) -> None:
    """The JavaScript files one ESLint run covers for ``root`` under the configuration ``key``; the run
    starts at once in the background, so its result is usually there when the first reviewer asks."""
    ident = (str(root), key)
    files = [p for p in paths if wants_eslint(p) and not p.startswith(("/", "-"))][:BATCH_MAX_FILES]
    if ident in _batches or not files or eslint_problem() is not None:
        return
    with _lock:
        batch = _batches.setdefault(ident, _Batch(files))
        while len(_batches) > 8:
            del _batches[next(iter(_batches))]
    batch.start(root, timeout_s, background=True)


def messages(root: Path, key: str, path: str, timeout_s: float) -> list[EslintMessage] | str:
    """ESLint's messages for ``path`` (running ESLint over the batch the first time), or why there are none."""
    problem = eslint_problem()
    if problem is not None:
        return problem
    batch = _batches.get((str(root), key))
    if batch is None or path not in batch.files:
        batch = _Batch([path])  # not part of a registered batch (a dependency): on its own
    batch.start(root, timeout_s, background=False)
    if not batch.ready.wait(timeout_s * (2 + len(batch.files) // 200)):
        return "ESLint did not finish in time"
    if batch.stopped is not None:
        with _lock:  # a later turn in this process runs ESLint again, not this batch's non-answer
            if _batches.get((str(root), key)) is batch:
                del _batches[(str(root), key)]
        raise_if_stopped("ESLint", batch.stopped)
    if batch.error is not None:
        return batch.error
    return batch.results.get(path, [])


def _run(root: Path, batch: _Batch, timeout_s: float) -> None:
    home = eslint_home()
    node = shutil.which("node") or "node"
    cmd = [node, str(home / "node_modules" / "eslint" / "bin" / "eslint.js"),
           "--no-config-lookup", "--no-inline-config", "--config", str(home / "swarm-eslint.config.cjs"),
           "--format", "json", "--no-warn-ignored", "--", *batch.files]
    try:
        proc = subprocess.run(cmd,  # noqa: S603 - fixed argv: our node and ESLint, our config, paths after --
                              capture_output=True, cwd=root, timeout=timeout_s * (1 + len(batch.files) // 200),
                              check=False, env={"PATH": f"{Path(node).parent}:/usr/bin:/bin", "HOME": "/nonexistent",
                                                "NODE_ENV": "production"})
        if proc.returncode < 0 and -proc.returncode in STOP_SIGNALS:
            batch.stopped = proc.returncode
            return
        if proc.returncode not in (0, 1):  # 1: problems found
            batch.error = f"ESLint failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:300]}"
            return
        files = _OUTPUT.validate_python(json.loads(proc.stdout or b"[]"))
    except (OSError, subprocess.TimeoutExpired, ValueError, ValidationError) as exc:
        batch.error = f"ESLint did not run: {exc}"
        return
    top = root.resolve()
    for entry in files:
        try:
            rel = Path(entry.file_path).resolve().relative_to(top).as_posix()
        except ValueError:
            continue
        batch.results[rel] = [m for m in entry.messages if m.rule_id]
