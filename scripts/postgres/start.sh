#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the test suite on 127.0.0.1 (temp dir, fsync off).
# If ITB_TEST_DATABASE_URL is set, that database is used instead: print it and exit.
# Otherwise installs PostgreSQL with apt-get when missing, creates database itb_test owned by
# role itb (random password) and writes to ${ITB_RUN_DIR:-/tmp/itb-run}:
#   postgres.url  postgresql+psycopg://itb:PASS@127.0.0.1:PORT/itb_test
#   postgres.pid  postmaster pid        postgres.dir  the temp dir (data/, socket, log)
# Usage: scripts/postgres/start.sh [PORT]
set -euo pipefail

if [[ -n "${ITB_TEST_DATABASE_URL:-}" ]]; then
  # Never print the password into a CI log.
  echo "PostgreSQL (external, from ITB_TEST_DATABASE_URL) at $(sed -E 's#://([^:/@]*):[^@]*@#://\1:***@#' <<<"$ITB_TEST_DATABASE_URL")"
  exit 0
fi

run_dir="${ITB_RUN_DIR:-/tmp/itb-run}"
url_file="$run_dir/postgres.url"
pid_file="$run_dir/postgres.pid"
dir_file="$run_dir/postgres.dir"
mkdir -p "$run_dir"

log() { printf '[postgres/start] %s\n' "$*" >&2; }

find_bindir() {
  local d
  d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; fi
}

bindir="$(find_bindir)"
if [[ -z "$bindir" ]]; then
  log "PostgreSQL binaries missing: apt-get install -y postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  # The package may have started its default cluster: we do not use it, so stop it.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1, $2}' |
      while read -r ver name; do pg_ctlcluster "$ver" "$name" stop || true; done
  fi
  bindir="$(find_bindir)"
  [[ -n "$bindir" ]] || { log "no PostgreSQL binaries after install"; exit 1; }
fi

pg_version() {  # "postgres (PostgreSQL) 15.18 (Debian ...)" -> 15.18
  "$bindir/postgres" --version | sed -E 's/^[^0-9]*([0-9]+(\.[0-9]+)*).*/\1/'
}

# postgres refuses to run as root: run the server as an unprivileged user.
run_as=()
if [[ "$(id -u)" == 0 ]]; then
  pg_user=postgres
  if ! id "$pg_user" >/dev/null 2>&1; then
    pg_user=itbpg
    id "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
  fi
  run_as=(runuser -u "$pg_user" --)
fi

# Already running? Report it.
if [[ -f "$url_file" && -f "$dir_file" && -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  url="$(cat "$url_file")"
  port="${url##*@127.0.0.1:}"; port="${port%%/*}"
  echo "PostgreSQL $(pg_version) at 127.0.0.1:$port (throwaway cluster, already running)"
  exit 0
fi
# Leftovers of a dead cluster.
if [[ -f "$dir_file" ]]; then
  old_dir="$(cat "$dir_file")"
  [[ "$old_dir" == */itb-pg.* ]] && rm -rf "$old_dir"
fi
rm -f "$url_file" "$pid_file" "$dir_file"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/itb-pg.XXXXXX")"
chmod 700 "$tmp"
if [[ "$(id -u)" == 0 ]]; then chown "$pg_user" "$tmp"; fi
echo "$tmp" >"$dir_file"

password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
start=$(date +%s%N)

"${run_as[@]}" "$bindir/initdb" -D "$tmp/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  -E UTF8 --locale=C.UTF-8 --no-sync --no-instructions >"$tmp/initdb.log" 2>&1 \
  || { log "initdb failed:"; cat "$tmp/initdb.log" >&2; exit 1; }

started=""
for attempt in 1 2 3; do
  port="${1:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')}"
  opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$tmp"
  opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c wal_level=minimal"
  opts+=" -c max_wal_senders=0 -c max_connections=100 -c shared_buffers=128MB"
  if "${run_as[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/postgres.log" -o "$opts" -w -t 60 start >/dev/null 2>&1; then
    started=1
    break
  fi
  log "start attempt $attempt on port $port failed"
  [[ -n "${1:-}" ]] && break
done
if [[ -z "$started" ]]; then
  log "PostgreSQL failed to start; last lines of $tmp/postgres.log:"
  tail -n 30 "$tmp/postgres.log" >&2 || true
  exit 1
fi
head -n 1 "$tmp/data/postmaster.pid" >"$pid_file"

"${run_as[@]}" "$bindir/psql" -h "$tmp" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE itb LOGIN CREATEDB PASSWORD '$password'" \
  -c "CREATE DATABASE itb_test OWNER itb" >/dev/null

"$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -d itb_test -t 30

echo "postgresql+psycopg://itb:$password@127.0.0.1:$port/itb_test" >"$url_file"
version="$(pg_version)"
log "ready in $(( ($(date +%s%N) - start) / 1000000 )) ms (pid $(cat "$pid_file"), dir $tmp)"
echo "PostgreSQL $version at 127.0.0.1:$port (throwaway cluster)"
