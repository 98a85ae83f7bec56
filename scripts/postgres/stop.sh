#!/usr/bin/env bash
# Stop the throwaway PostgreSQL cluster started by start.sh and delete it (idempotent).
set -euo pipefail

run_dir="${ITB_RUN_DIR:-/tmp/itb-run}"
url_file="$run_dir/postgres.url"
pid_file="$run_dir/postgres.pid"
dir_file="$run_dir/postgres.dir"

dir="$(cat "$dir_file" 2>/dev/null || true)"
pid="$(cat "$pid_file" 2>/dev/null || true)"
stopped=""

if [[ -n "$dir" && -d "$dir/data" ]]; then
  bindir="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  [[ -x "$bindir/pg_ctl" ]] || bindir=""
  owner="$(stat -c %U "$dir/data")"
  run_as=()
  if [[ "$(id -u)" == 0 && "$owner" != root ]]; then run_as=(runuser -u "$owner" --); fi
  if [[ -n "$bindir" ]] && "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    stopped=1
  fi
fi
# Fallback: the pid is still alive (e.g. pg_ctl missing) and is a postgres process.
if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null; then
  kill -QUIT "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
  stopped=1
fi

# Only ever delete a directory that start.sh created.
if [[ -n "$dir" && "$(basename "$dir")" == itb-pg.* && -d "$dir" ]]; then
  rm -rf "$dir"
fi
rm -f "$url_file" "$pid_file" "$dir_file"

if [[ -n "$stopped" ]]; then
  echo "PostgreSQL throwaway cluster stopped and removed"
else
  echo "PostgreSQL throwaway cluster not running"
fi
