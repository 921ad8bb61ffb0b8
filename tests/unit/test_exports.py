"""Incident exports: CAP 1.2 XML valid against OASIS's schema, EIDO-style JSON."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lxml import etree

from callcenter.events import Line
from dispatch import IncidentData
from tests.unit.test_incidents_api import REPO_DATA, Api, api, report

__all__ = ["api"]

pytestmark = pytest.mark.unit

SCHEMA = Path(os.environ.get("CALLBOT_DATA_DIR", REPO_DATA)) / "test-data/cap/CAP-v1.2.xsd"


@pytest.fixture(scope="module")
def cap_schema() -> etree.XMLSchema:
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} missing: `make setup-test` fetches OASIS's CAP 1.2 schema")
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


async def test_cap_export_validates_against_the_oasis_schema(
    api: Api, cap_schema: etree.XMLSchema
) -> None:
    incident = await report(
        api.store, "cap1", priority=1, unit="00070", red_flags=("people_trapped", "spreading_fire")
    )
    await api.store.acknowledge_incident(incident, "lan")
    await api.store.upsert_incident(
        IncidentData(id="inc-bare", line=Line.POLICE)  # nothing known yet
    )
    for incident_id in (incident, "inc-bare"):
        answer = await api.client.get(
            f"/api/v1/incidents/{incident_id}/cap", headers=api.as_("dispatcher")
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/cap+xml"
        document = etree.fromstring(answer.content)
        assert cap_schema.validate(document), cap_schema.error_log
    ns = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
    answer = await api.client.get(f"/api/v1/incidents/{incident}/cap", headers=api.as_("admin"))
    alert = etree.fromstring(answer.content)
    assert alert.findtext("cap:msgType", namespaces=ns) == "Update"  # acknowledged: version 2
    assert alert.findtext("cap:info/cap:category", namespaces=ns) == "Fire"
    assert alert.findtext("cap:info/cap:severity", namespaces=ns) == "Extreme"
    assert alert.findtext("cap:info/cap:area/cap:geocode/cap:value", namespaces=ns) == "00070"
    assert alert.findtext("cap:scope", namespaces=ns) == "Restricted"


async def test_eido_export_carries_the_incident_call_and_location(api: Api) -> None:
    incident = await report(api.store, "eido1", unit="00070", red_flags=("weapon",))
    answer = await api.client.get(
        f"/api/v1/incidents/{incident}/eido", headers=api.as_("supervisor")
    )
    assert answer.status_code == 200
    eido = answer.json()
    assert eido["incidentComponent"]["incidentTrackingIdentifier"] == incident
    assert eido["locationComponent"][0]["locationByValue"]["civicAddressText"] == "số 18 Hàng Bài"
    assert eido["locationComponent"][0]["locationByValue"]["administrativeUnitCode"] == "00070"
    assert eido["callComponent"][0]["callIdentifier"] == "eido1"
    assert eido["notesComponent"] == [{"noteLabel": "red flag", "noteText": "weapon"}]
    for path in ("/api/v1/incidents/nope/eido", "/api/v1/incidents/nope/cap"):
        assert (await api.client.get(path, headers=api.as_("admin"))).status_code == 404
        assert (await api.client.get(path)).status_code == 401
