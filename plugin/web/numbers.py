"""How the pages write numbers a person reads: never a trailing zero, always a leading one.

ISMP's list of error-prone notations: a trailing zero ("400.0 ug/d") is read as ten times the dose when
the decimal point is missed, and a naked decimal (".5 mL") as five. The pages therefore show at most
``places`` decimals with trailing zeros dropped (400, 16.67, 18.333, 0.5). Machine outputs (result JSON,
exports) keep their own formats.
"""

from __future__ import annotations

from flask import Flask


def plain_number(value: float | int | None, places: int = 1, *, sign: bool = False) -> str:
    """Return ``value`` rounded to ``places`` decimals without trailing zeros ('' for None)."""
    if value is None:
        return ""
    text = f"{float(value):+.{places}f}" if sign else f"{float(value):.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", "+0"):
        text = "+0" if sign else "0"
    return text


def init_app(app: Flask) -> None:
    """Register the ``num`` filter: ``{{ dose|num }}``, ``{{ rate|num(3) }}``, ``{{ pct|num(sign=True) }}``."""
    app.add_template_filter(plain_number, "num")
