"""Schema migrations: Alembic, configured in code, scripts in `dispatch/migrations`.

`migrate(engine)` upgrades a database to the newest revision; on an up-to-date
database it changes nothing. A database made by the old `create_all` (tables but
no `alembic_version`) is stamped as revision 0001, which is exactly that schema,
and upgraded from there. On PostgreSQL an advisory lock makes nodes that start
together migrate one after the other.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
BASELINE_REVISION: Final = "0001"  # the schema `create_all` made before migrations
_PG_LOCK_KEY: Final = 0x63616C6C626F74  # "callbot"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic `Config` without alembic.ini; `connection` is what env.py migrates."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the database to the newest revision (idempotent)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config = alembic_config(conn)
        before = MigrationContext.configure(conn).get_current_revision()
        if before is None and inspect(conn).has_table("calls"):
            logger.info("unversioned dispatch schema: stamping %s", BASELINE_REVISION)
            command.stamp(config, BASELINE_REVISION)
            before = BASELINE_REVISION
        if before != head_revision():
            command.upgrade(config, "head")
            logger.info("dispatch schema upgraded from %s to %s", before, head_revision())
