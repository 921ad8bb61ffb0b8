#!/usr/bin/env bash
# Rasa's own checks, bounded in time (about 40 s here):
#   1. rasa data validate      domain, NLU data, rules and stories agree
#   2. rasa test core          test stories (dialog/rasa/tests/test_stories.yml)
#   3. rasa test nlu           intent accuracy on the held-out sets, which are
#                              never trained on; fails below CALLBOT_RASA_MIN_ACCURACY
# Needs the environment and model from scripts/setup_rasa.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

RASA_VENV=${CALLBOT_RASA_VENV:-.venv-rasa}
DATA_DIR=${CALLBOT_DATA_DIR:-./var}
MIN_ACCURACY=${CALLBOT_RASA_MIN_ACCURACY:-0.80}
PROJECT=dialog/rasa
MODEL="$DATA_DIR/rasa/models/callbot.tar.gz"
OUT="$DATA_DIR/rasa/test"
export RASA_TELEMETRY_ENABLED=false RASA_CACHE_DIRECTORY="$DATA_DIR/rasa/cache"
rasa() { timeout 180 "$RASA_VENV/bin/python" dialog/rasa_launcher.py "$@"; }
step() { printf '\n==> %s\n' "$*" >&2; }

[[ -f "$MODEL" ]] || { echo "no model at $MODEL: run scripts/setup_rasa.sh" >&2; exit 1; }
mkdir -p "$OUT"

step "rasa data validate"
rasa data validate --domain "$PROJECT/domain.yml" --data "$PROJECT/data" \
    --config "$PROJECT/config.yml" > "$OUT/validate.log" 2>&1 \
    || { cat "$OUT/validate.log" >&2; exit 1; }
grep -E "ERROR|No story structure conflicts" "$OUT/validate.log" >&2 || true

step "rasa test core (test stories)"
rasa test core --stories "$PROJECT/tests/test_stories.yml" --model "$MODEL" \
    --out "$OUT/core" --fail-on-prediction-errors --no-plot > "$OUT/core.log" 2>&1 \
    || { tail -40 "$OUT/core.log" >&2; exit 1; }
echo "all test stories predicted correctly" >&2

status=0
for heldout in "$PROJECT"/tests/nlu_heldout*.yml; do
    name=$(basename "$heldout" .yml)
    step "rasa test nlu on $heldout"
    rasa test nlu --nlu "$heldout" --model "$MODEL" --domain "$PROJECT/domain.yml" \
        --out "$OUT/$name" > "$OUT/$name.log" 2>&1 || { tail -40 "$OUT/$name.log" >&2; exit 1; }
    "$RASA_VENV/bin/python" - "$OUT/$name/intent_report.json" "$MIN_ACCURACY" <<'PY' || status=1
import json, sys
report = json.load(open(sys.argv[1]))
accuracy, minimum = report["accuracy"], float(sys.argv[2])
macro = report["macro avg"]["f1-score"]
print(f"intent accuracy {accuracy:.3f}, macro F1 {macro:.3f} "
      f"on {report['macro avg']['support']} utterances (minimum accuracy {minimum:.2f})")
sys.exit(0 if accuracy >= minimum else 1)
PY
done
exit $status
