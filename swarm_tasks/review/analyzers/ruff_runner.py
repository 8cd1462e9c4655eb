"""Running ruff on one file: our rules only (``--isolated``: the reviewed repo's config cannot change
them), ``# noqa`` ignored, text fed on stdin so encodings and odd file names are ours to handle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from swarm_tasks.errors import ReviewError
from swarm_tasks.review.analyzers.base import raise_if_stopped


class RuffPosition(BaseModel):
    """A row/column in ruff's JSON output."""

    model_config = ConfigDict(extra="ignore")

    row: int = Field(ge=0)
    column: int = Field(ge=0)


class RuffDiagnostic(BaseModel):
    """One entry of ``ruff check --output-format json``."""

    model_config = ConfigDict(extra="ignore")

    code: str | None = None
    name: str | None = None
    message: str
    location: RuffPosition
    end_location: RuffPosition | None = None
    url: str | None = None


class BatchDiagnostic(RuffDiagnostic):
    """A diagnostic of a many-file run: it names its file."""

    filename: str


_DIAGNOSTICS = TypeAdapter(list[RuffDiagnostic])
_BATCH = TypeAdapter(list[BatchDiagnostic])


@lru_cache(maxsize=1)
def ruff_binary() -> str:
    """The ruff executable installed beside this interpreter (the pinned one), else ruff on PATH."""
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file():
        return str(beside)
    try:
        from ruff.__main__ import find_ruff_bin  # only needed outside a virtualenv

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("ruff")
        if found:
            return found
    raise ReviewError("ruff is not installed beside the interpreter nor on PATH")


def run_ruff(cwd: Path, display_name: str, text: str, select: tuple[str, ...],
             timeout_s: float) -> list[RuffDiagnostic]:
    """Ruff's diagnostics for ``text`` as if it were ``display_name`` (relative to ``cwd``).
    :class:`ReviewError` when ruff cannot run or answers with something that is not its JSON."""
    cmd = [ruff_binary(), "check", "--isolated", "--no-cache", "--exit-zero", "--ignore-noqa",
           "--output-format", "json", "--target-version", "py314", "--select", ",".join(select),
           f"--stdin-filename={display_name}", "--", "-"]  # one argument each: a file named --help.py is a name
    try:
        proc = subprocess.run(cmd,  # noqa: S603 - fixed argv: our ruff, no shell; the code goes on stdin, names bound
                              input=text.encode("utf-8", "surrogatepass"), capture_output=True, cwd=cwd,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReviewError(f"ruff did not run: {exc}") from None
    raise_if_stopped("ruff", proc.returncode)
    if proc.returncode != 0:
        raise ReviewError(f"ruff failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:300]}")
    try:
        return _DIAGNOSTICS.validate_python(json.loads(proc.stdout or b"[]"))
    except (ValueError, ValidationError) as exc:
        raise ReviewError(f"ruff output was not understood: {exc}") from None


# -- one ruff run for many files ----------------------------------------------------------------------
# A ruff process costs ~5-15 ms to start; a review of N Python files ran 2N of them. A caller that knows
# the files of a run (the reviewer program, the serial review) registers them: the first request for any
# of them runs ruff once over all of them with every rule we select, and each file's diagnostics are kept
# (keyed by path and content hash) for the quality and documentation reviewers of this process.

BATCH_MAX_FILES = 2000
BATCHES_KEPT = 8


@dataclass
class _Batch:
    files: dict[str, str]  # path relative to the root -> sha256 of the content the inventory saw
    select: tuple[str, ...]
    done: bool = False


_batches: dict[tuple[str, str], _Batch] = {}
_results: dict[tuple[str, str, str, tuple[str, ...]], list[BatchDiagnostic]] = {}
_batch_lock = threading.Lock()


def register_batch(root: Path, key: str, files: list[tuple[str, str]], select: tuple[str, ...]) -> None:
    """Files (path, sha256) one ruff run may cover for ``root`` under the configuration ``key``."""
    ident = (str(root), key)
    if ident not in _batches and files:
        with _batch_lock:
            _batches.setdefault(ident, _Batch(dict(files[:BATCH_MAX_FILES]), select))
            while len(_batches) > BATCHES_KEPT:  # a long-lived worker reviews many runs: forget old ones
                (old_root, _), old = next(iter(_batches.items()))
                del _batches[next(iter(_batches))]
                for path, sha in old.files.items():
                    _results.pop((old_root, path, sha, old.select), None)


def batched(root: Path, key: str, path: str, sha256: str, select: tuple[str, ...],
            timeout_s: float) -> list[RuffDiagnostic] | None:
    """The diagnostics of ``path`` under ``select`` (a subset of the batch's rules) from a batch run, or None
    when the file is not in a registered batch (or the batch could not run): run ruff on it alone."""
    batch = _batches.get((str(root), key))
    if batch is None or batch.files.get(path) != sha256:
        return None
    with _batch_lock:
        if not batch.done:
            batch.done = True
            _run_batch(root, batch, timeout_s)
    found = _results.get((str(root), path, sha256, batch.select))
    if found is None:
        return None
    return [RuffDiagnostic.model_validate(d.model_dump(exclude={"filename"})) for d in found
            if _selected(d.code, select, batch.select)]


def _selected(code: str | None, select: tuple[str, ...], everything: tuple[str, ...]) -> bool:
    if not code or code == "invalid-syntax":
        return "E9" in select or select == everything  # syntax errors belong to the quality rules
    return any(code.startswith(prefix) for prefix in select)


def _run_batch(root: Path, batch: _Batch, timeout_s: float) -> None:
    paths = sorted(batch.files)
    cmd = [ruff_binary(), "check", "--isolated", "--no-cache", "--exit-zero", "--ignore-noqa",
           "--output-format", "json", "--target-version", "py314", "--select", ",".join(batch.select), "--", *paths]
    try:
        proc = subprocess.run(cmd,  # noqa: S603 - fixed argv: our ruff, no shell, paths after --
                              capture_output=True, cwd=root, timeout=timeout_s * (1 + len(paths) // 500),
                              check=False)
        if proc.returncode != 0:
            return
        diagnostics = _BATCH.validate_python(json.loads(proc.stdout or b"[]"))
    except (OSError, subprocess.TimeoutExpired, ValueError, ValidationError):
        return  # each file is then checked alone, and says so if that fails too
    by_path: dict[str, list[BatchDiagnostic]] = {p: [] for p in paths}
    top = root.resolve()
    for diag in diagnostics:
        try:
            rel = Path(diag.filename).resolve().relative_to(top).as_posix()
        except ValueError:
            continue
        if rel in by_path:
            by_path[rel].append(diag)
    for path, found in by_path.items():
        _results[(str(root), path, batch.files[path], batch.select)] = found
