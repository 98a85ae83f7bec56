"""Fault injection for tests and benchmarks: latency, failing requests or writes, a write that hangs
after it was stored, and tenants that are down. Set at start from SandboxConfig, or at run time through
``POST /_sandbox/faults`` when ``allow_faults`` is on."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request

bp = Blueprint("sandbox_faults", __name__)


@dataclass
class FaultState:
    """The current faults; every read-modify is under the lock so concurrent requests count correctly."""

    latency_ms: int = 0
    fail_next_requests: int = 0
    fail_next_writes: int = 0
    hang_next_writes: int = 0
    hang_seconds: float = 30.0
    offline_tenants: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take_request_failure(self) -> bool:
        """Consume one 'fail next request' if any is pending."""
        with self.lock:
            if self.fail_next_requests > 0:
                self.fail_next_requests -= 1
                return True
            return False

    def take_write_failure(self) -> bool:
        """Consume one 'fail next write' if any is pending."""
        with self.lock:
            if self.fail_next_writes > 0:
                self.fail_next_writes -= 1
                return True
            return False

    def take_write_hang(self) -> float:
        """Consume one 'hang after storing' and return how long to hang (0 when none is pending)."""
        with self.lock:
            if self.hang_next_writes > 0:
                self.hang_next_writes -= 1
                return self.hang_seconds
            return 0.0

    def describe(self) -> dict[str, Any]:
        """Return the faults as JSON."""
        with self.lock:
            return {
                f.name: getattr(self, f.name) if f.name != "offline_tenants" else sorted(self.offline_tenants)
                for f in fields(self)
                if f.name != "lock"
            }

    def apply(self, changes: dict[str, Any]) -> None:
        """Apply a JSON change set (unknown keys are an error); ``reset: true`` clears everything first."""
        allowed = {
            "latency_ms",
            "fail_next_requests",
            "fail_next_writes",
            "hang_next_writes",
            "hang_seconds",
            "offline_tenants",
            "reset",
            "timeout_next_write",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        with self.lock:
            if changes.get("reset"):
                self.latency_ms = self.fail_next_requests = self.fail_next_writes = self.hang_next_writes = 0
                self.offline_tenants = set()
            for name in ("latency_ms", "fail_next_requests", "fail_next_writes", "hang_next_writes"):
                if name in changes:
                    setattr(self, name, int(changes[name]))
            if "timeout_next_write" in changes:
                self.hang_next_writes = 1 if changes["timeout_next_write"] else 0
            if "hang_seconds" in changes:
                self.hang_seconds = float(changes["hang_seconds"])
            if "offline_tenants" in changes:
                self.offline_tenants = set(changes["offline_tenants"])


@bp.route("/_sandbox/faults", methods=["GET", "POST"])
def faults_endpoint() -> Any:
    """Read or change the faults (404 unless SandboxConfig.allow_faults)."""
    context = current_app.extensions["sandbox"]
    if not context.config.allow_faults:
        abort(404)
    if request.method == "POST":
        try:
            context.faults.apply(request.get_json(force=True) or {})
        except (ValueError, TypeError) as error:
            return jsonify({"error": str(error)}), 400
    return jsonify(context.faults.describe())
