#!/usr/bin/env bash
# Best-effort install of the system packages some tests need: bubblewrap (the shell sandbox's strong
# mode, tests/host/test_sandbox.py), Debian's chromium (the dashboard's browser test), redis-server 7
# (the deploy's Redis users, tests/deploy/test_redis_acl.py: the wheel's 6.2 has no key permissions;
# with it on PATH the embedded test servers use it too; its redis-cli makes the test Redis Clusters) and
# libfaketime (a host whose clock is minutes off, tests/multihost/test_clock_skew.py). Without them
# those tests skip and say why; with them they run. Only as root with apt-get (CI here runs as root);
# anywhere else it prints what to install and changes nothing. Never fails the caller.
set -uo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null || missing+=(libfaketime)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: ${missing[*]} not installed; their tests will skip (install with: apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]} (for the sandbox, browser, Redis ACL, cluster and clock tests)..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! { timeout 600 apt-get update -qq && timeout 900 apt-get install -y -qq "${missing[@]}"; } \
    >/tmp/swarm-system-deps.log 2>&1; then
  echo "system-deps: WARNING: could not install ${missing[*]} (see /tmp/swarm-system-deps.log); their tests will skip" >&2
fi
exit 0
