"""Running ruff on one file: our rules only (``--isolated``: the reviewed repo's config cannot change
them), ``# noqa`` ignored, text fed on stdin so encodings and odd file names are ours to handle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from swarm_tasks.errors import ReviewError


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


_DIAGNOSTICS = TypeAdapter(list[RuffDiagnostic])


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
           "--stdin-filename", display_name, "-"]
    try:
        proc = subprocess.run(cmd,  # noqa: S603 - fixed argv: our ruff, no shell; the code goes on stdin
                              input=text.encode("utf-8", "surrogatepass"), capture_output=True, cwd=cwd,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReviewError(f"ruff did not run: {exc}") from None
    if proc.returncode != 0:
        raise ReviewError(f"ruff failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:300]}")
    try:
        return _DIAGNOSTICS.validate_python(json.loads(proc.stdout or b"[]"))
    except (ValueError, ValidationError) as exc:
        raise ReviewError(f"ruff output was not understood: {exc}") from None
