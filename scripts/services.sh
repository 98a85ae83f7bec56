#!/usr/bin/env bash
# Start or stop the real servers the test suite uses: HAPI FHIR (JPA, R4) and PostgreSQL.
#   scripts/services.sh up     start both in parallel, print their status lines and URLs
#   scripts/services.sh down   stop both (idempotent)
#   scripts/services.sh urls   print the URLs of the running servers
# Exports nothing; the URLs are also in ${ITB_RUN_DIR:-/tmp/itb-run}/{hapi,postgres}.url.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run_dir="${ITB_RUN_DIR:-/tmp/itb-run}"
mkdir -p "$run_dir"

print_urls() {
  local hapi pg
  hapi="$(cat "$run_dir/hapi.url" 2>/dev/null || true)"
  pg="${ITB_TEST_DATABASE_URL:-$(cat "$run_dir/postgres.url" 2>/dev/null || true)}"
  echo "HAPI_FHIR_BASE_URL=$hapi"
  # The password stays out of logs: the URL itself is in $run_dir/postgres.url for scripts.
  echo "ITB_TEST_DATABASE_URL=$(sed -E 's#://([^:/@]*):[^@]*@#://\1:***@#' <<<"$pg")"
}

down() {
  "$here/hapi/stop.sh" || true
  "$here/postgres/stop.sh" || true
}

case "${1:-}" in
  up)
    hapi_out="$(mktemp)"; pg_out="$(mktemp)"
    trap 'rm -f "$hapi_out" "$pg_out"' EXIT
    "$here/hapi/start.sh" >"$hapi_out" 2>&1 & hapi_pid=$!
    "$here/postgres/start.sh" >"$pg_out" 2>&1 & pg_pid=$!
    rc=0
    wait "$pg_pid" || rc=1
    wait "$hapi_pid" || rc=1
    if [[ $rc != 0 ]]; then
      echo "--- postgres/start.sh ---"; cat "$pg_out"
      echo "--- hapi/start.sh ---"; cat "$hapi_out"
      echo "services.sh: start-up failed; stopping what started" >&2
      down >/dev/null
      exit 1
    fi
    tail -n 1 "$pg_out"
    tail -n 1 "$hapi_out"
    print_urls
    ;;
  down)
    down
    ;;
  urls)
    print_urls
    ;;
  *)
    echo "usage: $0 up|down|urls" >&2
    exit 2
    ;;
esac
