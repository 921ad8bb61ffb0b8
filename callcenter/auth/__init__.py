"""Accounts, roles, sessions and API tokens for the staff side of the service.

Callers (media stream, chat) never log in; dispatchers, supervisors and admins
do, with a session cookie on pages or a bearer token on the API. This package
imports nothing heavy at import time so the `callbot` command stays quick:
import from its modules (`callcenter.auth.deps`, `callcenter.auth.store`, ...).
"""
