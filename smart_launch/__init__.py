"""A reusable SMART App Launch 2.2 client (discovery, authorize, token, refresh, launch context) and a
FHIR R4 REST client. It knows nothing about baclofen. ``smart_launch.sandbox`` is its mirror image: a
development EHR (authorization server and FHIR store) used by the demo and the tests."""
