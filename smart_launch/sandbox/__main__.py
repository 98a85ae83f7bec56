"""Run the sandbox EHR alone: ``python -m smart_launch.sandbox --port 9000 --app-url http://127.0.0.1:5000``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from werkzeug.serving import make_server

from .app import create_sandbox_app
from .config import SandboxConfig


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, build the sandbox and serve it until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m smart_launch.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--app-url", default="http://127.0.0.1:5000", help="the ITB app's root URL")
    parser.add_argument("--public-url", default=None, help="public root URL if not http://HOST:PORT")
    parser.add_argument("--token-lifetime", type=int, default=3600, help="access token lifetime, seconds")
    parser.add_argument("--refresh-rotation", choices=["rotate", "keep"], default="rotate")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--allow-faults", action="store_true", help="enable POST /_sandbox/faults")
    args = parser.parse_args(argv)
    config = SandboxConfig.for_app(
        args.app_url,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        token_lifetime_seconds=args.token_lifetime,
        refresh_rotation=args.refresh_rotation,
        latency_ms=args.latency_ms,
        allow_faults=args.allow_faults,
    )
    app = create_sandbox_app(config)
    server = make_server(args.host, args.port, app, threaded=True)
    sys.stdout.write(f"Sandbox EHR launch page: {config.public_url}/\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
