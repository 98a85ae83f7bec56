"""The sandbox EHR's synthetic patients: ``config/sandbox/patients/*.json`` and ``manifest.toml``.

Each patient is one FHIR R4 ``transaction`` Bundle of ``PUT`` entries (no fullUrl), Patient first, with
stable ids prefixed per patient. All times are written relative to ``ANCHOR``; the sandbox shifts them to
"today" by whole days. The output is deterministic: no randomness, no clock, insertion-ordered JSON.

Codes are only those in ../shared/CONTRACT.md §5 and ../shared/reference/clinical.md §5 (SNOMED conditions,
route 72607000, substance 387342009; RxNorm 1666613 and 1300890; LOINC vital signs and eGFR) and the
project's own CodeSystems (spasticity, mas-grade, pump). Where no verified code exists a resource carries
plain text only: the 500 and 1500 ug/mL products, pruritus, altered mental status, pregnancy, every
co-medication (oral baclofen, diazepam, oxycodone), the oral route, muscles, pump procedures and devices.

Before writing, ``checks.self_check`` recomputes the expected findings that follow from the generated numbers
(step limit, increase too soon, dose creep, stale or conflicting scores, reservoir, refill interval,
concentration, age) so that the manifest's ``expect`` cannot drift from the data.

Layout: ``fhir`` (code systems and datatype builders), ``timeline`` (times relative to the anchor),
``dosage`` (the ways a dose is written), ``chart_base``/``medications``/``observations``/``pump``/``chart``
(the per-patient builder), ``registry`` (manifest entries and their order), ``patients_*`` (the patients),
``checks`` (the self-check), ``manifest`` (file formats) and ``__main__`` (the command line).

Usage: ``python scripts/make_sandbox_patients.py [--out DIR]`` (default ``config/sandbox``), or
``python -m sandbox_patients`` from ``scripts/``.
"""
