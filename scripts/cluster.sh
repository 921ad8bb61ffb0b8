#!/usr/bin/env bash
# A callbot cluster from this machine's own processes, the same topology as
# docker/compose.yaml: Kamailio (SIP load balancer) in front of two service
# nodes that share one PostgreSQL database and one Rasa server.
#
#   scripts/cluster.sh start          start everything; returns when all of it answers
#   scripts/cluster.sh status         what runs, each node's health, Kamailio's view of the nodes
#   scripts/cluster.sh stop [--drop]  stop everything (--drop: also drop the cluster's databases)
#   scripts/cluster.sh deps           install Kamailio (Debian package) if it is missing
#
#   caller ──SIP──► Kamailio 127.0.0.1:5060 ──round-robin, OPTIONS probes──► node1 SIP 127.0.0.1:5061
#                                                                        └─► node2 SIP 127.0.0.1:5062
#   RTP goes straight between the caller and the node that answered.
#   node1, node2 ──► PostgreSQL database callbot_cluster (incidents, calls; NOTIFY between nodes)
#                ──► one Rasa server (token) ──► one action server
#                     Rasa's tracker store: PostgreSQL database callbot_cluster_rasa;
#                     its lock store: Redis (db 1)
#
# Logs, pids, generated files and each node's data dir are under CLUSTER_DIR
# (default var/cluster): logs/, pids/, node1/, node2/, rasa/, dispatcher.list,
# rasa.token. Settings (environment variables, defaults in brackets):
#   CLUSTER_DIR [var/cluster]          CLUSTER_HOST [127.0.0.1]
#   CLUSTER_SIP_PORT [5060]            Kamailio's SIP port (UDP): where callers call
#   CLUSTER_HTTP_PORTS ["8081 8082"]   one HTTP port per node (the number of nodes)
#   CLUSTER_NODE_SIP_PORTS ["5061 5062"]
#   CLUSTER_RASA_PORT [5105]           CLUSTER_ACTION_PORT [5155]
#   CLUSTER_DB [callbot_cluster]       database created on the PostgreSQL server below
#   CLUSTER_PG_HOST [127.0.0.1] CLUSTER_PG_PORT [5432] CLUSTER_PG_USER [postgres]
#   CLUSTER_PG_PASSWORD []             CLUSTER_PG_ADMIN_DB [postgres] (to create the database)
#   CLUSTER_REDIS_HOST [127.0.0.1] CLUSTER_REDIS_PORT [6379] CLUSTER_REDIS_DB [1]
#   CLUSTER_PING_S [1]                 seconds between Kamailio's OPTIONS probes
#   CLUSTER_START_TIMEOUT_S [150]
# The models come from CALLBOT_DATA_DIR [./var] as `make run` prepared them
# (scripts/setup.sh is run when they are missing).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

VENV=${CALLBOT_VENV:-.venv}
RASA_VENV=${CALLBOT_RASA_VENV:-.venv-rasa}
DATA_DIR=$(realpath -m "${CALLBOT_DATA_DIR:-./var}")
CLUSTER_DIR=$(realpath -m "${CLUSTER_DIR:-var/cluster}")
HOST=${CLUSTER_HOST:-127.0.0.1}
SIP_PORT=${CLUSTER_SIP_PORT:-5060}
read -r -a HTTP_PORTS <<< "${CLUSTER_HTTP_PORTS:-8081 8082}"
read -r -a NODE_SIP_PORTS <<< "${CLUSTER_NODE_SIP_PORTS:-5061 5062}"
RASA_PORT=${CLUSTER_RASA_PORT:-5105}
ACTION_PORT=${CLUSTER_ACTION_PORT:-5155}
DB=${CLUSTER_DB:-callbot_cluster}
RASA_DB="${DB}_rasa"
PG_HOST=${CLUSTER_PG_HOST:-127.0.0.1}
PG_PORT=${CLUSTER_PG_PORT:-5432}
PG_USER=${CLUSTER_PG_USER:-postgres}
PG_PASSWORD=${CLUSTER_PG_PASSWORD:-}
PG_ADMIN_DB=${CLUSTER_PG_ADMIN_DB:-postgres}
REDIS_HOST=${CLUSTER_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${CLUSTER_REDIS_PORT:-6379}
REDIS_DB=${CLUSTER_REDIS_DB:-1}
PING_S=${CLUSTER_PING_S:-1}
START_TIMEOUT_S=${CLUSTER_START_TIMEOUT_S:-150}

PIDS="$CLUSTER_DIR/pids"
LOGS="$CLUSTER_DIR/logs"
KAMAILIO_CTL="unix:$CLUSTER_DIR/kamailio.ctl"
TOKEN_FILE="$CLUSTER_DIR/rasa.token"
PY="$VENV/bin/python"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

node_count() { echo "${#HTTP_PORTS[@]}"; }

if ((${#HTTP_PORTS[@]} != ${#NODE_SIP_PORTS[@]})); then
    die "CLUSTER_HTTP_PORTS and CLUSTER_NODE_SIP_PORTS must list as many ports"
fi
if [[ ! "$DB" =~ ^[a-z_][a-z0-9_]*$ ]]; then
    die "CLUSTER_DB must be a plain lower-case identifier (got '$DB')"
fi

db_url() {  # db_url DATABASE -> SQLAlchemy URL for the service
    local auth=$PG_USER
    [[ -n "$PG_PASSWORD" ]] && auth="$PG_USER:$PG_PASSWORD"
    echo "postgresql+psycopg://$auth@$PG_HOST:$PG_PORT/$1"
}

# ----- processes ------------------------------------------------------------
# Each component runs in a session of its own (setsid), so that stopping it
# stops whatever it started, and nothing else.
pid_of() {  # pid_of NAME -> the pid if that component runs, else nothing (status 1)
    local file="$PIDS/$1.pid" pid
    [[ -f "$file" ]] || return 1
    pid=$(cat "$file")
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    # the pid was not reused by something else: it still leads its own group
    [[ "$(ps -o pgid= -p "$pid" | tr -d ' ')" == "$pid" ]] || return 1
    echo "$pid"
}

spawn() {  # spawn NAME COMMAND... (environment through `env`)
    local name=$1
    shift
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$PIDS/$name.pid"
    say "started $name (pid $!), log $LOGS/$name.log"
}

stop_all() {  # stop_all NAME...: SIGTERM to each process group in turn, SIGKILL after 15 s
    local name pid waiting=()
    for name in "$@"; do
        if pid=$(pid_of "$name"); then
            kill -TERM -- "-$pid" 2>/dev/null || true
            waiting+=("$name:$pid")
        fi
        rm -f "$PIDS/$name.pid"
    done
    local entry
    for entry in "${waiting[@]}"; do
        name=${entry%%:*}
        pid=${entry##*:}
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name did not stop within 15 s: killing it"
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
        say "stopped $name"
    done
}

components() {  # in start order
    echo actions rasa
    for ((i = 1; i <= $(node_count); i++)); do echo "node$i"; done
    echo kamailio
}

# ----- prerequisites -----------------------------------------------------------
ensure_kamailio() {
    command -v kamailio >/dev/null 2>&1 && return 0
    if [[ $(id -u) -eq 0 ]]; then
        say "installing Kamailio (Debian package kamailio)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2
        apt-get install -y -q --no-install-recommends kamailio >&2
        # the package enables a system-wide Kamailio on 5060; this script runs its own
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now kamailio >/dev/null 2>&1 || true
        fi
    else
        die "Kamailio is not installed; please run: sudo apt-get install -y kamailio"
    fi
    command -v kamailio >/dev/null 2>&1 || die "Kamailio could not be installed"
}

ensure_setup() {
    if [[ ! -x "$VENV/bin/callbot" || ! -x "$RASA_VENV/bin/python" \
          || ! -f "$DATA_DIR/rasa/models/callbot.tar.gz" \
          || ! -f "$DATA_DIR/models/whisper-base/model.bin" ]]; then
        say "the service, Rasa or the models are missing: running scripts/setup.sh"
        CALLBOT_DATA_DIR="$DATA_DIR" scripts/setup.sh
    fi
}

pg() {  # pg SQL...: run statements on the admin database (autocommit)
    PGHOST=$PG_HOST PGPORT=$PG_PORT PGUSER=$PG_USER PGPASSWORD=$PG_PASSWORD \
    PGDATABASE=$PG_ADMIN_DB "$PY" - "$@" <<'EOF'
import sys
import psycopg

with psycopg.connect(autocommit=True, connect_timeout=5) as conn:
    for sql in sys.argv[1:]:
        cursor = conn.execute(sql)
        for row in cursor.fetchall() if cursor.description else []:
            print(*row)
EOF
}

create_databases() {
    local db
    for db in "$DB" "$RASA_DB"; do
        if [[ -z "$(pg "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
            pg "CREATE DATABASE $db"
            say "created PostgreSQL database $db on $PG_HOST:$PG_PORT"
        fi
    done
}

drop_databases() {
    local db
    for db in "$DB" "$RASA_DB"; do
        pg "DROP DATABASE IF EXISTS $db WITH (FORCE)"
        say "dropped PostgreSQL database $db"
    done
}

write_files() {
    mkdir -p "$PIDS" "$LOGS" "$CLUSTER_DIR/rasa"
    if [[ ! -s "$TOKEN_FILE" ]]; then
        (umask 077 && "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$TOKEN_FILE")
    fi
    cat >"$CLUSTER_DIR/rasa/endpoints.yml" <<EOF
# generated by scripts/cluster.sh
action_endpoint:
  url: "http://$HOST:$ACTION_PORT/webhook"
tracker_store:
  type: SQL
  dialect: postgresql
  url: "$PG_HOST"
  port: $PG_PORT
  db: "$RASA_DB"
  username: "$PG_USER"
  password: "$PG_PASSWORD"
lock_store:
  type: redis
  url: "$REDIS_HOST"
  port: $REDIS_PORT
  db: $REDIS_DB
  key_prefix: "$(tr -cd '[:alnum:]' <<<"$DB")"
EOF
    printf '# generated by scripts/cluster.sh\nrest:\n' >"$CLUSTER_DIR/rasa/credentials.yml"
    {
        echo "# generated by scripts/cluster.sh: setid destination flags priority attributes"
        for ((i = 0; i < $(node_count); i++)); do
            echo "1 sip:$HOST:${NODE_SIP_PORTS[i]} 0 0 duid=node$((i + 1))"
        done
    } >"$CLUSTER_DIR/dispatcher.list"
}

# ----- health --------------------------------------------------------------------
http_ok() {  # http_ok URL [PATTERN]: the URL answers 200 (and its body matches PATTERN)
    local body
    body=$(curl -fsS --max-time 2 "$1" 2>/dev/null) || return 1
    [[ -z "${2:-}" ]] || grep -q -- "$2" <<<"$body"
}

node_health() {  # node_health I -> the node's /health status ("ok", "degraded", ...)
    curl -fsS --max-time 2 "http://$HOST:${HTTP_PORTS[$1]}/health" 2>/dev/null \
        | "$PY" -c 'import json, sys; print(json.load(sys.stdin).get("status", "?"))' 2>/dev/null \
        || echo "not answering"
}

dispatcher_list() {  # Kamailio's view of the nodes: "URI FLAGS" per line
    kamcmd -s "$KAMAILIO_CTL" dispatcher.list 2>/dev/null \
        | awk '/URI:/ {uri=$2} /FLAGS:/ {print uri, $2}'
}

component_ready() {
    local token
    token=$(cat "$TOKEN_FILE")
    case $1 in
        actions) http_ok "http://$HOST:$ACTION_PORT/health" ;;
        rasa) http_ok "http://$HOST:$RASA_PORT/status?token=$token" model_file ;;
        node*) [[ "$(node_health $((${1#node} - 1)))" == "ok" ]] ;;
        kamailio) [[ $(dispatcher_list | grep -c ' A') -ge 1 ]] ;;
    esac
}

# ----- commands --------------------------------------------------------------------
cmd_start() {
    local name running=()
    for name in $(components); do
        pid_of "$name" >/dev/null && running+=("$name")
    done
    ((${#running[@]} == 0)) || die "already running: ${running[*]} (scripts/cluster.sh stop first)"
    ensure_kamailio
    ensure_setup
    command -v curl >/dev/null 2>&1 || die "curl is needed"
    create_databases
    write_files
    local token
    token=$(cat "$TOKEN_FILE")
    local quiet=(TF_CPP_MIN_LOG_LEVEL=2 RASA_TELEMETRY_ENABLED=false)

    spawn actions env SANIC_HOST="$HOST" PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" \
        "$PY" -m rasa_sdk --actions dialog.actions --port "$ACTION_PORT"
    spawn rasa env "${quiet[@]}" CALLBOT_DATA_DIR="$CLUSTER_DIR" \
        "$RASA_VENV/bin/python" dialog/rasa_launcher.py run --enable-api \
        -i "$HOST" -p "$RASA_PORT" --model "$DATA_DIR/rasa/models/callbot.tar.gz" \
        --endpoints "$CLUSTER_DIR/rasa/endpoints.yml" \
        --credentials "$CLUSTER_DIR/rasa/credentials.yml" --auth-token="$token"
    for ((i = 0; i < $(node_count); i++)); do
        local n=$((i + 1))
        mkdir -p "$CLUSTER_DIR/node$n"
        spawn "node$n" env \
            CALLBOT_HTTP_HOST="$HOST" CALLBOT_HTTP_PORT="${HTTP_PORTS[i]}" \
            CALLBOT_DATA_DIR="$CLUSTER_DIR/node$n" \
            CALLBOT_DATABASE_URL="$(db_url "$DB")" \
            CALLBOT_RASA_URL="http://$HOST:$RASA_PORT" CALLBOT_RASA_TOKEN="$token" \
            CALLBOT_SIP_HOST="$HOST" CALLBOT_SIP_PORT="${NODE_SIP_PORTS[i]}" \
            CALLBOT_AUDIOSOCKET_PORT=0 \
            CALLBOT_WHISPER_MODEL_DIR="$DATA_DIR/models/whisper-base" \
            CALLBOT_LOG_LEVEL="${CALLBOT_LOG_LEVEL:-INFO}" \
            "$VENV/bin/callbot" serve
    done
    spawn kamailio kamailio -DD -E -m 64 -M 8 -f "$REPO/docker/kamailio.cfg" \
        -Y "$CLUSTER_DIR" \
        -A "LISTEN=udp:$HOST:$SIP_PORT" \
        -A "DS_LIST=\"$CLUSTER_DIR/dispatcher.list\"" \
        -A "CTL_SOCKET=\"$KAMAILIO_CTL\"" \
        -A "PING_INTERVAL_S=$PING_S"

    say "waiting for every part to answer (at most $START_TIMEOUT_S s)"
    local deadline=$((SECONDS + START_TIMEOUT_S)) pending
    while :; do
        pending=()
        for name in $(components); do
            pid_of "$name" >/dev/null || die "$name exited while starting: see $LOGS/$name.log"
            component_ready "$name" || pending+=("$name")
        done
        ((${#pending[@]} == 0)) && break
        if ((SECONDS >= deadline)); then
            die "not ready after $START_TIMEOUT_S s: ${pending[*]} (logs in $LOGS)"
        fi
        sleep 0.5
    done
    say "cluster ready in ${SECONDS} s"
    cmd_status
}

cmd_status() {
    local name pid state any=0
    for name in $(components); do
        if pid=$(pid_of "$name"); then
            any=1
            state="running (pid $pid)"
            case $name in
                node*)
                    local i=$((${name#node} - 1))
                    state+=", health $(node_health "$i"), http://$HOST:${HTTP_PORTS[i]}"
                    state+=", SIP udp $HOST:${NODE_SIP_PORTS[i]}" ;;
                kamailio) state+=", SIP udp $HOST:$SIP_PORT (call sip:114@$HOST:$SIP_PORT)" ;;
                rasa) state+=", http://$HOST:$RASA_PORT (token in $TOKEN_FILE)" ;;
                actions) state+=", http://$HOST:$ACTION_PORT" ;;
            esac
        else
            state="stopped"
        fi
        printf '%-9s %s\n' "$name" "$state"
    done
    printf '%-9s %s\n' database "$(db_url "$DB" | sed 's#://[^@]*@#://#')"
    if pid_of kamailio >/dev/null; then
        echo "Kamailio's nodes (A active, I inactive, P probing):"
        dispatcher_list | sed 's/^/  /'
    fi
    ((any)) || return 3
}

cmd_stop() {
    # the load balancer first (no new calls), then the nodes, then what they use
    stop_all kamailio
    # every node that has a pid file, even if started with other CLUSTER_* ports
    local nodes
    mapfile -t nodes < <({ components | grep '^node'
                           find "$PIDS" -maxdepth 1 -name 'node*.pid' -printf '%f\n' 2>/dev/null \
                               | sed 's/\.pid$//'; } | sort -u)
    stop_all "${nodes[@]}"
    stop_all rasa actions
    if [[ "${1:-}" == "--drop" ]]; then
        drop_databases
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    deps) ensure_kamailio; command -v kamailio ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
