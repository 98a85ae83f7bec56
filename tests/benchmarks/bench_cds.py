"""Benchmark: the CDS Hooks service under gunicorn against the trivial ``/healthz`` (not collected by pytest).

Run: ``python tests/benchmarks/bench_cds.py [--seconds 10] [--clients 50] [--alg ES384|RS384]
[--no-chart-cache] [--no-audit-cards]``.

Starts ``gunicorn -w 2 -k gthread --threads 4`` (``--workers``, ``--worker-class``, ``--threads``) on a
free loopback port with a temporary instance folder and a CDS client allow-list holding a freshly
generated ES384 key (``--alg RS384``: an RSA-2048 key, as many EHRs sign), then drives 50 concurrent keep-alive clients (2 processes x 25 raw HTTP/1.1
connections on one asyncio loop each, request heads prebuilt) for ``--seconds`` against ``GET /healthz``
and then against ``POST /cds-services/itb-dose-check`` with a full prefetch (the sci-adult sandbox chart
plus 150 vital signs: about 200 Observations) and a 600 ug/d draft order (block, with a suggestion, the
heaviest path). Every call carries its own signed JWT (unique jti), signed before the clock starts so
the load generator measures the server, not its own ECDSA. Prints req/s, p50 and p99 for both and the
throughput ratio, the server's CPU per request, and the closed-loop latency floor (Little's law: 50
clients / throughput). Goal: p99 < 50 ms and >= 0.5x the trivial endpoint's throughput.

Two floor phases run between them (``--no-floor`` skips them), against endpoints only this benchmark
adds: ``floor-body`` reads the same request and answers no cards; ``floor-jwt`` also verifies its JWT as
the service does. They bound what any implementation of the service can reach on this machine. Then
open-loop phases (``--rates 100,200``) send order-sign at a fixed planned rate and, after a 1 s lead-in
at that rate, count each latency from its planned send time: the latency an EHR sees at that load,
which a closed loop cannot show.
Loopback only; the load loops stop by themselves and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import itertools
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402

from plugin.cds.jwt_sign import (  # noqa: E402
    b64url,
    client_claims,
    key_from_private_jwk,
    new_es384_key,
    private_jwk,
    public_jwk,
    sign_es384,
)
from plugin.cds.sandbox import SANDBOX_DIR, draft_order, hook_request, prefetch_for  # noqa: E402

HOST = "127.0.0.1"
ISS = "https://bench-ehr.example"
KID = "bench-1"
SERVICE = "/cds-services/itb-dose-check"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"
GOAL_P99_MS = 50.0
GOAL_RATIO = 0.5
OPEN_LOOP_LEAD_IN_S = 1.0


def wsgi_app() -> Any:
    """Return the app for gunicorn, with the CDS service wired in if the factory does not do it yet."""
    import plugin.cds
    from plugin.app import create_app

    app = create_app()
    if "cds" not in app.blueprints:
        plugin.cds.init_app(app)
    if os.environ.get("ITB_BENCH_FLOOR", "0") == "1":
        _add_floor_routes(app)
    if os.environ.get("ITB_BENCH_GC_FREEZE", "1") == "1":
        # Move the startup heap (Flask, SQLAlchemy, pydantic/fhir.resources models: ~130,000 objects)
        # out of the collector's reach. Without it every gen-2 collection, which a 120 KiB request's
        # allocations trigger now and then, walks that whole heap: ~2.4 ms of GC per call, 0.3 ms with
        # it. The production server config should do the same after loading the app (post_worker_init).
        gc.collect()
        gc.freeze()
    return app


def _add_floor_routes(app: Any) -> None:
    """Add the benchmark-only floor endpoints: the service's unavoidable first steps and nothing else.

    ``/bench/floor/body`` reads the request body as the service does and answers an empty card list;
    ``/bench/floor/jwt`` also verifies the client JWT as the service does (without storing its jti, so
    the benchmark can reuse its tokens). No check, no chart, no database. Whatever the service does
    after these steps can only cost more, so their throughput bounds the ratio the service can reach.
    """
    from flask import Response, request

    from plugin.cds import views

    empty = b'{"cards":[]}'

    @app.post("/bench/floor/body")
    def bench_floor_body() -> Response:
        views._raw_body()
        return Response(empty, 200, mimetype="application/json")

    @app.post("/bench/floor/jwt")
    def bench_floor_jwt() -> Response:
        state = views._state()
        token = request.headers.get("Authorization", "")[7:]
        state.verifier.verify(token, views._public_url(SERVICE), state.clock(), remember=False)
        views._raw_body()
        return Response(empty, 200, mimetype="application/json")


def _free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _body(now: datetime) -> bytes:
    """Return the order-sign request: sci-adult's prefetch plus 150 vital signs (~200 Observations)."""
    manifest_anchor = datetime(2026, 12, 1, 12, tzinfo=UTC)
    prefetch = prefetch_for(SANDBOX_DIR / "patients" / "sci-adult.json", manifest_anchor, now)
    for i in range(150):
        when = (now - timedelta(hours=4 * i + 1)).isoformat().replace("+00:00", "Z")
        prefetch["vitals"]["entry"].append({"resource": {
            "resourceType": "Observation", "id": f"bench-temp-{i}", "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
            "subject": {"reference": "Patient/sci-adult"}, "effectiveDateTime": when,
            "valueQuantity": {"value": 36.9, "unit": "Cel", "system": UCUM, "code": "Cel"},
        }})  # fmt: skip
    observations = sum(
        1 for v in prefetch.values() if isinstance(v, dict) and v.get("resourceType") == "Bundle"
        for e in v["entry"] if e["resource"]["resourceType"] == "Observation"
    )  # fmt: skip
    print(f"prefetch: {observations} Observations")
    body = hook_request("order-sign", "sci-adult", draft_order("sci-adult", 600, "ug/d"), prefetch)
    body["context"]["encounterId"] = "enc-1"
    return json.dumps(body).encode()


def _sign_batch(args: tuple[dict[str, str] | bytes, str, int]) -> list[str]:
    """Sign ``count`` JWTs (in a pool worker) with an ES384 private JWK or an RSA private key's PEM."""
    key_material, audience, count = args
    now = datetime.now(UTC)
    if isinstance(key_material, bytes):
        rsa_key = serialization.load_pem_private_key(key_material, password=None)
        assert isinstance(rsa_key, rsa.RSAPrivateKey)
        return [
            _sign_rs384(rsa_key, client_claims(ISS, audience, now, lifetime_seconds=900))
            for _ in range(count)
        ]
    key = key_from_private_jwk(key_material)
    return [
        sign_es384(key, KID, client_claims(ISS, audience, now, lifetime_seconds=900)) for _ in range(count)
    ]


def _sign_rs384(key: rsa.RSAPrivateKey, claims: dict[str, Any]) -> str:
    """Return a compact RS384 JWT of ``claims``."""
    header = b64url(json.dumps({"alg": "RS384", "typ": "JWT", "kid": KID}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA384())
    return f"{signing_input}.{b64url(signature)}"


def _rsa_public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """Return the public JWK of an RSA key."""
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA", "kid": KID, "alg": "RS384", "use": "sig",
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes(3, "big")),
    }  # fmt: skip


def _request_head(method: str, path: str, port: int, body: bytes | None, token: str | None) -> bytes:
    """Return the request line and headers of one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


async def _connection(port: int, streams: Any, body: bytes | None, heads: Any, deadline: float,
                      latencies: list[float], errors: list[int], schedule: Any = None,
                      record_from: float = 0.0) -> None:  # fmt: skip
    """One keep-alive client: send prebuilt requests until the deadline (or the JWTs run out).

    With a ``schedule`` (open loop) each request waits for its planned send time, and its latency is
    counted from that time, so a server that falls behind is charged for the wait (no coordinated
    omission); without one (closed loop) the next request goes as soon as the last answer arrived.
    """
    import asyncio

    reader, writer = streams
    try:
        while time.perf_counter() < deadline:
            planned = next(schedule) if schedule is not None else None
            if planned is not None and planned >= deadline:
                break
            head = next(heads, None)
            if head is None:
                break
            if planned is not None:
                if planned > time.perf_counter():
                    await asyncio.sleep(planned - time.perf_counter())
                start = planned
            else:
                start = time.perf_counter()
            writer.write(head)
            if body is not None:
                writer.write(body)
            status, length, close = 0, 0, False
            try:
                response_head = await reader.readuntil(b"\r\n\r\n")
                status = int(response_head[9:12])
                for line in response_head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                close = True
            if start >= record_from:
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors[0] += 1
            if close:  # sync workers close after each response: reconnect
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
    finally:
        writer.close()


def _client_process(port: int, path: str, body: bytes | None, tokens: list[str], connections: int,
                    seconds: float, queue: Any, reuse: bool, rate: float | None,
                    offset: float) -> None:  # fmt: skip
    """Drive ``connections`` keep-alive connections from one asyncio loop; put (latencies, errors).

    Lean on purpose (the load generator shares the machine's cores with the server): raw HTTP/1.1 over
    asyncio streams with request heads built before the clock starts, no http.client header parsing.
    """
    import asyncio

    method = "POST" if body is not None else "GET"
    if body is not None:
        prebuilt = [_request_head(method, path, port, body, token) for token in tokens]
        # The floor endpoints do not store the jti, so their phases may cycle through the tokens.
        heads: Any = itertools.cycle(prebuilt) if reuse else iter(prebuilt)
    else:
        head = _request_head(method, path, port, None, None)
        heads = iter(lambda: head, None)  # endless
    latencies: list[float] = []
    errors = [0]

    async def run() -> None:
        # Connect first: the server accepting 25 new connections at once is not what is measured.
        streams = await asyncio.gather(*(asyncio.open_connection(HOST, port) for _ in range(connections)))
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        # An open-loop phase runs OPEN_LOOP_LEAD_IN_S at its rate before it records: the first ~200 ms
        # after a switch of phase answer slowly (seen after idle pauses too, with or without the WAL
        # checkpointer); what is measured is the steady state at that rate.
        record_from = started + (OPEN_LOOP_LEAD_IN_S if rate else 0.0)
        deadline = record_from + seconds
        # Open loop: this process's share of the arrivals, evenly spaced, taken by whichever connection
        # is free (a connection is a client that can have one request outstanding).
        schedule = (
            (started + offset + i / rate for i in itertools.count()) if rate else None
        )  # fmt: skip
        await asyncio.gather(
            *(_connection(port, pair, body, heads, deadline, latencies, errors, schedule, record_from)
              for pair in streams)
        )  # fmt: skip

    asyncio.run(run())
    queue.put((latencies, errors[0]))


def _phase(name: str, port: int, path: str, body: bytes | None, tokens: list[str], clients: int,
           seconds: float, *, reuse: bool = False, rate: float | None = None) -> dict[str, float]:  # fmt: skip
    """Drive ``clients`` clients (2 processes) for ``seconds``, closed loop or at ``rate`` requests per
    second (open loop); return throughput and latency."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    processes = 2
    per = clients // processes
    share = len(tokens) // processes
    procs = [
        ctx.Process(target=_client_process,
                    args=(port, path, body, tokens[i * share:(i + 1) * share], per, seconds, queue, reuse,
                          rate / processes if rate else None, i / rate if rate else 0.0))
        for i in range(processes)
    ]  # fmt: skip
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - started
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(err for _, err in results)
    count = len(latencies)
    stats = {
        "requests": count,
        "errors": errors,
        "rps": count / seconds,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000 if latencies else float("nan"),
        "elapsed_s": elapsed,
    }
    print(f"{name:>8}: {count} requests ({errors} errors) in {seconds:.0f} s: {stats['rps']:.0f} req/s, "
          f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms")  # fmt: skip
    return stats


def _server_cpu_seconds(master_pid: int) -> tuple[float, float]:
    """Return the CPU seconds (user, system) the gunicorn workers have used so far (Linux /proc)."""
    user = system = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:  # field 4 (ppid) after the comm field
            user += int(fields[11]) / tick
            system += int(fields[12]) / tick
    return user, system


def _wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    """Wait until /healthz answers (or the server died)."""
    for _ in range(120):
        if server.poll() is not None:
            raise SystemExit("gunicorn exited; see its output above")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("gunicorn did not become ready")


def main() -> int:
    """Run the benchmark; exit 0 when both goals are met, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=12000, help="JWTs to sign up front")
    parser.add_argument("--alg", choices=["ES384", "RS384"], default="ES384", help="the CDS client's JWT alg")
    parser.add_argument("--no-chart-cache", action="store_true", help="read the chart on every call (0 s)")
    parser.add_argument("--no-audit-cards", action="store_true", help="turn off the cds.card audit record")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--no-gc-freeze", action="store_true", help="leave the workers' GC as Python sets it")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor-body and floor-jwt phases")
    parser.add_argument("--database-url", help="the app's database (an empty PostgreSQL one, as in production); "
                        "default: a SQLite file in a temporary instance folder")  # fmt: skip
    parser.add_argument("--rates", default="100,200",
                        help="open-loop order-sign rates (req/s) measured after the closed loop; '' for none")  # fmt: skip
    args = parser.parse_args()
    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates takes comma-separated numbers, e.g. 100,200")

    instance = Path(tempfile.mkdtemp(prefix="itb-bench-cds-"))
    key_material: dict[str, str] | bytes
    if args.alg == "RS384":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_material = rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public = _rsa_public_jwk(rsa_key)
    else:
        key = new_es384_key()
        key_material = private_jwk(key, KID)
        public = public_jwk(key.public_key(), KID)
    clients_toml = instance / "cds-clients.toml"
    jwk_toml = ", ".join(f"{name} = {json.dumps(value)}" for name, value in public.items())
    clients_toml.write_text(
        f'[[client]]\niss = "{ISS}"\nname = "bench"\njwks = {{ keys = [ {{ {jwk_toml} }} ] }}\n',
        encoding="utf-8",
    )
    port = _free_port()
    env = {
        **os.environ,
        "ITB_INSTANCE_PATH": str(instance),
        "ITB_SECRET_KEY": "bench-secret",
        "ITB_CDS_CLIENTS": str(clients_toml),
        "ITB_PUBLIC_URL": f"http://{HOST}:{port}",
        "ITB_LOG_LEVEL": "WARNING",
        "ITB_CDS_AUDIT_CARDS": "false" if args.no_audit_cards else "true",
        "ITB_CDS_CHART_CACHE_SECONDS": "0" if args.no_chart_cache else "60",
        "ITB_BENCH_GC_FREEZE": "0" if args.no_gc_freeze else "1",
        "ITB_BENCH_FLOOR": "0" if args.no_floor else "1",
        **({"ITB_DATABASE_URL": args.database_url} if args.database_url else {}),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [gunicorn, "-w", str(args.workers), "-k", args.worker_class, "--threads", str(args.threads),
               "-b", f"{HOST}:{port}", "--backlog", "256", "--pythonpath", str(Path(__file__).parent),
               "bench_cds:wsgi_app()"]  # fmt: skip
    print(
        f"gunicorn -w {args.workers} -k {args.worker_class} --threads {args.threads}; "
        f"gc.freeze {'off' if args.no_gc_freeze else 'on'}; audit cards {not args.no_audit_cards}; "
        f"JWT {args.alg}; chart cache {'off' if args.no_chart_cache else 'on'}"
    )
    body = _body(datetime.now(UTC))
    print(f"request body: {len(body) / 1024:.0f} KiB; signing {args.tokens} JWTs ...")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        batches = pool.map(
            _sign_batch, [(key_material, f"http://{HOST}:{port}{SERVICE}", args.tokens // 4)] * 4
        )
    tokens = [t for batch in batches for t in batch]
    # Migrate once up front: two workers auto-migrating a fresh SQLite file at the same time race.
    prepare = [sys.executable, "-c", "import bench_cds; bench_cds.wsgi_app()"]
    prepare_env = {**env, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{env['PYTHONPATH']}"}
    subprocess.run(prepare, env=prepare_env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    server = subprocess.Popen(command, env=env, cwd=ROOT)  # noqa: S603 - our own fixed command
    try:
        _wait_ready(port, server)
        # Warm both paths (imports, JWKS parse, DB connections) before measuring.
        _phase("warm-up", port, SERVICE, body, tokens[:400], 8, 1.0)
        tokens = tokens[400:]
        # The floor phases run between the two, so a drift of the shared machine shows in all three.
        phases = [("healthz", "/healthz", None, [], False)]
        if not args.no_floor:
            reusable = tokens[:2000]
            phases += [("floor-body", "/bench/floor/body", body, reusable, True),
                       ("floor-jwt", "/bench/floor/jwt", body, reusable, True)]  # fmt: skip
        open_loop: list[tuple[str, str, bytes | None, list[str], bool, float | None]] = []
        for rate in rates:
            needed = int(rate * (args.seconds + OPEN_LOOP_LEAD_IN_S) * 1.1) + args.clients
            open_loop.append((f"cds@{rate:g}/s", SERVICE, body, tokens[-needed:], False, rate))
            tokens = tokens[:-needed]
        phases.append(("cds", SERVICE, body, tokens, False))
        results: dict[str, dict[str, float]] = {}
        for name, path, phase_body, phase_tokens, reuse, rate in [(*p, None) for p in phases] + open_loop:
            cpu_start = _server_cpu_seconds(server.pid)
            stats = _phase(name, port, path, phase_body, phase_tokens, args.clients, args.seconds,
                           reuse=reuse, rate=rate)  # fmt: skip
            cpu_end = _server_cpu_seconds(server.pid)
            if stats["requests"]:
                stats["cpu_user_ms"], stats["cpu_system_ms"] = (
                    (cpu_end[i] - cpu_start[i]) * 1000 / stats["requests"] for i in (0, 1)
                )
            results[name] = stats
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    health, cds = results["healthz"], results["cds"]
    print()
    print(
        f"{'':>10}  {'req/s':>6}  {'x healthz':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'server CPU ms/req':>17}"
    )
    for name, stats in results.items():
        share = stats["rps"] / health["rps"] if health["rps"] else 0.0
        cpu = stats.get("cpu_user_ms", 0.0) + stats.get("cpu_system_ms", 0.0)
        print(f"{name:>10}  {stats['rps']:>6.0f}  {share:>8.2f}x  {stats['p50_ms']:>7.1f}  "
              f"{stats['p99_ms']:>7.1f}  {cpu:>17.2f}")  # fmt: skip
    ratio = cds["rps"] / health["rps"] if health["rps"] else 0.0
    print(f"ratio cds/healthz throughput: {ratio:.2f}x (goal >= {GOAL_RATIO}x); "
          f"cds p99 {cds['p99_ms']:.1f} ms (goal < {GOAL_P99_MS:.0f} ms)")  # fmt: skip
    if "floor-jwt" in results:
        floor = results["floor-jwt"]["rps"] / health["rps"] if health["rps"] else 0.0
        print(f"bound: reading the body and verifying the {args.alg} JWT, with no check and no database, "
              f"reaches {floor:.2f}x healthz; the service cannot exceed that")  # fmt: skip
    for name, stats in results.items():
        if name.startswith("cds@"):
            print(f"open loop, {name[4:]} planned ({stats['rps']:.0f} req/s served): p50 {stats['p50_ms']:.1f} ms, "
                  f"p99 {stats['p99_ms']:.1f} ms, {stats['errors']:.0f} errors")  # fmt: skip
    # Little's law for a closed loop: every client always has one request outstanding, so the mean
    # latency is clients / throughput whatever the server does per request.
    for name, stats in (("healthz", health), ("cds", cds)):
        if stats["rps"]:
            print(f"{name:>8}: closed-loop mean latency floor {args.clients / stats['rps'] * 1000:.1f} ms "
                  f"({args.clients} clients / {stats['rps']:.0f} req/s)")  # fmt: skip
    if cds["requests"] >= len(tokens) - args.clients:
        print("note: the pre-signed JWTs ran out; raise --tokens")
    return 0 if ratio >= GOAL_RATIO and cds["p99_ms"] < GOAL_P99_MS and not cds["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
