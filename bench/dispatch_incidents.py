"""The incidents `bench.bench_dispatch` writes, and the audit rows each must leave."""

from __future__ import annotations

from dataclasses import replace

from callcenter.events import Line
from dispatch.records import IncidentData, JsonValue

# What the bot writes and the store audits (dispatch.incidents.BOT_FIELDS), kept
# apart here so that the expected audit rows are not computed by the code under test.
AUDITED = (
    "call_id",
    "line",
    "category",
    "priority",
    "location_text",
    "callback_number",
    "caller_name",
    "injured",
    "details",
)
KINDS: tuple[tuple[Line, str, int], ...] = (
    (Line.FIRE, "fire", 1),
    (Line.POLICE, "robbery", 2),
    (Line.POLICE, "traffic_accident", 2),
    (Line.FIRE, "explosion_gas_leak", 1),
    (Line.POLICE, "theft", 3),
    (Line.POLICE, "assault", 2),
    (Line.FIRE, "other_rescue", 2),
)
STREETS = (
    "phố Huế",
    "Hàng Bài",
    "ngõ 105 Láng Hạ",
    "Kim Mã",
    "Nguyễn Trãi",
    "Giải Phóng",
    "Trần Duy Hưng",
    "Cầu Giấy",
)
NAMES = ("Nguyễn Văn An", "Trần Thị Bích", "Lê Minh Châu", "Phạm Quốc Dũng", "Hoàng Thu Hà")


def incident_pair(prefix: str, index: int) -> tuple[IncidentData, IncidentData]:
    """An incident as the bot first writes it, and after one more detail arrived."""
    line, category, priority = KINDS[index % len(KINDS)]
    street = STREETS[(index // len(KINDS)) % len(STREETS)]
    location = f"số {index % 300 + 1} {street}"
    number = f"09{index:08d}"
    details: dict[str, JsonValue] = {
        "incident_location": location,
        "callback_number": number,
    }
    if priority == 1:
        details["red_flags"] = ["people_trapped"]
    first = IncidentData(
        id=f"{prefix}-{index:05d}",
        line=line,
        call_id=f"{prefix}-call-{index:05d}",
        category=category,
        priority=priority,
        location_text=location,
        callback_number=number,
        details=details,
    )
    name = NAMES[index % len(NAMES)]
    injured = index % 3
    second = replace(
        first,
        caller_name=name,
        injured=injured,
        details={**details, "caller_name": name, "injured": str(injured)},
    )
    return first, second


def audited_fields(incident: IncidentData) -> dict[str, object]:
    values = {name: getattr(incident, name) for name in AUDITED}
    values["line"] = str(incident.line)
    values["details"] = dict(incident.details)
    return values


def expected_audit(first: IncidentData, second: IncidentData) -> dict[int, int]:
    """Audit rows per version: every non-empty field and the status at creation,
    then every field the update changed."""
    created = audited_fields(first)
    updated = audited_fields(second)
    return {
        1: sum(1 for value in created.values() if value not in (None, {}, [])) + 1,
        2: sum(1 for name in AUDITED if created[name] != updated[name]),
    }
