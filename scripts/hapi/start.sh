#!/usr/bin/env bash
# Start the HAPI FHIR JPA (R4, in-memory H2) test server in the background on 127.0.0.1.
# Usage: scripts/hapi/start.sh [PORT]      (a free port is picked when none is given)
# State in ${ITB_RUN_DIR:-/tmp/itb-run}: hapi.pid, hapi.url, hapi.log.
# Env: ITB_HAPI_JAVA_OPTS (replaces the default JVM flags), ITB_HAPI_START_TIMEOUT (s, default 240).
# Prints one line: "HAPI FHIR <version> (JPA, H2) at http://127.0.0.1:PORT/fhir".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run_dir="${ITB_RUN_DIR:-/tmp/itb-run}"
pid_file="$run_dir/hapi.pid"
url_file="$run_dir/hapi.url"
log_file="$run_dir/hapi.log"
timeout_s="${ITB_HAPI_START_TIMEOUT:-240}"
mkdir -p "$run_dir"

# Prints software.version of the CapabilityStatement at $1/metadata; fails unless HTTP 200.
metadata_version() {
  python3 - "$1" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/metadata?_format=json", timeout=10) as r:
    if r.status != 200:
        sys.exit(1)
    print(json.load(r).get("software", {}).get("version", "?"))
PY
}

is_our_server() {  # pid alive and really our java process
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null && grep -qa 'itb.hapi.Main' "/proc/$1/cmdline" 2>/dev/null
}

# Already running? Then just report it.
if [[ -f "$pid_file" && -f "$url_file" ]] && is_our_server "$(cat "$pid_file")"; then
  url="$(cat "$url_file")"
  if version="$(metadata_version "$url" 2>/dev/null)"; then
    echo "HAPI FHIR $version (JPA, H2) at $url (already running)"
    exit 0
  fi
fi
rm -f "$pid_file" "$url_file"

app_dir="$("$here/build.sh")"

port="${1:-}"
if [[ -z "$port" ]]; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
fi
url="http://127.0.0.1:$port/fhir"

# 2 cores / 24 GiB: a 1 GiB heap is plenty for a test database; C1-only JIT and the serial
# collector make start-up markedly faster on two cores.
read -r -a java_opts <<<"${ITB_HAPI_JAVA_OPTS:--Xms256m -Xmx1g -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss1m}"

start=$(date +%s)
# Working directory = run dir, so nothing HAPI might write lands in the repository.
cd "$run_dir"
setsid java "${java_opts[@]}" -Djava.awt.headless=true -Ditb.hapi.host=127.0.0.1 \
  -cp "$app_dir/itb-hapi-server.jar:$app_dir/lib/*" itb.hapi.Main "$port" \
  >"$log_file" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pid_file"

while :; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "[hapi/start] HAPI server exited during start-up; last lines of $log_file:" >&2
    tail -n 40 "$log_file" >&2
    rm -f "$pid_file"
    exit 1
  fi
  if version="$(metadata_version "$url" 2>/dev/null)"; then
    break
  fi
  if (( $(date +%s) - start >= timeout_s )); then
    echo "[hapi/start] HAPI server not ready after ${timeout_s}s; last lines of $log_file:" >&2
    tail -n 40 "$log_file" >&2
    kill "$pid" 2>/dev/null || true
    rm -f "$pid_file"
    exit 1
  fi
  sleep 1
done

echo "$url" >"$url_file"
echo "[hapi/start] ready in $(( $(date +%s) - start ))s (pid $pid, log $log_file)" >&2
echo "HAPI FHIR $version (JPA, H2) at $url"
