#!/usr/bin/env bash
# Optional: ESLint with eslint-plugin-security, run by the review beside its own JS rules (named as such in
# reports). Installs pinned versions from the npm registry into the virtualenv ($VENV/eslint) with our
# flat config next to them; the review finds them there. Needs Node and npm; without them it says so and
# changes nothing (the review then notes that ESLint did not run). Never fails the caller.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${SWARM_VENV:-$ROOT/.venv}/eslint}"
ESLINT=eslint@10.15.0
PLUGIN=eslint-plugin-security@4.1.0
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-eslint: Node/npm not installed; the review runs its own JS rules only" >&2
  exit 0
fi
STAMP="$DIR/.swarm-installed"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$ESLINT $PLUGIN" ]; then
  exit 0
fi
mkdir -p "$DIR"
if ! timeout 300 npm install --prefix "$DIR" --no-audit --no-fund --silent --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=10000 "$ESLINT" "$PLUGIN" \
    >/tmp/swarm-install-eslint.log 2>&1; then
  echo "install-eslint: WARNING: npm install failed (see /tmp/swarm-install-eslint.log); ESLint will not run" >&2
  exit 0
fi
cp "$ROOT/swarm_tasks/review/analyzers/eslint.config.cjs" "$DIR/swarm-eslint.config.cjs"
echo "$ESLINT $PLUGIN" > "$STAMP"
