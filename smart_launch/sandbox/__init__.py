"""A development EHR in the image of the public SMART launcher: a FHIR R4 store per tenant, a SMART
authorization server and a launch page, seeded with synthetic patients. The app talks to it over real
HTTP exactly as it would to Epic. Start it with ``create_sandbox_app(SandboxConfig(...))`` and
``serve_in_thread``, or ``python -m smart_launch.sandbox``."""

from .app import create_sandbox_app
from .config import SandboxConfig
from .dates import shift_dates
from .server import ServerHandle, serve_in_thread

__all__ = ["SandboxConfig", "ServerHandle", "create_sandbox_app", "serve_in_thread", "shift_dates"]
