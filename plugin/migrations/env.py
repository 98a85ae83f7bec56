"""Alembic environment: every model module is imported so autogenerate sees all tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import plugin.models_index  # noqa: F401  (registers every table on Base.metadata)
from plugin.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on a live connection (the only mode we use)."""
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
