"""An incident for other systems: EIDO-style JSON and an OASIS CAP 1.2 alert.

`eido_json` follows the component layout of NENA's Emergency Incident Data
Object (STA-021: incident, call, location, person and notes components, with
their tracking identifiers and update times); it is modelled on EIDO, not a
certified conformant document. `cap_xml` is a CAP 1.2 alert that validates
against OASIS's schema (a test checks it): scope Restricted, since it carries
an emergency report, not a public warning.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from xml.etree import ElementTree as ET

from fastapi import APIRouter
from fastapi.responses import Response

from callcenter.auth.deps import StaffPrincipal
from callcenter.web.incidents_api import Database, IncidentId, refuse
from dialog.categories import CATEGORIES
from dispatch.errors import DispatchError, UnknownIncident
from dispatch.records import CallView, IncidentView
from dispatch.store import SqlCallStore

CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
SENDER: Final = "callbot@113-114.vn"
VIETNAM: Final = timezone(timedelta(hours=7))
# CAP's categories for ours (CAP: Geo Met Safety Security Rescue Fire Health Env
# Transport Infra CBRNE Other).
_CAP_CATEGORY: Final = {
    "fire": "Fire",
    "explosion_gas_leak": "CBRNE",
    "collapse_trapped": "Rescue",
    "drowning_water_rescue": "Rescue",
    "other_rescue": "Rescue",
    "traffic_accident": "Transport",
    "medical": "Health",
}
_SEVERITY: Final = {1: "Extreme", 2: "Severe", 3: "Moderate", 4: "Minor"}
_URGENCY: Final = {1: "Immediate", 2: "Immediate", 3: "Expected", 4: "Future"}


def red_flags(view: IncidentView) -> list[str]:
    raised = view.incident.details.get("red_flags")
    return [str(flag) for flag in raised] if isinstance(raised, list) else []


def cap_time(at: datetime) -> str:
    """CAP's form of a time: seconds, and the offset (Vietnam, +07:00)."""
    return at.astimezone(VIETNAM).replace(microsecond=0).isoformat()


def cap_xml(view: IncidentView) -> bytes:
    data, details = view.incident, view.incident.details
    ET.register_namespace("", CAP_NS)

    def add(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
        if text is not None:
            element.text = text
        return element

    alert = ET.Element(f"{{{CAP_NS}}}alert")
    add(alert, "identifier", f"{data.id}-v{view.version}")
    add(alert, "sender", SENDER)
    add(alert, "sent", cap_time(view.updated_at))
    add(alert, "status", "Actual")
    add(alert, "msgType", "Alert" if view.version == 1 else "Update")
    add(alert, "scope", "Restricted")
    add(alert, "restriction", "emergency services only: contains personal data")
    add(alert, "incidents", data.id)
    info = add(alert, "info")
    add(info, "language", "vi-VN")
    category = data.category or ""
    line_category = "Security" if data.line.value == "113" else "Rescue"
    add(info, "category", _CAP_CATEGORY.get(category, line_category))
    known = CATEGORIES.get(category)
    add(info, "event", known.name_en if known else (category or "unclassified emergency"))
    priority = data.priority or 0
    add(info, "urgency", _URGENCY.get(priority, "Unknown"))
    add(info, "severity", _SEVERITY.get(priority, "Unknown"))
    add(info, "certainty", "Observed" if details.get("location_confirmed") == "yes" else "Likely")
    add(info, "senderName", f"Tổng đài {data.line.value}")
    add(info, "headline", f"{data.line.value}: {known.name_vi if known else category or 'sự việc'}")
    what = details.get("what_happened")
    if isinstance(what, str) and what:
        add(info, "description", what)
    for name, value in (
        ("priority", str(data.priority) if data.priority else None),
        ("status", view.incident.status),
        ("injured", str(data.injured) if data.injured is not None else None),
        ("red_flags", ",".join(red_flags(view)) or None),
        ("callback_number", data.callback_number),
    ):
        if value:
            parameter = add(info, "parameter")
            add(parameter, "valueName", name)
            add(parameter, "value", value)
    area = add(info, "area")
    place = [data.location_text or "", str(details.get("location_unit_name") or "")]
    add(area, "areaDesc", ", ".join(p for p in place if p) or "unknown")
    code = details.get("location_unit_code")
    if isinstance(code, str) and code:
        geocode = add(area, "geocode")
        add(geocode, "valueName", "VN-ward-2025")
        add(geocode, "value", code)
    xml: bytes = ET.tostring(alert, encoding="utf-8", xml_declaration=True)
    return xml


def eido_json(view: IncidentView, call: CallView | None) -> dict[str, Any]:
    data, life, details = view.incident, view.lifecycle, view.incident.details
    updated = view.updated_at.astimezone(UTC).isoformat()
    components: dict[str, Any] = {
        "eidoMessageIdentifier": f"{data.id}-v{view.version}",
        "lastUpdateTimeStamp": updated,
        "incidentComponent": {
            "componentIdentifier": f"{data.id}-incident",
            "incidentTrackingIdentifier": data.id,
            "lastUpdateTimeStamp": updated,
            "incidentTypeCommonRegistryText": data.category,
            "incidentPriorityCommonRegistryCode": data.priority,
            "incidentStatusCommonRegistryText": [data.status],
            "createdTimeStamp": view.created_at.astimezone(UTC).isoformat(),
            "dispatchedUnits": list(life.units),
            "dispositionText": life.outcome,
            "mergedIntoIdentifier": life.merged_into,
        },
        "locationComponent": [
            {
                "componentIdentifier": f"{data.id}-location",
                "locationTypeDescription": "incident",
                "locationByValue": {
                    "civicAddressText": data.location_text,
                    "administrativeUnitCode": details.get("location_unit_code"),
                    "administrativeUnitName": details.get("location_unit_name"),
                    "formerDistrictName": details.get("location_old_district"),
                    "landmarkText": details.get("location_landmark"),
                },
                "locationConfirmedByCaller": details.get("location_confirmed") == "yes",
            }
        ],
        "personComponent": [
            {
                "componentIdentifier": f"{data.id}-caller",
                "personRoleText": "caller",
                "nameText": data.caller_name,
                "contactTelephoneNumber": data.callback_number,
            }
        ],
        "notesComponent": [{"noteLabel": "red flag", "noteText": flag} for flag in red_flags(view)],
        "agentComponent": {"agentIdentifier": "callbot", "evidence": details.get("evidence")},
    }
    if call is not None:
        components["callComponent"] = [
            {
                "componentIdentifier": f"{data.id}-call",
                "callIdentifier": call.info.call_id,
                "callTypeDescription": call.info.channel,
                "languageCode": call.info.language.value,
                "callStartTimeStamp": call.started_at.astimezone(UTC).isoformat(),
                "callEndTimeStamp": call.ended_at.astimezone(UTC).isoformat()
                if call.ended_at
                else None,
                "callbackNumber": call.info.caller_number,
            }
        ]
    return components


def exports_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

    async def load(database: SqlCallStore, incident_id: str) -> IncidentView:
        view = await database.get_incident(incident_id)
        if view is None:
            raise UnknownIncident(f"no incident {incident_id!r}")
        return view

    @router.get(
        "/{incident_id}/cap",
        response_class=Response,
        responses={200: {"content": {"application/cap+xml": {}}}},
    )
    async def cap(
        incident_id: IncidentId, principal: StaffPrincipal, database: Database
    ) -> Response:
        """The incident as an OASIS CAP 1.2 alert (scope Restricted)."""
        try:
            view = await load(database, incident_id)
        except DispatchError as exc:
            refuse(exc)
        return Response(cap_xml(view), media_type="application/cap+xml")

    @router.get("/{incident_id}/eido")
    async def eido(
        incident_id: IncidentId, principal: StaffPrincipal, database: Database
    ) -> dict[str, Any]:
        """The incident as EIDO-style JSON (incident, call, location, person components)."""
        try:
            view = await load(database, incident_id)
            call = await database.get_call(view.incident.call_id) if view.incident.call_id else None
        except DispatchError as exc:
            refuse(exc)
        return eido_json(view, call)

    return router
