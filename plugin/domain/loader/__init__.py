"""Build the typed ``Chart`` from FHIR: a Bundle, a list of resources, CDS Hooks prefetch or a server.

Modules by concern: ``fhir`` (plain-dict helpers), ``index`` (resources by reference, one patient),
``dosage``, ``med_records``, ``r4b_validation`` and ``medications`` (intrathecal doses, history,
co-medications), ``observations`` with ``mas``, ``vitals`` and ``obs_values`` (scores, vitals, eGFR,
signs, pump values), ``conditions`` (origin, pregnancy, signs), ``pump``, ``patient``, ``build``
(assembly), ``bundle`` (Bundle and prefetch) and ``fhir_source`` (one round of searches).
"""

from plugin.domain.loader.build import chart_from_resources
from plugin.domain.loader.bundle import chart_from_bundle, chart_from_prefetch
from plugin.domain.loader.fhir_source import load_chart
from plugin.domain.loader.index import ChartInputError

__all__ = [
    "ChartInputError",
    "chart_from_bundle",
    "chart_from_prefetch",
    "chart_from_resources",
    "load_chart",
]
