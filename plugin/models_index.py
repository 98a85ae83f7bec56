"""Import every model module so ``Base.metadata`` knows all tables (Alembic, tests)."""

from plugin.launches import models as launch_models  # noqa: F401
