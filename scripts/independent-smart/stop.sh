#!/usr/bin/env bash
# Stop the independent SMART server started by start.sh (by its recorded pid only).
set -euo pipefail
run_dir="${ITB_RUN_DIR:-/tmp/itb-run}"
pid_file="$run_dir/independent-smart.pid"
if [[ -f "$pid_file" ]]; then
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null && grep -qa 'server.mjs' "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid"
    echo "independent SMART server stopped"
  fi
  rm -f "$pid_file" "$run_dir/independent-smart.url"
fi
