"""Generate the sandbox EHR's synthetic patients: ``config/sandbox/patients/*.json`` and ``manifest.toml``.

A thin entry point: the generator is the package ``scripts/sandbox_patients/`` (see its docstring), which
Python finds because it runs this file with ``scripts/`` first on ``sys.path``.

Usage: ``python scripts/make_sandbox_patients.py [--out DIR]`` (default ``config/sandbox``).
"""

from __future__ import annotations

from sandbox_patients.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
