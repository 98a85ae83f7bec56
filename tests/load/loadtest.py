"""Load test: simulated clinicians against a real ``itb serve`` (gunicorn) and the sandbox EHR, on loopback.

Each clinician launches the app from the sandbox's launch page (SMART EHR launch, private_key_jwt), runs
three live checks (``/api/check``), previews and submits a dose-change note. The script prints requests
per second overall and p50/p99 per step, then asserts: no errors, one DocumentReference per clinician in
the EHR with unique write identifiers, nothing left in the outbox, and an intact audit chain.

    .venv/bin/python tests/load/loadtest.py [--clinicians 50] [--concurrency 10] [--workers 2] [--threads 4]

The app's database is a fresh PostgreSQL database created beside ``ITB_TEST_DATABASE_URL`` (or
``--database-url``) and dropped afterwards; without one it falls back to SQLite, which serialises writers
and so measures less than production would. Bounded: ``--clinicians`` at most 500, every request has a
timeout, and everything listens on 127.0.0.1 only.

Warm-up: before the timed run one launch is made alone. A private_key_jwt token request makes the EHR
fetch the app's JWKS from the app itself; if every app thread is busy in ``/callback`` waiting on that
same token endpoint, the JWKS request queues behind them until the EHR gives up (docs/deployment.md,
"The JWKS and the first launches"). The warm-up fills the EHR's JWKS cache; ``--no-warmup`` skips it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import requests  # noqa: E402

from tests.production.servers import (  # noqa: E402
    clean_env,
    fresh_postgres_database,
    handle_of,
    outbox_summary,
    outstanding_rows,
    preview_and_submit,
    run_itb,
    start_sandbox,
    start_serve,
    write_registry,
)

# Patients with a current intrathecal dose, so "% change" proposals can be checked.
PATIENTS = ("sci-adult", "ms-adult", "titration-sci", "cp-child-9", "dose-creep-renal", "reservoir-alarm")
PROPOSALS = ("5", "10", "15")  # percent changes; the last one is submitted
STEPS = ("launch", "check", "preview", "submit")
TIMEOUT = 60.0


@dataclass
class Results:
    """Timings and errors of every request, shared by the clinician threads."""

    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, step: str, seconds: float, hops: int, error: str | None = None) -> None:
        """Record one step (``hops`` HTTP requests, redirects included)."""
        with self.lock:
            self.timings[step].append(seconds)
            self.requests += hops
            if error:
                self.errors.append(f"{step}: {error}")


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def timed(results: Results, step: str, call: Any, expect: int = 200) -> requests.Response | None:
    """Run one step's request, record its time, and return the response (None on a network error)."""
    start = time.perf_counter()
    try:
        response: requests.Response = call()
    except requests.RequestException as error:
        results.add(step, time.perf_counter() - start, 1, type(error).__name__)
        return None
    hops = 1 + len(response.history)
    error = None if response.status_code == expect else f"HTTP {response.status_code} {response.text[:160]!r}"
    results.add(step, time.perf_counter() - start, hops, error)
    return response


def clinician(number: int, app_url: str, sandbox_url: str, results: Results) -> None:
    """One clinician: launch, three checks, preview and submit a note."""
    browser = requests.Session()
    patient = PATIENTS[number % len(PATIENTS)]
    page = timed(
        results,
        "launch",
        lambda: browser.get(
            f"{sandbox_url}/launch",
            params={"tenant": "full", "user": "clinician-1", "patient": patient},
            timeout=TIMEOUT,
        ),
    )
    if page is None or page.status_code != 200:
        return
    handle = handle_of(page.url)
    for value in PROPOSALS:
        timed(
            results,
            "check",
            lambda value=value: browser.get(  # type: ignore[misc]
                f"{app_url}/l/{handle}/api/check",
                params={"dose_value": value, "dose_mode": "percent"},
                timeout=TIMEOUT,
            ),
        )
    start = time.perf_counter()
    try:
        preview, submit = preview_and_submit(
            browser,
            app_url,
            handle,
            page.text,
            {"dose_value": PROPOSALS[-1], "dose_mode": "percent"},
            TIMEOUT,
        )
    except (requests.RequestException, AssertionError) as error:
        results.add("preview", time.perf_counter() - start, 1, type(error).__name__)
        return
    preview_seconds = preview.elapsed.total_seconds()
    results.add(
        "preview", preview_seconds, 1, None if preview.status_code == 200 else f"HTTP {preview.status_code}"
    )
    if submit is not preview:
        submit_seconds = time.perf_counter() - start - preview_seconds
        ok = submit.status_code == 200 and "changes/" in submit.url
        results.add(
            "submit", submit_seconds, 1 + len(submit.history), None if ok else f"HTTP {submit.status_code}"
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the servers, run the clinicians, check the outcome; return the report."""
    base_url = args.database_url or os.environ.get("ITB_TEST_DATABASE_URL")
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="itb-load-")))
        if base_url:
            database_url = stack.enter_context(fresh_postgres_database(base_url))
            database = "postgresql"
        else:
            database_url = f"sqlite:///{root / 'itb.sqlite'}"
            database = (
                "sqlite (no ITB_TEST_DATABASE_URL: writers are serialised, numbers are not PostgreSQL's)"
            )
            stack.enter_context(nullcontext())
        from tests.e2e.live import free_port

        port = free_port()
        app_url = f"http://127.0.0.1:{port}"
        sandbox = start_sandbox(app_url, latency_ms=args.ehr_latency_ms)
        stack.callback(sandbox.stop)
        env = clean_env(
            ENV_NAME="production",
            DATABASE_URL=database_url,
            SECRET_KEY="load-test-secret",
            INSTANCE_PATH=root / "instance",
            KEYS_FILE=root / "keys.json",
            EHR_REGISTRY=write_registry(root / "registry.toml", sandbox.url),
            PUBLIC_URL=app_url,
            WORKERS=args.workers,
            THREADS=args.threads,
            OUTBOX_RUNNER=int(args.outbox_runner),
            OUTBOX_INTERVAL_SECONDS=2,
            LOG_LEVEL="WARNING",
        )
        for command in (("keys", "rotate"), ("db", "upgrade")):
            done = run_itb(env, *command)
            if done.returncode != 0:
                raise RuntimeError(f"itb {' '.join(command)} failed: {done.stderr[-500:]}")
        server = start_serve(env, root / "logs", port=port)
        stack.callback(server.stop)

        if not args.no_warmup:
            warm = requests.get(
                f"{sandbox.url}/launch",
                params={"tenant": "full", "user": "clinician-1", "patient": PATIENTS[0]},
                timeout=TIMEOUT,
            )
            if warm.status_code != 200:
                raise RuntimeError(f"warm-up launch failed: HTTP {warm.status_code}")

        results = Results()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(lambda n: clinician(n, app_url, sandbox.url, results), range(args.clinicians)))
        elapsed = time.perf_counter() - started

        deadline = time.monotonic() + 60  # the outbox runners finish whatever the first attempts left
        while outstanding_rows(database_url) and time.monotonic() < deadline:
            time.sleep(0.5)
        notes = [d for d in sandbox.stored("DocumentReference") if _write_id(d)]
        verify = run_itb(env, "audit", "verify")
        report = {
            "database": database,
            "workers": args.workers,
            "outbox_runner": args.outbox_runner,
            "threads": args.threads,
            "clinicians": args.clinicians,
            "concurrency": args.concurrency,
            "seconds": round(elapsed, 2),
            "requests": results.requests,
            "requests_per_second": round(results.requests / elapsed, 1),
            "clinicians_per_second": round(args.clinicians / elapsed, 2),
            "steps": {
                step: {
                    "count": len(results.timings[step]),
                    "p50_ms": round(percentile(results.timings[step], 0.50) * 1000, 1),
                    "p99_ms": round(percentile(results.timings[step], 0.99) * 1000, 1),
                    "max_ms": round(max(results.timings[step]) * 1000, 1),
                }
                for step in STEPS
                if results.timings[step]
            },
            "errors": results.errors[:20],
            "error_count": len(results.errors),
            "notes_in_ehr": len(notes),
            "unique_note_ids": len({_write_id(d) for d in notes}),
            "outbox_outstanding": outstanding_rows(database_url),
            "outbox_rows": outbox_summary(database_url, outstanding_only=True)
            if outstanding_rows(database_url)
            else [],
            "audit_verify": verify.stdout.strip() or verify.stderr.strip(),
            "audit_intact": verify.returncode == 0,
            "refresh_grants": sandbox.counter.count("refresh_token"),
        }
    return report


def _write_id(resource: dict[str, Any]) -> str | None:
    """Return the app's write id of a resource (None for the EHR's own documents)."""
    from plugin.writeback.resources import write_id_of

    return write_id_of(resource)


def problems(report: dict[str, Any]) -> list[str]:
    """Return what is wrong with a run (empty when it passed)."""
    found = []
    if report["error_count"]:
        found.append(f"{report['error_count']} request error(s): {report['errors'][:3]}")
    if report["notes_in_ehr"] != report["clinicians"]:
        found.append(f"{report['notes_in_ehr']} notes in the EHR for {report['clinicians']} clinicians")
    if report["unique_note_ids"] != report["notes_in_ehr"]:
        found.append("duplicate notes in the EHR")
    if report["outbox_outstanding"]:
        found.append(f"{report['outbox_outstanding']} outbox row(s) still pending: {report['outbox_rows']}")
    if not report["audit_intact"]:
        found.append(f"audit chain not intact: {report['audit_verify']}")
    return found


def print_report(report: dict[str, Any]) -> None:
    """Print the report for a person."""
    print(
        f"database: {report['database']}\n"
        f"itb serve: {report['workers']} workers x {report['threads']} threads; "
        f"{report['clinicians']} clinicians, {report['concurrency']} at a time\n"
        f"{report['requests']} requests in {report['seconds']} s: {report['requests_per_second']} req/s "
        f"({report['clinicians_per_second']} clinicians/s)"
    )
    print(f"{'step':<8} {'count':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    for step, row in report["steps"].items():
        print(f"{step:<8} {row['count']:>6} {row['p50_ms']:>9} {row['p99_ms']:>9} {row['max_ms']:>9}")
    print(
        f"errors: {report['error_count']}; notes in the EHR: {report['notes_in_ehr']} "
        f"({report['unique_note_ids']} unique); outbox outstanding: {report['outbox_outstanding']}; "
        f"audit: {report['audit_verify']}"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print; exit 0 when every assertion held, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinicians", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--ehr-latency-ms", type=int, default=0, help="Extra delay per FHIR request.")
    parser.add_argument("--database-url", default=None, help="Default: ITB_TEST_DATABASE_URL, else SQLite.")
    parser.add_argument("--no-warmup", action="store_true", help="Skip the warm-up launch.")
    parser.add_argument(
        "--outbox-runner",
        type=int,
        choices=(0, 1),
        default=1,
        help="ITB_OUTBOX_RUNNER for the workers (default 1, as docs/deployment.md recommends).",
    )
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args(argv)
    if not 1 <= args.clinicians <= 500 or not 1 <= args.concurrency <= 50:
        parser.error("--clinicians must be 1..500 and --concurrency 1..50")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the sandbox's per-request lines
    report = run(args)
    report["problems"] = problems(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
        for problem in report["problems"]:
            print(f"FAILED: {problem}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
