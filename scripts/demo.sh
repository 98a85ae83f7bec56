#!/usr/bin/env bash
# Quick start, command 1: install everything, then run the app on its embedded sandbox EHR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/itb demo "$@"
