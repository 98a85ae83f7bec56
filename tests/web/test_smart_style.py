"""The EHR's SMART style becomes CSS custom properties, and nothing else gets through."""

from __future__ import annotations

import responses

from plugin.web.smart_style import fetch_style_css, style_css


def test_known_style_keys_become_css_custom_properties() -> None:
    css = style_css(
        {"color_background": "#f7f7f7", "font_family_body": "Arial, sans-serif", "dim_font_size": "15px"}
    )
    assert "--bg: #f7f7f7;" in css
    assert "--font-body: Arial, sans-serif;" in css
    assert "--font-size: 15px;" in css


def test_values_that_could_inject_css_are_dropped() -> None:
    css = style_css(
        {
            "color_background": "red; } body { display: none",
            "font_family_body": "x</style><script>",
            "dim_border_radius": "url(javascript:alert(1))",
            "color_text": 12,
        }
    )
    assert css == ""


@responses.activate
def test_an_unreachable_or_broken_style_gives_no_css_and_no_error() -> None:
    responses.get("https://ehr.example/style-broken.json", body="not json")
    assert fetch_style_css("https://ehr.example/style-broken.json") == ""
    assert fetch_style_css("file:///etc/passwd") == ""
