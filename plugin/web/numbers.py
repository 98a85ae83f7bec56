"""How the pages write numbers a person reads: never a trailing zero, always a leading one.

ISMP's list of error-prone notations: a trailing zero ("400.0 ug/d") is read as ten times the dose when
the decimal point is missed, and a naked decimal (".5 mL") as five. The pages show at most ``places``
decimals with trailing zeros dropped (400, 16.67, 18.333, 0.5), with the same formatter the rules use
for their messages. Machine outputs (result JSON, exports) keep their own formats.
"""

from __future__ import annotations

from flask import Flask

from plugin.domain.rules_common import plain_number

__all__ = ["init_app", "plain_number"]


def init_app(app: Flask) -> None:
    """Register the ``num`` filter: ``{{ dose|num }}``, ``{{ rate|num(3) }}``, ``{{ pct|num(sign=True) }}``."""
    app.add_template_filter(plain_number, "num")
