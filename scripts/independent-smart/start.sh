#!/usr/bin/env bash
# Start the independent SMART server (oidc-provider + SMART shim) in the background on 127.0.0.1.
# Usage: scripts/independent-smart/start.sh [APP_URL] [BUNDLE]
#   APP_URL  the ITB app's base URL: redirect URI APP_URL/callback, JWKS APP_URL/.well-known/jwks.json
#            (default http://127.0.0.1:8000)
#   BUNDLE   the patient's FHIR Bundle to serve (default config/sandbox/patients/sci-adult.json, dates as written)
# State in ${ITB_RUN_DIR:-/tmp/itb-run}: independent-smart.pid, independent-smart.url (the FHIR base = iss),
# independent-smart.log. Env: SMART_PORT (default: a free port), SMART_CLIENT_SECRET, SMART_USER.
# Prints one line: "independent SMART server (oidc-provider X) at <iss>".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
run_dir="${ITB_RUN_DIR:-/tmp/itb-run}"
pid_file="$run_dir/independent-smart.pid"
url_file="$run_dir/independent-smart.url"
log_file="$run_dir/independent-smart.log"
mkdir -p "$run_dir"

"$here/stop.sh" >/dev/null 2>&1 || true
dest="$("$here/install.sh")"
version="$(node -p "require('$dest/node_modules/oidc-provider/package.json').version")"

export SMART_APP_URL="${1:-${SMART_APP_URL:-http://127.0.0.1:8000}}"
export SMART_BUNDLE="$(realpath "${2:-${SMART_BUNDLE:-$repo/config/sandbox/patients/sci-adult.json}}")"
export SMART_URL_FILE="$url_file"
rm -f "$url_file"
cd "$run_dir"
setsid node "$dest/server.mjs" >"$log_file" 2>&1 </dev/null &
echo $! >"$pid_file"
for _ in $(seq 1 100); do
  if [[ -s "$url_file" ]]; then
    echo "independent SMART server (oidc-provider $version) at $(cat "$url_file")"
    exit 0
  fi
  kill -0 "$(cat "$pid_file")" 2>/dev/null || break
  sleep 0.1
done
echo "independent SMART server did not start; see $log_file" >&2
tail -n 20 "$log_file" >&2 || true
exit 1
