"""The typed chart: plain, immutable objects with explicit units, built by the loader, read by the rules.

Every quantity carries its unit in its name (``daily_dose_ug``, ``volume_ml``). Every datetime is
timezone-aware UTC. Every object that came from a FHIR resource keeps that resource's reference
(``"MedicationStatement/abc"``) in ``source`` so that findings can cite their evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum


class Origin(StrEnum):
    """Where the spasticity comes from; decides which dose limits apply."""

    SPINAL = "spinal"
    CEREBRAL = "cerebral"
    UNKNOWN = "unknown"


class Phase(StrEnum):
    """Post-implant titration or long-term maintenance."""

    TITRATION = "titration"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class FlexStep:
    """One step of a flex (time-of-day) schedule: from ``start`` the pump runs at ``rate_ug_per_h``."""

    start: time
    rate_ug_per_h: float


@dataclass(frozen=True, slots=True)
class DoseRecord:
    """One active intrathecal baclofen record (MedicationStatement or MedicationRequest).

    ``daily_dose_ug`` is None when the record's dose could not be converted to ug/d; then
    ``unconvertible_reason`` says why in plain words (for the ``unit-unconvertible`` finding).
    """

    source: str
    status: str
    daily_dose_ug: float | None
    unconvertible_reason: str | None = None
    rate_ug_per_h: float | None = None
    concentration_ug_per_ml: float | None = None
    flex_steps: tuple[FlexStep, ...] = ()
    effective_start: datetime | None = None
    medication_display: str | None = None
    original_text: str | None = None  # the dose as the EHR wrote it, for display


@dataclass(frozen=True, slots=True)
class DoseChange:
    """A change of the intrathecal daily dose at ``at`` (from the dose history)."""

    at: datetime
    to_daily_dose_ug: float
    from_daily_dose_ug: float | None
    source: str

    @property
    def is_increase(self) -> bool:
        """Whether this change raised the daily dose."""
        return self.from_daily_dose_ug is not None and self.to_daily_dose_ug > self.from_daily_dose_ug


@dataclass(frozen=True, slots=True)
class Score:
    """A spasticity score. ``code`` is one of mas, psfs-frequency, psfs-severity, spasticity-nrs.

    ``value`` is ordinal for arithmetic (MAS "1+" is 1.5); ``display`` keeps what was recorded ("1+").
    A MAS with several muscles (components) is summarised by its highest grade; the rest stay in
    ``components`` as (muscle, value) pairs.
    """

    code: str
    value: float
    display: str
    effective: datetime
    source: str
    components: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class VitalSign:
    """A vital sign in canonical units: ``kind`` is temperature (Cel), systolic or diastolic (mm[Hg])."""

    kind: str
    value: float
    unit: str
    effective: datetime
    source: str


@dataclass(frozen=True, slots=True)
class ClinicalSign:
    """A recorded sign that may mean withdrawal: pruritus or altered mental status (from a Condition
    or Observation coded in codes.toml). Fever and hypotension come from ``VitalSign`` instead."""

    kind: str
    effective: datetime
    source: str
    display: str


@dataclass(frozen=True, slots=True)
class LabValue:
    """A laboratory value in canonical units (eGFR in mL/min/{1.73_m2})."""

    code: str
    value: float
    unit: str
    effective: datetime
    source: str


@dataclass(frozen=True, slots=True)
class CoMedication:
    """Another active medication, with the classes the rules care about.

    ``classes`` holds values such as ``benzodiazepine``, ``opioid``, ``barbiturate``, ``gabapentinoid``,
    ``z-drug``, ``muscle-relaxant`` (all CNS depressants) and ``oral-baclofen``.
    """

    source: str
    display: str
    classes: frozenset[str]

    @property
    def is_cns_depressant(self) -> bool:
        """Whether any class of this medication depresses the CNS."""
        return bool(self.classes - {"oral-baclofen"})


@dataclass(frozen=True, slots=True)
class ConditionEvidence:
    """A Condition that decided (or could decide) the origin, or a pregnancy."""

    source: str
    display: str
    category: str  # spinal | cerebral | pregnancy


@dataclass(frozen=True, slots=True)
class Pump:
    """The implanted pump and its reservoir, as recorded (any field may be unknown)."""

    source: str | None
    model: str | None = None
    reservoir_capacity_ml: float | None = None
    fill_volume_ml: float | None = None
    last_fill_date: datetime | None = None
    low_reservoir_alarm_volume_ml: float | None = None
    next_refill_date: datetime | None = None
    concentration_ug_per_ml: float | None = None
    implant_date: datetime | None = None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Refill:
    """A pump refill (Procedure), with the volume put in when recorded."""

    at: datetime
    source: str
    volume_ml: float | None = None


@dataclass(frozen=True, slots=True)
class Patient:
    """Who the chart is about; name and MRN are for display only, never for logs."""

    reference: str  # "Patient/123"
    name: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    mrn: str | None = None

    def age_years(self, on: date) -> int | None:
        """Return the age in whole years on ``on``, or None when the birth date is unknown."""
        if self.birth_date is None:
            return None
        born = self.birth_date
        return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything the check needs about one patient, in plain typed objects.

    ``dose_records`` holds the *active* intrathecal baclofen records only; ``dose_history`` the changes
    over time (oldest first). ``data_gaps`` lists what the loader could not read, in plain words.
    """

    patient: Patient
    dose_records: tuple[DoseRecord, ...] = ()
    dose_history: tuple[DoseChange, ...] = ()
    scores: tuple[Score, ...] = ()
    vitals: tuple[VitalSign, ...] = ()
    clinical_signs: tuple[ClinicalSign, ...] = ()
    egfr: LabValue | None = None
    co_medications: tuple[CoMedication, ...] = ()
    origin: Origin = Origin.UNKNOWN
    origin_evidence: tuple[ConditionEvidence, ...] = ()
    pregnancy: ConditionEvidence | None = None
    pump: Pump | None = None
    refills: tuple[Refill, ...] = ()
    data_gaps: tuple[str, ...] = field(default=())
