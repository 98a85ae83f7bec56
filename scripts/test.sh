#!/usr/bin/env bash
# Quick start, command 2: install everything, start the real servers the suite needs (HAPI FHIR JPA from
# Maven Central, a throwaway PostgreSQL), run the whole test suite, then the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test

export ITB_RUN_DIR="${ITB_RUN_DIR:-$(mktemp -d /tmp/itb-run.XXXXXX)}"
mkdir -p tests/artifacts
cleanup() { scripts/services.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT

if [ "${ITB_SKIP_SERVICES:-0}" != 1 ]; then
  scripts/services.sh up
  export ITB_TEST_FHIR_BASE="$(cat "$ITB_RUN_DIR/hapi.url")"
  export ITB_TEST_DATABASE_URL="${ITB_TEST_DATABASE_URL:-$(cat "$ITB_RUN_DIR/postgres.url")}"
fi

echo "== versions: $(.venv/bin/python --version), $(java -version 2>&1 | head -1)"
command -v chromium >/dev/null && echo "== browser: $(chromium --version 2>/dev/null)"

.venv/bin/python -m pytest -p no:cacheprovider "$@" 2>&1 | tee "$ITB_RUN_DIR/pytest.log"

if [ "${ITB_SKIP_BENCHMARKS:-0}" != 1 ]; then
  # Benchmarks report numbers against their goals; on a shared 2-core machine those numbers are noisy,
  # so a missed goal is printed loudly but does not fail the run (the tests above are the gate).
  echo "== benchmarks"
  missed=()
  for bench in tests/benchmarks/bench_*.py; do
    [ -f "$bench" ] || continue
    echo "-- $bench"
    .venv/bin/python "$bench" || missed+=("$bench")
  done
  if [ "${#missed[@]}" -gt 0 ]; then
    echo "== benchmark goals NOT met: ${missed[*]}"
  else
    echo "== every benchmark met its goal"
  fi
  # Issue 10's load test at full size (the suite runs it with two clinicians): 50 clinicians, 10 at a
  # time, against itb serve on PostgreSQL. Reported like a benchmark: a loaded CI machine can time out.
  echo "== load test: 50 clinicians (tests/load/loadtest.py)"
  .venv/bin/python tests/load/loadtest.py --clinicians 50 --concurrency 10 || echo "== load test reported problems"
fi

# Repeat the suite's outcome as the last line, after the benchmarks' output.
.venv/bin/python - "$ITB_RUN_DIR/pytest.log" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
counts: dict[str, int] = {}
for line in reversed(text.splitlines()):
    if re.match(r"^(=+ )?\d+ (passed|failed|skipped|error|deselected).* in [0-9.]+s", line):
        counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", line)}
        break
line = f"tests: {counts.get('passed', 0)} passed, {counts.get('failed', 0) + counts.get('error', 0)} failed"
if counts.get("skipped"):
    line += f", {counts['skipped']} skipped"
print(line)
PY
