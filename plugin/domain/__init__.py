"""The intrathecal baclofen domain: typed chart, unit conversion, loading, rules and results.

Data flows one way: FHIR resources -> ``loader`` -> ``Chart`` -> ``engine.check`` -> ``CheckResult``.
Nothing in this package does I/O except ``loader`` reading what it is handed and the config readers.
"""
