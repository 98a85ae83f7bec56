#!/usr/bin/env bash
# Stop the HAPI FHIR test server started by start.sh (idempotent).
set -euo pipefail

run_dir="${ITB_RUN_DIR:-/tmp/itb-run}"
pid_file="$run_dir/hapi.pid"
url_file="$run_dir/hapi.url"

pid="$(cat "$pid_file" 2>/dev/null || true)"
if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -qa 'itb.hapi.Main' "/proc/$pid/cmdline" 2>/dev/null; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  echo "HAPI FHIR server (pid $pid) stopped"
else
  echo "HAPI FHIR server not running"
fi
rm -f "$pid_file" "$url_file"
