"""The incident form's validation action: a thin rasa-sdk shell around `form_logic`."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction

from dialog.actions.form_logic import decide
from dialog.actions.turn import Outcome, Turn

log = logging.getLogger(__name__)


def turn_from_tracker(tracker: Tracker) -> Turn:
    message: dict[str, Any] = tracker.latest_message or {}
    intent: dict[str, Any] = message.get("intent") or {}
    ranking = tuple(
        (str(r.get("name")), float(r.get("confidence") or 0.0))
        for r in message.get("intent_ranking") or []
        if isinstance(r, dict) and r.get("name")
    )
    return Turn(
        text=str(message.get("text") or ""),
        intent=intent.get("name"),
        confidence=float(intent.get("confidence") or 0.0),
        requested=tracker.get_slot("requested_slot"),
        slots=dict(tracker.slots),
        ranking=ranking,
    )


def emit(outcome: Outcome, dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
    for say in outcome.say:
        if say.response is not None:
            dispatcher.utter_message(response=say.response, **say.args)
        else:
            dispatcher.utter_message(text=say.text)
    return [SlotSet(slot, value) for slot, value in outcome.slots.items()]


class ValidateIncidentForm(FormValidationAction):  # type: ignore[misc]
    """Sees every caller turn while the form is active and decides the next step."""

    def name(self) -> str:
        return "validate_incident_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        turn = turn_from_tracker(tracker)
        outcome = decide(turn)
        log.debug(
            "form turn: intent=%s (%.2f) requested=%s -> next=%s",
            turn.intent, turn.confidence, turn.requested, outcome.requested,
        )
        return emit(outcome, dispatcher)
