"""Medication resources for a sandbox patient: the intrathecal product, its dose history and co-medications."""

from __future__ import annotations

from .chart_base import ChartBase
from .dosage import DoseForm, oral
from .fhir import PRODUCTS, RXNORM, SNOMED, Json, cc, qty, reference


class MedicationsMixin(ChartBase):
    """Builders for Medication, MedicationStatement and MedicationRequest."""

    def medication(self, conc: float, strength_in_mg: bool = False, with_strength: bool = True) -> str:
        """Add the intrathecal baclofen Medication at ``conc`` ug/mL; return its reference."""
        rxcui, name = PRODUCTS[conc] if with_strength else (None, "baclofen intrathecal injection")
        code = cc(RXNORM, rxcui, name, name) if rxcui else {"text": name}
        ingredient: Json = {
            "itemCodeableConcept": cc(SNOMED, "387342009", "Baclofen (substance)", "baclofen"),
            "isActive": True,
        }
        if with_strength:
            num = qty(conc / 1000, "mg") if strength_in_mg else qty(conc, "ug")
            ingredient["strength"] = {"numerator": num, "denominator": qty(1, "mL")}
            self.conc = conc
        return self.add("Medication", "itb", {"code": code, "status": "active", "ingredient": [ingredient]})

    def statement(
        self, suffix: str, status: str, drug: Json, start: str, end: str | None, dosage: list[Json]
    ) -> str:
        """Add a MedicationStatement for ``drug`` (a medication[x] element) from ``start`` to ``end``."""
        period = {"start": start} | ({"end": end} if end else {})
        body = {"status": status} | drug | {"subject": self.subject, "effectivePeriod": period}
        return self.add("MedicationStatement", suffix, body | {"dateAsserted": start, "dosage": dosage})

    def request(
        self,
        suffix: str,
        status: str,
        drug: Json,
        authored: str,
        dosage: list[Json],
        prior: str | None = None,
    ) -> str:
        """Add a MedicationRequest (an order) for ``drug``, replacing ``prior`` when given."""
        body = {"status": status, "intent": "order"} | drug | {"subject": self.subject}
        body |= {"authoredOn": authored, "dosageInstruction": dosage}
        if prior:
            body["priorPrescription"] = reference(prior)
        return self.add("MedicationRequest", suffix, body)

    def itb(
        self,
        med: str,
        history: list[tuple[str, float]],
        form: DoseForm,
        statements: bool = True,
        requests: bool = True,
        left_open: int | None = None,
    ) -> None:
        """Add the intrathecal dose history: one MedicationStatement and MedicationRequest per dose level."""
        self.history = history
        drug = {"medicationReference": reference(med)}
        prior: str | None = None
        for i, (start, daily) in enumerate(history, 1):
            current = i == len(history)
            end = None if current else history[i][0]
            dosage = form(daily)
            suffix = f"itb-{i:02d}"
            if statements:
                self.statement(suffix, "active" if current else "completed", drug, start, end, dosage)
            if requests:
                status = "active" if current or i == left_open else "completed"
                replaces = None if current and left_open else prior
                prior = self.request(suffix, status, drug, start, dosage, replaces)

    def co_med(self, suffix: str, text: str, dose: float, unit: str, per_day: int, since: str) -> None:
        """Add an active oral co-medication (text only) as a MedicationStatement and a MedicationRequest."""
        dosage = oral(dose, unit, per_day)
        drug = {"medicationCodeableConcept": {"text": text}}
        self.statement(suffix, "active", drug, since, None, dosage)
        self.request(suffix, "active", drug, since, dosage)
