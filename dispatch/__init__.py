"""The call and incident store (SQLAlchemy: SQLite by default, PostgreSQL at scale).

Importing this package connects to nothing; `SqlCallStore(url)` builds an
engine and `create_schema()` makes the first connection.
"""

from dispatch.errors import DispatchError, StoreUnavailable, UnknownCall
from dispatch.records import (
    CallStatus,
    CallSummary,
    CallView,
    IncidentData,
    IncidentView,
    Speaker,
    TurnData,
    TurnView,
    call_status,
    speaker,
)
from dispatch.store import CallStore, SqlCallStore

__all__ = [
    "CallStatus",
    "CallStore",
    "CallSummary",
    "CallView",
    "DispatchError",
    "IncidentData",
    "IncidentView",
    "Speaker",
    "SqlCallStore",
    "StoreUnavailable",
    "TurnData",
    "TurnView",
    "UnknownCall",
    "call_status",
    "speaker",
]
