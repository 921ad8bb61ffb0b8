"""Actions around the form: the closing words, and what follows the end of the form."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from dialog.actions import triage
from dialog.actions.incident_form import turn_from_tracker


class ActionSubmitIncident(Action):  # type: ignore[misc]
    """The form ended: say why (hold, closing, answer, warning) and mark the dialog done."""

    def name(self) -> str:
        return "action_submit_incident"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        state: dict[str, Any] = dict(tracker.get_slot("dialog_state") or {})
        reason = state.get("end", "complete")
        category = tracker.get_slot("category")
        if reason == "administrative":
            dispatcher.utter_message(response="utter_administrative")
        elif reason == "prank":
            dispatcher.utter_message(response="utter_prank_warning")
        elif reason in ("handoff", "silent") or tracker.get_slot("handoff"):
            dispatcher.utter_message(response="utter_hold")
        elif triage.is_emergency(category):
            dispatcher.utter_message(response="utter_closing")
        else:
            dispatcher.utter_message(response="utter_goodbye")
        return [SlotSet("done", True), SlotSet("ask_mode", "plain")]


class ActionAfterClose(Action):  # type: ignore[misc]
    """A turn no rule covers: after the form ended, or a conversation never opened.

    A new emergency re-opens the form; a request for a human hands off; anything
    else is acknowledged (the transcript keeps it for the dispatcher).
    """

    def name(self) -> str:
        return "action_after_close"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        turn = turn_from_tracker(tracker)
        category = triage.category_for_intent(turn.intent, turn.confidence)
        state: dict[str, Any] = dict(tracker.get_slot("dialog_state") or {})
        ended = bool(tracker.get_slot("done"))
        state["intent"] = turn.intent
        state["confidence"] = round(turn.confidence, 4)
        reopen_after = ("administrative", "prank", "goodbye", "silent")
        flagged = bool(tracker.get_slot("red_flags"))
        new_emergency = (triage.is_emergency(category) or flagged) and (
            not triage.is_emergency(tracker.get_slot("category"))
            or state.get("end") in reopen_after
        )
        if not ended or new_emergency:
            state.pop("end", None)
            return [
                SlotSet("done", False),
                SlotSet("dialog_state", state),
                SlotSet("requested_slot", None),
                FollowupAction("incident_form"),
            ]
        if turn.intent == "request_human":
            dispatcher.utter_message(response="utter_hold")
            return [
                SlotSet("handoff", True),
                SlotSet("handoff_reason", "caller asked for a human"),
                SlotSet("dialog_state", state),
                FollowupAction("action_listen"),
            ]
        if turn.intent in ("goodbye", "thank"):
            dispatcher.utter_message(response="utter_goodbye")
        else:
            dispatcher.utter_message(response="utter_recorded")
        return [SlotSet("dialog_state", state), FollowupAction("action_listen")]
