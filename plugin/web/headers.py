"""Response headers for running inside an EHR iframe safely.

Framing is allowed only by the registered EHRs' origins (``Content-Security-Policy: frame-ancestors``),
so there is no blanket ``X-Frame-Options: DENY``. Launch handles live in URL paths, so no page may leak
its URL through the Referer header, and nothing a page shows may be cached.
"""

from __future__ import annotations

from flask import Flask, Response, current_app


def _frame_ancestors() -> str:
    origins = current_app.extensions["itb.registry"].all_frame_ancestors()
    return " ".join(("'self'", *origins))


def _add_headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {_frame_ancestors()}",
    )
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    """Add the security headers to every response."""
    app.after_request(_add_headers)
