"""Refuse form and query input that holds a NUL character, before any view reads it.

No form of the app has a use for NUL, and PostgreSQL cannot store it in a text column (SQLite can): a
clinician's note text or an override comment with one (pasted from elsewhere, or a crafted form) would
pass every check and then fail the database write with a server error. A clear 400 instead, the same on
both databases, and nothing is written. JSON APIs (CDS Hooks) check the fields they store themselves.
"""

from __future__ import annotations

from flask import Flask, Response, request

MESSAGE = "The form contains a NUL character, which cannot be stored. Remove it and send the form again.\n"


def _has_nul() -> bool:
    """Whether any query or form value (or name) of the request holds a NUL character."""
    for source in (request.args, request.form) if request.method == "POST" else (request.args,):
        for name, value in source.items(multi=True):
            if "\x00" in name or "\x00" in value:
                return True
    return False


def _refuse_nul() -> Response | None:
    """Answer 400 with a one-line reason when the request's input holds a NUL character."""
    if request.blueprint == "cds" or not _has_nul():
        return None
    return Response(MESSAGE, 400, mimetype="text/plain")


def init_app(app: Flask) -> None:
    """Check every request's query and form input before its view runs."""
    app.before_request(_refuse_nul)
