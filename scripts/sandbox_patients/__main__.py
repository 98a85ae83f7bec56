"""Generate the sandbox EHR's synthetic patients: ``config/sandbox/patients/*.json`` and ``manifest.toml``.

The command line of the generator (``python -m sandbox_patients`` from ``scripts/``, or
``scripts/make_sandbox_patients.py``): build every registered patient, self-check it, write the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import patients_baseline, patients_findings, patients_unreadable
from .chart import Chart
from .checks import self_check
from .fhir import Json
from .manifest import bundle_text, manifest
from .registry import Meta, registered

PATIENT_MODULES = (patients_baseline, patients_findings, patients_unreadable)  # imported to register them
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "config" / "sandbox"


def build_all() -> list[tuple[Meta, Json]]:
    """Build, self-check and return every patient's manifest entry and Bundle."""
    built = []
    for meta, build in registered():
        chart = Chart(meta.pid)
        build(chart)
        self_check(meta, chart)
        built.append((meta, chart.bundle()))
    return built


def main(argv: list[str] | None = None) -> int:
    """Write the patients and the manifest under ``--out``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    out: Path = parser.parse_args(argv).out
    (out / "patients").mkdir(parents=True, exist_ok=True)
    built = build_all()
    for meta, bundle in built:
        text = bundle_text(bundle)
        (out / "patients" / f"{meta.pid}.json").write_text(text, encoding="utf-8")
    (out / "manifest.toml").write_text(manifest([m for m, _ in built]), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
