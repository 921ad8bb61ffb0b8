"""Runs the `rasa` command line in the Rasa environment, faster to start.

Run with the Rasa environment's interpreter, never imported by the service:
    .venv-rasa/bin/python dialog/rasa_launcher.py run --enable-api ...

skops (which Rasa uses to load the logistic regression classifier) scans every
loaded module when it is first imported: ~7 s once TensorFlow is loaded.
Importing it before Rasa brings the server's ready time from ~15 s to ~7 s
(measured, see shared/DESIGN.md).
"""

import os
import sys

# This file's folder holds modules named like the standard library's
# (dialog/numbers.py): keep it off the import path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")  # no network, no prompt
# Rasa's training cache defaults to ./.rasa/cache; keep it with the other data.
os.environ.setdefault(
    "RASA_CACHE_DIRECTORY",
    os.path.join(os.environ.get("CALLBOT_DATA_DIR", "var"), "rasa", "cache"),
)

import skops.io  # noqa: F401  (before rasa: see above)
from rasa.__main__ import main

if __name__ == "__main__":
    sys.argv[0] = "rasa"
    sys.exit(main())
