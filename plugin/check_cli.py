"""``itb check``: run the dose check offline on a FHIR R4 Bundle (CONTRACT §2) and print the result.

Exit codes: 0 pass, 1 warn, 2 block, 3 cannot-check, 64 usage error (click's own usage errors, which
click would exit with 2, are mapped to 64), 65 unreadable or invalid input, 70 internal or configuration
error. Errors 65 and 70 print one line on stderr, never a traceback.

``--at`` must carry a UTC offset (``2026-11-20T10:00:00Z`` or ``+01:00``): a naive time is a usage error,
because guessing the zone would shift every 24 h / 72 h window by hours.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from plugin.domain.chart import Chart, Origin, Phase
from plugin.domain.codes import CodeSetError, load_code_sets
from plugin.domain.engine import check as run_check
from plugin.domain.loader import ChartInputError, chart_from_bundle
from plugin.domain.result import CheckResult, Proposal, Severity, Verdict
from plugin.domain.rules_common import fmt_date, fmt_number, fmt_ug_per_day
from plugin.domain.rules_config import Rules, RulesConfigError, load_rules
from plugin.domain.rules_reservoir import ReservoirProjection, pump_concentration, reservoir_projection
from plugin.domain.units import UnitError, parse_dose_text

EXIT_CODES = {Verdict.PASS: 0, Verdict.WARN: 1, Verdict.BLOCK: 2, Verdict.CANNOT_CHECK: 3}
EXIT_USAGE = 64
EXIT_DATA = 65
EXIT_SOFTWARE = 70
BUNDLE_TYPES_NOTE = "collection, searchset or transaction"


class InputError(Exception):
    """The bundle file cannot be read or is not a usable FHIR Bundle (exit 65)."""


class ContractCommand(click.Command):
    """A click command whose usage errors exit 64 (CONTRACT §2) instead of click's 2."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        """Parse the arguments, turning a usage error into exit 64."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            _usage_exit(error)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, turning a late usage error into exit 64."""
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            _usage_exit(error)


def _usage_exit(error: click.UsageError) -> NoReturn:
    """Show a usage error and exit 64."""
    error.show()
    raise click.exceptions.Exit(EXIT_USAGE)


def _parse_proposed(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    """Parse ``--proposed`` ("480 ug/d", "20 ug/h", "0.48 mg/d") to ug/d."""
    try:
        daily_dose_ug = parse_dose_text(value)
    except UnitError as error:
        raise click.BadParameter(f"{error} (examples: '480 ug/d', '20 ug/h', '0.48 mg/d')") from error
    if not math.isfinite(daily_dose_ug) or daily_dose_ug < 0:
        raise click.BadParameter(f"'{value}' is not a dose of 0 or more")
    return daily_dose_ug


def _parse_at(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """Parse ``--at`` as an ISO 8601 moment with a UTC offset."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise click.BadParameter(f"'{value}' is not an ISO 8601 date-time") from error
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise click.BadParameter(f"'{value}' has no UTC offset; write e.g. '{value}Z' or '{value}+01:00'")
    return moment.astimezone(UTC)


@click.command("check", cls=ContractCommand)
@click.option("--bundle", "bundle_path", required=True, metavar="FILE", help="FHIR R4 Bundle (JSON).")
@click.option(
    "--proposed",
    required=True,
    metavar="DOSE",
    callback=_parse_proposed,
    help="e.g. '480 ug/d' or '20 ug/h'.",
)
@click.option("--at", "at", metavar="ISO8601", callback=_parse_at, help="Moment of the check (default: now).")
@click.option("--phase", type=click.Choice([p.value for p in Phase]), help="Override the phase.")
@click.option("--origin", type=click.Choice([Origin.SPINAL.value, Origin.CEREBRAL.value]), help="Override.")
@click.option(
    "--format", "output_format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
def check(
    bundle_path: str,
    proposed: float,
    at: datetime | None,
    phase: str | None,
    origin: str | None,
    output_format: str,
) -> None:
    """Check a proposed intrathecal baclofen daily dose against a patient's FHIR Bundle."""
    now = at if at is not None else datetime.now(UTC)
    try:
        bundle = read_bundle(Path(bundle_path))
        rules = load_rules()
        chart = chart_from_bundle(bundle, codes=load_code_sets(), now=now)
    except InputError as error:
        _fail(EXIT_DATA, str(error))
    except ChartInputError as error:
        _fail(EXIT_DATA, f"invalid input in {bundle_path}: {error}")
    except (RulesConfigError, CodeSetError) as error:
        _fail(EXIT_SOFTWARE, f"configuration error: {error}")
    except Exception as error:  # noqa: BLE001 - CONTRACT: one line, never a traceback
        _fail(EXIT_SOFTWARE, f"internal error: {type(error).__name__}: {error}")
    try:
        proposal = Proposal(
            daily_dose_ug=proposed,
            phase=Phase(phase) if phase else None,
            origin=Origin(origin) if origin else None,
        )
        result = run_check(chart, proposal, rules, now)
        if output_format == "json":
            output = json.dumps(result.to_json(), indent=2, ensure_ascii=False)
        else:
            output = render_text(result, projection_for_result(chart, result, rules))
    except Exception as error:  # noqa: BLE001 - CONTRACT: one line, never a traceback
        _fail(EXIT_SOFTWARE, f"internal error: {type(error).__name__}: {error}")
    click.echo(output)
    raise click.exceptions.Exit(EXIT_CODES[result.verdict])


def read_bundle(path: Path) -> dict[str, Any]:
    """Read a FHIR Bundle from a JSON file, raising InputError with a one-line reason."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as error:
        raise InputError(f"bundle file not found: {path}") from error
    except OSError as error:
        raise InputError(f"cannot read bundle file {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path} is not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from error
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise InputError(f"{path} is not a FHIR Bundle (resourceType must be 'Bundle')")
    return document


def projection_for_result(chart: Chart, result: CheckResult, rules: Rules) -> ReservoirProjection | None:
    """Return the reservoir projection at the proposed dose, for the text output."""
    if chart.pump is None:
        return None
    concentration, _ = pump_concentration(chart)
    return reservoir_projection(
        chart.pump,
        result.current_daily_dose_ug,
        result.proposed_daily_dose_ug,
        concentration,
        result.evaluated_at,
        rules,
    )


def render_text(result: CheckResult, projection: ReservoirProjection | None) -> str:
    """Render a result for a terminal: verdict, findings by severity, then the numbers."""
    lines = [f"Verdict: {result.verdict.value.upper()}", ""]
    for severity in (Severity.CANNOT_CHECK, Severity.BLOCK, Severity.WARN, Severity.INFO):
        group = [f for f in result.findings if f.severity is severity]
        if not group:
            continue
        lines.append(f"{severity.value.upper()} ({len(group)})")
        for finding in group:
            lines.append(f"  [{finding.code}] {finding.message}")
            if finding.evidence:
                lines.append(f"      evidence: {', '.join(finding.evidence)}")
        lines.append("")
    current = "unknown"
    if result.current_daily_dose_ug is not None:
        current = f"{fmt_ug_per_day(result.current_daily_dose_ug)} ({result.current_dose_source})"
    change = "n/a" if result.change_percent is None else f"{result.change_percent:+.1f} %"
    lines += [
        f"Patient:       {result.patient}",
        f"Evaluated at:  {result.evaluated_at.isoformat()}",
        f"Current dose:  {current}",
        f"Proposed dose: {fmt_ug_per_day(result.proposed_daily_dose_ug)}",
        f"Change:        {change}",
        f"Origin:        {result.origin.value}",
        f"Phase:         {result.phase.value}",
    ]
    if projection is None:
        lines.append("Reservoir:     not projected (pump data or current dose missing)")
    else:
        lines += [
            f"Reservoir:     {fmt_number(projection.remaining_volume_ml)} mL left at "
            f"{fmt_number(projection.concentration_ug_per_ml)} ug/mL; "
            f"{projection.proposed_daily_volume_ml:.3f} mL/d at the proposed dose",
            f"               low-reservoir alarm in {fmt_number(projection.days_to_alarm)} days "
            f"({fmt_date(projection.low_reservoir_alarm_date)}); empty in "
            f"{fmt_number(projection.days_to_empty)} days; refill by {fmt_date(projection.refill_by_date)}",
        ]
    lines.append(f"Rules:         {result.rules_version}")
    return "\n".join(lines)


def _fail(code: int, reason: str) -> NoReturn:
    """Print a one-line reason on stderr and exit with ``code``."""
    one_line = " ".join(reason.split())
    click.echo(f"itb check: {one_line}", err=True)
    raise click.exceptions.Exit(code)


def main() -> None:
    """Run ``check`` as a stand-alone program (``python -m plugin.check_cli``)."""
    check(prog_name="itb check")


if __name__ == "__main__":
    main()
