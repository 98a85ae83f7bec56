"""Import every model module so ``Base.metadata`` knows all tables (Alembic, tests)."""

from plugin.audit import models as audit_models  # noqa: F401
from plugin.cds import models as cds_models  # noqa: F401
from plugin.clinician import models as clinician_models  # noqa: F401
from plugin.launches import models as launch_models  # noqa: F401
from plugin.verification import models as verification_models  # noqa: F401
from plugin.writeback import models as writeback_models  # noqa: F401
