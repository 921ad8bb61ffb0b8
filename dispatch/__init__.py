"""The call and incident store (SQLAlchemy: SQLite by default, PostgreSQL at scale).

Importing this package connects to nothing; `SqlCallStore(url)` builds an
engine and `create_schema()` makes the first connection.
"""

from dispatch.errors import (
    AlreadyClaimed,
    DispatchError,
    InvalidTransition,
    StaleVersion,
    StoreUnavailable,
    UnknownCall,
    UnknownIncident,
)
from dispatch.records import (
    AuditEntry,
    CallStatus,
    CallSummary,
    CallView,
    IncidentData,
    IncidentStatus,
    IncidentView,
    Lifecycle,
    Speaker,
    TurnData,
    TurnView,
    call_status,
    speaker,
)
from dispatch.store import CallStore, SqlCallStore

__all__ = [
    "AlreadyClaimed",
    "AuditEntry",
    "CallStatus",
    "CallStore",
    "CallSummary",
    "CallView",
    "DispatchError",
    "IncidentData",
    "IncidentStatus",
    "IncidentView",
    "InvalidTransition",
    "Lifecycle",
    "Speaker",
    "SqlCallStore",
    "StaleVersion",
    "StoreUnavailable",
    "TurnData",
    "TurnView",
    "UnknownCall",
    "UnknownIncident",
    "call_status",
    "speaker",
]
