#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv and install the project with its test extra.
# Idempotent and quick when nothing changed: it reinstalls only when pyproject.toml or the lock changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SWARM_VENV:-$ROOT/.venv}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY="$(command -v "$candidate")"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "swarm-tasks needs Python 3.11 or newer; none found on PATH (set PYTHON=/path/to/python3.11)." >&2
  exit 2
fi
STAMP="$VENV/.swarm-installed"
WANT="$( (cat "$ROOT/pyproject.toml"; cat "$ROOT/requirements.lock" 2>/dev/null || true) | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
  "$ROOT/scripts/install-eslint.sh" "$VENV/eslint"  # optional, quick when done; never fails
  exit 0
fi
echo "swarm-tasks: setting up $VENV (first run takes a minute or two)..." >&2
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" || { echo "could not create a virtualenv: install python3-venv (apt-get install python3-venv)" >&2; exit 2; }
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
LOCK=()
[ -f "$ROOT/requirements.lock" ] && LOCK=(-c "$ROOT/requirements.lock")
"$VENV/bin/python" -m pip install -q --upgrade "pip==25.3" >&2 || true
"$VENV/bin/python" -m pip install -q "${LOCK[@]}" -e "$ROOT[test]" >&2
echo "$WANT" > "$STAMP"
"$ROOT/scripts/install-eslint.sh" "$VENV/eslint"  # optional: ESLint beside the JS rules; never fails
