"""Numbers on the pages: no trailing zero, a leading zero kept (ISMP error-prone notations)."""

from __future__ import annotations

import pytest
from flask import Flask, render_template_string

from plugin.web.numbers import plain_number


@pytest.mark.parametrize(
    ("value", "options", "shown"),
    [
        (400.0, {}, "400"),  # not "400.0", read as 4000 when the point is missed
        (462.5, {}, "462.5"),
        (16.6666, {"places": 2}, "16.67"),
        (25.0, {"places": 2}, "25"),
        (18.333, {"places": 3}, "18.333"),
        (2000.0, {"places": 0}, "2000"),
        (0.5, {}, "0.5"),  # the leading zero stays: ".5" is read as 5
        (-0.04, {}, "0"),  # never "-0"
        (50.0, {"sign": True}, "+50"),
        (-12.5, {"sign": True}, "-12.5"),
        (0.0, {"sign": True}, "+0"),
        (None, {}, ""),
    ],
)
def test_plain_number(value: float | None, options: dict[str, object], shown: str) -> None:
    assert plain_number(value, **options) == shown  # type: ignore[arg-type]


def test_the_pages_have_the_num_filter(app: Flask) -> None:
    with app.test_request_context():
        page = render_template_string("{{ 400.0|num }} ug/d ({{ (400.0 / 24)|num(2) }} ug/h)")
    assert page == "400 ug/d (16.67 ug/h)"
