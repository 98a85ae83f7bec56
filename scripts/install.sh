#!/usr/bin/env bash
# Install everything the app and its tests need into .venv (idempotent; fast when already done).
# Usage: scripts/install.sh [--test]   (--test also installs the test extras and Debian's Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.itb-installed-$(sha256sum pyproject.toml | cut -c1-16)-$want_test"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$want_test" = 1 ]; then
    .venv/bin/python -m pip install -q -e '.[test,dev]'
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi

if [ "$want_test" = 1 ] && [ ! -f "$HOME/.cache/itb/npm/node_modules/axe-core/axe.min.js" ] && command -v npm >/dev/null 2>&1; then
  # axe-core, for the accessibility check in the browser tests; kept in the cache, never in the repo.
  npm install --silent --no-audit --no-fund --prefix "$HOME/.cache/itb/npm" axe-core@4 >/dev/null || \
    echo "note: axe-core could not be installed; the accessibility test will be skipped" >&2
fi

if [ "$want_test" = 1 ] && ! command -v chromedriver >/dev/null 2>&1; then
  # Browser tests drive Debian's Chromium; a test tool's own browser download cannot work here.
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "note: chromium/chromium-driver missing and not root; browser tests will be skipped" >&2
  fi
fi
