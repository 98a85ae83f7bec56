"""Honour the EHR's ``smart_style_url``: its colours and fonts become a small stylesheet of the launch.

The style JSON comes from the EHR (SMART App Launch "context-style"). It is fetched server-side with a
timeout, cached, and every value is checked against a strict pattern before it reaches CSS, so a hostile
or broken document cannot inject CSS. The result is served as ``/l/<handle>/style.css`` (not inline), which
keeps the Content-Security-Policy at ``style-src 'self'``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

_COLOUR = re.compile(r"^(#[0-9a-fA-F]{3,8}|rgba?\(\s*[\d.\s,%]+\)|[a-zA-Z]{3,20})$")
_FONT = re.compile(r"^[A-Za-z0-9 ,'\"\-]{1,200}$")
_LENGTH = re.compile(r"^\d{1,3}(\.\d{1,3})?(px|rem|em|%)$")

# SMART style key -> (CSS custom property or property, validator)
_MAPPING: dict[str, tuple[str, re.Pattern[str]]] = {
    "color_background": ("--bg", _COLOUR),
    "color_text": ("--fg", _COLOUR),
    "color_error": ("--block", _COLOUR),
    "color_success": ("--pass", _COLOUR),
    "color_highlight": ("--info", _COLOUR),
    "font_family_body": ("--font-body", _FONT),
    "font_family_heading": ("--font-heading", _FONT),
    "dim_border_radius": ("--radius", _LENGTH),
    "dim_font_size": ("--font-size", _LENGTH),
}
_TTL_SECONDS = 3600
_MAX_BYTES = 32 * 1024
_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def style_css(style: Mapping[str, Any]) -> str:
    """Return CSS custom properties for the recognised, valid keys of a SMART style document."""
    declarations = []
    for key, (prop, pattern) in _MAPPING.items():
        value = style.get(key)
        if isinstance(value, str) and pattern.fullmatch(value.strip()):
            declarations.append(f"  {prop}: {value.strip()};")
    if not declarations:
        return ""
    return ":root {\n" + "\n".join(declarations) + "\n}\n"


def fetch_style_css(url: str, *, timeout: float = 5.0) -> str:
    """Fetch (or take from the cache) the style at ``url`` as CSS; an unusable style gives ""."""
    if urlsplit(url).scheme not in ("http", "https"):
        return ""
    with _lock:
        cached = _cache.get(url)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    css = ""
    try:
        response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
        if response.ok and len(response.content) <= _MAX_BYTES:
            document = response.json()
            if isinstance(document, dict):
                css = style_css(document)
    except (requests.RequestException, ValueError):
        # The app looks like itself without the EHR's style; that is no reason to fail the page.
        log.info("smart_style_url could not be read", extra={"event": "style.unavailable"})
    with _lock:
        _cache[url] = (time.monotonic() + _TTL_SECONDS, css)
    return css
