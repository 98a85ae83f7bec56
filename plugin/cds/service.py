"""The order-sign / order-select service: request -> draft order -> chart -> check -> cards.

Pure of Flask: ``views`` parses HTTP and trust, then calls ``evaluate``. The hot path keeps FHIR as plain
dicts (no pydantic models) and the check is the pure dataclass engine; the only I/O is the optional
``fhirServer`` round for unsatisfied prefetch and one transaction storing the caller's jti, the issued
cards and their audit records (ADR 0002).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import orjson
from sqlalchemy import Connection, insert

from plugin.audit.log import chain_transaction
from plugin.cds import cards, orders, prefetch
from plugin.cds.audit_hook import AuditHook
from plugin.cds.chart_cache import ChartCache
from plugin.cds.config import fhir_server_allowed
from plugin.cds.models import IssuedCard
from plugin.cds.trust import Caller
from plugin.db import Database
from plugin.domain.chart import Chart
from plugin.domain.codes import CodeSets
from plugin.domain.engine import build_context, check, largest_safe_dose_ug
from plugin.domain.loader.build import chart_from_entries
from plugin.domain.loader.index import ChartInputError
from plugin.domain.result import CheckResult, Proposal, Verdict
from plugin.domain.rules_common import fmt_number, increase_limit_pct
from plugin.domain.rules_config import Rules
from smart_launch.fhir_client import FhirClient

log = logging.getLogger(__name__)

SIGN, SELECT = "order-sign", "order-select"
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Findings whose limit a smaller dose of the same order would respect, so a suggestion can help.
_SUGGESTIBLE = frozenset({"increase-over-limit", "dose-above-maximum"})
_INSERT_CARDS = insert(IssuedCard)  # built once, like the other per-call statements


class CdsRequestError(Exception):
    """The request cannot be served: 400 (malformed) or 412 (prefetch data unobtainable)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class HookRequest:
    """The parts of a CDS Hooks request the service uses; the prefetch as the JSON text the EHR sent."""

    hook: str
    hook_instance: str
    patient_id: str
    draft_orders: Mapping[str, Any]
    prefetch_json: bytes  # a JSON object or ``null``; parsed by ``prefetch_of`` only when needed
    context: Mapping[str, Any]
    user_id: str | None = None
    selections: tuple[str, ...] = ()
    fhir_server: str | None = None
    access_token: str | None = None


@dataclass(frozen=True)
class ServiceDeps:
    """What the service needs, built once per app (codes, rules and templates are read at startup)."""

    codes: CodeSets
    rules: Rules
    templates: Mapping[str, str]
    db: Database
    audit: AuditHook
    is_production: bool = False
    fallback_fhir_servers: tuple[str, ...] = ()  # insecure sandbox: callers without a verified client
    client_factory: Callable[[str, str | None], FhirClient] = field(
        default=lambda base, token: FhirClient(base, lambda: token, max_retries=1, timeout=(3.05, 10.0))
    )
    chart_cache: ChartCache | None = None  # charts of complete prefetches, reused for a short while


def _text(value: Any, name: str, *, required: bool = True) -> str | None:
    """Return a non-empty string field or raise a 400."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise CdsRequestError(400, f"{name} must be a non-empty string")
    return refuse_nul(value, name)


def refuse_nul(value: str, name: str) -> str:
    """Return ``value``; raise a 400 when it holds a NUL character (``\\u0000``).

    For the fields that are stored: PostgreSQL cannot keep a NUL in a text column, so the write of the
    cards (or the feedback's audit record) would fail after the check had run.
    """
    if "\x00" in value:
        raise CdsRequestError(400, f"{name} contains a NUL character")
    return value


class _Envelope(msgspec.Struct):
    """The top level of a hook request, with ``prefetch`` left as raw JSON text (ADR 0002).

    A full prefetch is ~120 KiB; parsing it into Python objects (and freeing them again) cost more than
    the rest of a call. msgspec checks its syntax while skipping it, so a repeated prefetch is only
    hashed for the chart cache and parsed when the cache misses.
    """

    hook: Any = None
    hookInstance: Any = None  # noqa: N815 - the CDS Hooks field name
    context: Any = None
    fhirServer: Any = None  # noqa: N815
    fhirAuthorization: Any = None  # noqa: N815
    prefetch: msgspec.Raw = msgspec.Raw(b"null")


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def decode_request(data: bytes) -> _Envelope:
    """Decode a request body's top level; raise a 400 for invalid JSON or anything but an object."""
    try:
        return _ENVELOPE.decode(data)
    except msgspec.DecodeError as error:  # ValidationError too: JSON but not an object, or out of range
        if not data.lstrip().startswith(b"{"):
            raise CdsRequestError(400, "the request body must be a JSON object") from error
        # msgspec names the byte offset or the JSON path (``$.context.x``), never a value.
        raise CdsRequestError(400, f"the request body is not valid JSON ({str(error)[:100]})") from error


def prefetch_of(req: HookRequest) -> Mapping[str, Any]:
    """Parse the request's prefetch (``null`` is none); raise a 400 when it is not valid JSON."""
    try:
        value = orjson.loads(req.prefetch_json)
    except orjson.JSONDecodeError as error:  # e.g. invalid UTF-8, which the envelope decoder skipped
        raise CdsRequestError(400, "the request body is not valid JSON") from error
    return value if isinstance(value, dict) else {}


def parse_request(data: bytes, allowed_hooks: frozenset[str]) -> HookRequest:
    """Validate the request shape (CDS Hooks 2.0 §request) and return its parts; raise a 400 otherwise."""
    body = decode_request(data)
    hook = _text(body.hook, "hook")
    if hook not in allowed_hooks:
        raise CdsRequestError(400, f"this service does not serve hook {str(hook)[:40]!r}")
    hook_instance = str(_text(body.hookInstance, "hookInstance"))[:100]
    context = body.context
    if not isinstance(context, Mapping):
        raise CdsRequestError(400, "context must be a JSON object")
    patient_id = str(_text(context.get("patientId"), "context.patientId"))
    if not FHIR_ID.match(patient_id):
        raise CdsRequestError(400, "context.patientId is not a FHIR id")
    draft_orders = context.get("draftOrders")
    if not isinstance(draft_orders, Mapping) or draft_orders.get("resourceType") != "Bundle":
        raise CdsRequestError(400, "context.draftOrders must be a FHIR Bundle")
    if not isinstance(draft_orders.get("entry", []), list):
        raise CdsRequestError(400, "context.draftOrders.entry must be a list")
    selections = context.get("selections") or []
    if not isinstance(selections, list) or not all(isinstance(s, str) for s in selections):
        raise CdsRequestError(400, "context.selections must be a list of references")
    prefetch_json = bytes(body.prefetch)
    if prefetch_json != b"null" and not prefetch_json.startswith(b"{"):  # msgspec strips whitespace
        raise CdsRequestError(400, "prefetch must be a JSON object")
    fhir_server = _text(body.fhirServer, "fhirServer", required=False)
    authorization = body.fhirAuthorization
    token = None
    if authorization is not None:
        if fhir_server is None:
            raise CdsRequestError(400, "fhirAuthorization needs fhirServer")
        if (
            not isinstance(authorization, Mapping)
            or str(authorization.get("token_type", "")).lower() != "bearer"
        ):
            raise CdsRequestError(400, "fhirAuthorization must be a Bearer token")
        token = _text(authorization.get("access_token"), "fhirAuthorization.access_token")
    user_id = context.get("userId") if isinstance(context.get("userId"), str) else None
    if user_id is not None:
        refuse_nul(user_id, "context.userId")
    return HookRequest(
        hook=str(hook), hook_instance=hook_instance, patient_id=patient_id, draft_orders=draft_orders,
        prefetch_json=prefetch_json, context=context, user_id=user_id, selections=tuple(selections),
        fhir_server=fhir_server, access_token=token,
    )  # fmt: skip


def _callback_factory(req: HookRequest, caller: Caller, deps: ServiceDeps) -> Callable[[], FhirClient] | None:
    """Return a FHIR client factory for the request's fhirServer, or None when we may not call it."""
    server = req.fhir_server
    if server is None:
        return None
    allowed = caller.client.fhir_servers if caller.client is not None else deps.fallback_fhir_servers
    if not fhir_server_allowed(server, allowed) or (deps.is_production and not server.startswith("https://")):
        log.warning("fhirServer not allowed for this CDS client", extra={"event": "cds.fhir_server_refused"})
        return None
    token = req.access_token
    return lambda: deps.client_factory(server, token)


@dataclass
class Evaluation:
    """The response body and the rows to record for each card."""

    response: dict[str, Any]
    issued: list[dict[str, Any]] = field(default_factory=list)


def evaluate(
    req: HookRequest, caller: Caller, deps: ServiceDeps, app_base_url: str, now: datetime
) -> Evaluation:
    """Check every intrathecal baclofen draft order of the request and return its cards."""
    drafts = orders.find_orders(req.draft_orders, req.selections, deps.codes)
    if not drafts:
        return Evaluation({"cards": []})
    evaluation = Evaluation({"cards": []})
    try:
        chart, gaps = _chart_for(req, caller, deps, now)
    except ChartInputError as error:
        ctx = cards.CardContext(app_base_url, req.patient_id, drafts[0].reference, req.hook)
        error_card = cards.input_error_card(ctx, error.reason)
        evaluation.response["cards"].append(error_card)
        # Recorded and audited like any card, so feedback on it is found and the refusal is on record.
        evaluation.issued.append(_row(error_card, Verdict.CANNOT_CHECK.value, [], None, None, None))
        return evaluation
    for draft in drafts:
        ctx = cards.CardContext(app_base_url, req.patient_id, draft.reference, req.hook)
        card, row = _card_for(draft, chart, list(gaps), ctx, deps, now)
        if card is not None:
            evaluation.response["cards"].append(card)
            evaluation.issued.append(row)
    return evaluation


def _chart_for(
    req: HookRequest, caller: Caller, deps: ServiceDeps, now: datetime
) -> tuple[Chart, tuple[str, ...]]:
    """Return the request's chart and prefetch gaps: from the chart cache when this exact prefetch was
    read moments ago, else resolved (fetching what is missing) and built; raise a 412 or ChartInputError."""
    cache = deps.chart_cache
    key = cache.key(req.prefetch_json, req.patient_id) if cache is not None else None
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    resolved = prefetch.resolve(
        prefetch_of(req), deps.templates, req.context, _callback_factory(req, caller, deps)
    )
    if resolved.unsatisfied_required:
        labels = ", ".join(prefetch.KEY_LABELS.get(k, k) for k in resolved.unsatisfied_required)
        raise CdsRequestError(412, f"prefetch incomplete and not fetchable: {labels}")
    chart = chart_from_entries(
        resolved.entries, codes=deps.codes, now=now, patient_id=req.patient_id,
        gaps=resolved.gaps, require_patient=False,
    )  # fmt: skip
    gaps = tuple(resolved.gaps)
    if cache is not None and not resolved.gaps and not resolved.fetched:
        # Only a prefetch that answered every template on its own: what came from fhirServer may differ
        # on the next call, and a gap might be filled by a call that has a fhirServer.
        cache.put(key, chart, gaps)
    return chart, gaps


def _card_for(
    draft: orders.DraftOrder,
    chart: Chart,
    gaps: list[str],
    ctx: cards.CardContext,
    deps: ServiceDeps,
    now: datetime,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Return the card of one draft order and the facts to record about it."""
    dose = orders.order_dose(draft, chart)
    if dose.daily_dose_ug is None:
        if ctx.hook == SELECT:
            return None, {}  # a selected order may not have its dose yet: nothing to advise on
        severity = deps.rules.severity("unit-unconvertible").value
        card = cards.unconvertible_card(ctx, dose.reason or "unknown unit", dose.original_text, severity)
        verdict = cards.unconvertible_verdict(severity)
        return card, _row(card, verdict.value, ["unit-unconvertible"], None, None, None)
    proposal = Proposal(daily_dose_ug=dose.daily_dose_ug)
    result = check(chart, proposal, deps.rules, now)
    limit_pct, suggestion, safe = None, None, None
    codes = [finding.code for finding in result.findings]
    if result.verdict is Verdict.BLOCK and _SUGGESTIBLE.intersection(codes):
        limit_pct = increase_limit_pct(build_context(chart, proposal, deps.rules, now)[0])[0]
        suggestion, safe = _suggestion(draft, chart, result, proposal, deps, now, limit_pct)
    elif "increase-over-limit" in codes:
        limit_pct = increase_limit_pct(build_context(chart, proposal, deps.rules, now)[0])[0]
    card = cards.result_card(result, ctx, gaps=gaps, limit_pct=limit_pct, suggestion=suggestion)
    return card, _row(
        card, result.verdict.value, codes, result.current_daily_dose_ug, dose.daily_dose_ug, safe
    )


def _suggestion(
    draft: orders.DraftOrder, chart: Chart, result: CheckResult, proposal: Proposal, deps: ServiceDeps,
    now: datetime, limit_pct: float,
) -> tuple[dict[str, Any] | None, float | None]:  # fmt: skip
    """Return a suggestion to lower the order to the largest safe dose, when that is still an increase."""
    safe = largest_safe_dose_ug(chart, proposal, deps.rules, now)
    current = result.current_daily_dose_ug
    if safe is None or current is None or safe <= current or safe >= proposal.daily_dose_ug:
        return None, None
    scaled = orders.scaled_order(draft, chart, safe)
    if scaled is None:
        return None, None
    resource, new_dose = scaled
    why = f"the largest dose within the {fmt_number(limit_pct)} % per-24 h limit and the maximum"
    return cards.dose_suggestion(resource, new_dose, orders.unit_form(draft), why), new_dose


def _row(
    card: Mapping[str, Any], verdict: str, codes: list[str], before: float | None, after: float | None,
    suggested: float | None,
) -> dict[str, Any]:  # fmt: skip
    """Return the facts of an issued card (completed with request facts by ``record_cards``)."""
    return {
        "uuid": card["uuid"], "verdict": verdict, "finding_codes": " ".join(codes),
        "dose_before_ug_per_day": before, "dose_after_ug_per_day": after, "suggested_ug_per_day": suggested,
    }  # fmt: skip


def record_cards(
    evaluation: Evaluation,
    req: HookRequest,
    caller: Caller,
    service_id: str,
    deps: ServiceDeps,
    now: datetime,
    remember_jti: Callable[[Connection], None] = lambda _connection: None,
) -> None:
    """Store the caller's jti, the issued cards and their ``cds.card`` audit records in one transaction.

    One commit per call (ADR 0002): the transaction holds the audit chain lock (BEGIN IMMEDIATE on
    SQLite, the advisory lock on PostgreSQL) when cards are audited, so the audit records join it; the
    jti insert comes first, so a replay (a unique-key failure) rolls back the cards and their audit
    records too and raises TrustError before anything is answered.
    """
    rows = [
        {
            **row, "service_id": service_id, "hook": req.hook, "hook_instance": req.hook_instance,
            "client_iss": caller.iss, "patient_id": req.patient_id, "user_id": req.user_id, "issued_at": now,
        }
        for row in evaluation.issued
    ]  # fmt: skip
    audit_here = bool(rows) and deps.audit.cards_in_transaction
    written: list[dict[str, Any]] = []
    # chain_transaction takes the database's write lock itself (Database.write_lock: SQLite writers
    # queue on it instead of sleeping in SQLite's busy handler); the jti-only transaction takes it here.
    with (
        nullcontext() if audit_here else deps.db.write_lock(),
        chain_transaction(deps.db) if audit_here else deps.db.engine.begin() as connection,
    ):
        remember_jti(connection)
        if rows:
            connection.execute(_INSERT_CARDS, rows)
            written = deps.audit.append_cards(connection, rows)
    deps.audit.cards_committed(rows, written)
