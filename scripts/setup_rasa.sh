#!/usr/bin/env bash
# Builds the Rasa environment and trains the dialog model; fast when nothing changed.
#   scripts/setup_rasa.sh            environment + model (trained only if dialog/rasa/ changed)
#   scripts/setup_rasa.sh --no-train environment only
#
# Rasa 3.6.21 needs Python < 3.11 and pins old TensorFlow/numpy/pydantic, so it
# lives in its own virtual environment (default .venv-rasa) and runs as its own
# process. A CPython 3.10 on the machine is preferred; without one, Rasa is
# installed on 3.11 from a fully pinned list with --no-deps --ignore-requires-python.
set -euo pipefail
cd "$(dirname "$0")/.."

RASA_VENV=${CALLBOT_RASA_VENV:-.venv-rasa}
DATA_DIR=${CALLBOT_DATA_DIR:-./var}
MODEL_DIR="$DATA_DIR/rasa/models"
MODEL_NAME=callbot
PROJECT=dialog/rasa
LAUNCHER=dialog/rasa_launcher.py
WANT_TRAIN=1
[[ "${1:-}" == "--no-train" ]] && WANT_TRAIN=0

step() { printf '\n==> %s\n' "$*" >&2; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

python_is() {  # python_is CANDIDATE MINOR -> true if CANDIDATE is CPython 3.MINOR
    command -v "$1" >/dev/null 2>&1 && \
        "$1" -c "import sys; sys.exit(sys.version_info[:2] != (3, $2))" 2>/dev/null
}
find_python() {  # find_python MINOR
    local candidate
    for candidate in "python3.$1" "$HOME"/.pyenv/versions/3."$1".*/bin/python3."$1" \
                     /usr/local/bin/python3."$1" /usr/bin/python3."$1"; do
        if python_is "$candidate" "$1"; then command -v "$candidate"; return 0; fi
    done
    return 1
}

# 1. The Rasa environment -----------------------------------------------
if PY=$(find_python 10); then
    MODE=py310
    REQS=dialog/rasa-requirements-py310.txt
    PIP_FLAGS=()
elif PY=$(find_python 11); then
    MODE=py311
    REQS=dialog/rasa-requirements-py311.txt
    PIP_FLAGS=(--no-deps --ignore-requires-python)
    # multidict 5.2 has no 3.11 wheel: built from source, in pure Python without a compiler
    command -v cc >/dev/null 2>&1 || export MULTIDICT_NO_EXTENSIONS=1
else
    echo "the Rasa environment needs CPython 3.10 (preferred) or 3.11; neither found" >&2
    exit 1
fi
STAMP="$RASA_VENV/.callbot-rasa-deps"
want_stamp="$MODE $(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ ! -x "$RASA_VENV/bin/python" ]] || [[ "$(cat "$STAMP" 2>/dev/null)" != "$want_stamp" ]]; then
    t0=$(date +%s)
    if [[ -x "$RASA_VENV/bin/python" ]] && \
       ! python_is "$RASA_VENV/bin/python" "${MODE#py3}"; then
        step "removing $RASA_VENV (built with another Python)"
        rm -rf "$RASA_VENV"
    fi
    if [[ ! -x "$RASA_VENV/bin/python" ]]; then
        step "creating the Rasa environment in $RASA_VENV with $PY ($MODE)"
        "$PY" -m venv "$RASA_VENV"
    fi
    step "installing Rasa 3.6.21 from $REQS (first time: 3-5 minutes, ~2.7 GB)"
    "$RASA_VENV/bin/python" -m pip install -q --upgrade "pip<25"
    "$RASA_VENV/bin/python" -m pip install --progress-bar off "${PIP_FLAGS[@]}" -r "$REQS"
    step "checking that Rasa imports"
    "$RASA_VENV/bin/python" -c 'import rasa, skops.io, sklearn; print("rasa", rasa.__version__)'
    echo "$want_stamp" > "$STAMP"
    echo "Rasa environment ready in $(elapsed "$t0")" >&2
fi

# 2. The model: trained only when the training data changed --------------
if ((WANT_TRAIN)); then
    # the training data and config, and the Rasa environment that trains them
    data_hash=$({ find "$PROJECT" -type f \( -name '*.yml' -o -name '*.yaml' -o -name '*.txt' \) \
                      -not -path "$PROJECT/tests/*" -print0 | sort -z | xargs -0 sha256sum
                  echo "$want_stamp"; } | sha256sum | cut -d' ' -f1)
    model="$MODEL_DIR/$MODEL_NAME.tar.gz"
    model_stamp="$MODEL_DIR/$MODEL_NAME.sha256"
    if [[ ! -f "$model" ]] || [[ "$(cat "$model_stamp" 2>/dev/null)" != "$data_hash" ]]; then
        t0=$(date +%s)
        step "training the Rasa model ($PROJECT changed; about 20-40 s)"
        mkdir -p "$MODEL_DIR" "$DATA_DIR/logs"
        export RASA_CACHE_DIRECTORY="$DATA_DIR/rasa/cache" RASA_TELEMETRY_ENABLED=false
        rm -f "$model_stamp"
        "$RASA_VENV/bin/python" "$LAUNCHER" train \
            --config "$PROJECT/config.yml" --domain "$PROJECT/domain.yml" \
            --data "$PROJECT/data" --out "$MODEL_DIR" \
            --fixed-model-name "$MODEL_NAME" --quiet
        echo "$data_hash" > "$model_stamp"
        echo "model trained in $(elapsed "$t0"): $model" >&2
    else
        step "Rasa model up to date: $model"
    fi
fi
