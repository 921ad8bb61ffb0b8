"""Alembic environment: runs on the connection `dispatch.schema.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from dispatch.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER via copy on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("dispatch migrations run through dispatch.schema.migrate(engine)")
_run(connection)
