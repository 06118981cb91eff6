"""Alembic environment: runs on the connection handed over by ``byteleap.store.migrate``."""

from __future__ import annotations

from alembic import context

from byteleap.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "byteleap migrations run through `byteleap db …` or byteleap.store.migrate, "
        "which pass an open connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    compare_type=True,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
