"""Database engines with this project's settings: SQLite (WAL) or PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import StaticPool


def normalise_url(url: URL) -> URL:
    if url.drivername == "postgresql":  # psycopg 3 is the driver we ship
        return url.set(drivername="postgresql+psycopg")
    return url


def create_database_engine(
    url: URL, timeout_s: float, busy_timeout_s: float, pool_size: int
) -> Engine:
    """An engine with this project's settings: SQLite in WAL mode, or PostgreSQL
    with a statement timeout; parameters are never shown in error messages."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _create_sqlite_engine(url, busy_timeout_s)
    if backend == "postgresql":
        options = url.query.get("options")
        extra = f"-c statement_timeout={int(timeout_s * 1000)}"
        return create_engine(
            url,
            hide_parameters=True,  # never put transcripts or numbers in error messages
            pool_pre_ping=True,
            pool_size=pool_size,
            pool_timeout=timeout_s,
            connect_args={
                "connect_timeout": max(1, int(timeout_s)),
                "options": f"{options} {extra}" if isinstance(options, str) else extra,
            },
        )
    raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _create_sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    engine = create_engine(
        url,
        hide_parameters=True,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        # One shared connection for an in-memory database, else each thread's
        # connection would see its own empty database.
        poolclass=StaticPool if in_memory else None,
    )
    busy_timeout_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: DBAPIConnection, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        finally:
            cursor.close()

    return engine
