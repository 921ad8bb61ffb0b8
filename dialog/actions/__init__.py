"""Custom actions of the Rasa dialog, served by a rasa-sdk action server.

Run in the service's own environment (Python 3.11, `rasa-sdk`):
    python -m rasa_sdk --actions dialog.actions --port 5055

`form_logic` decides every turn of the incident form (pure, no rasa-sdk, over
the types in `turn`), with `answers` (reading one answer) and `triage`
(intent or red flag to category); `incident_form` and `closing` are the thin
rasa-sdk actions around them.
"""
