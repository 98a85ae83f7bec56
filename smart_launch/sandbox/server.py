"""Run a WSGI app (the sandbox, or the ITB app itself) on a real port in a background thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class ServerHandle:
    """A running server: its URL, and a way to stop it."""

    server: BaseWSGIServer
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving and wait for the thread to end."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def serve_in_thread(app: object, host: str = "127.0.0.1", port: int = 0) -> ServerHandle:
    """Serve ``app`` with werkzeug's threaded server; port 0 picks a free port (see ``.port``)."""
    server = make_server(host, port, app, threaded=True)  # type: ignore[arg-type]
    thread = threading.Thread(
        target=server.serve_forever, name=f"wsgi-{host}:{server.server_port}", daemon=True
    )
    thread.start()
    return ServerHandle(server, thread, host, server.server_port)
