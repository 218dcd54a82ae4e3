#!/usr/bin/env bash
# Side-by-side jwt-bearer redemption benchmark: OpenXAA's authorization
# server (SQLite, PostgreSQL) and Ory Hydra (PostgreSQL), one load generator
# (bench/hydra/jwtbearer), same workers and duration, durability on
# everywhere. See README.md next to this file.
#
# usage: bench/hydra/run.sh [workers] [duration] [runs] [configs...]
#   configs: xaa-sqlite xaa-postgres hydra-default hydra-tuned (default: all)
# env:     HYDRA (default /tmp/hydra), WORK (default /tmp/jwtbearer-bench),
#          PG (default postgres://postgres@127.0.0.1:5432), KEEP_DB=1 to reuse
#          the databases of a previous run.
#
# Every round runs each config once, one after the other, so that a change
# in what else the machine is doing hits every config alike. Each config's
# server is started fresh for its run and stopped after it.
set -euo pipefail

WORKERS=${1:-16}
DURATION=${2:-20s}
RUNS=${3:-3}
shift $(($# < 3 ? $# : 3))
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(xaa-sqlite xaa-postgres hydra-default hydra-tuned)

HYDRA=${HYDRA:-/tmp/hydra}
WORK=${WORK:-/tmp/jwtbearer-bench}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

XAA_ADDR=127.0.0.1:18480
JWKS_ADDR=127.0.0.1:18490
IDP=https://idp.bench.example
RESOURCE=https://mcp.bench.example/files
SECRET=bench-secret-0123456789abcdefghij
HYDRA_ENV=(
  "SECRETS_SYSTEM=bench-only-system-secret-0123456789abcdef"
  "URLS_SELF_ISSUER=http://127.0.0.1:4444"
  "SERVE_PUBLIC_HOST=127.0.0.1" "SERVE_PUBLIC_PORT=4444"
  "SERVE_ADMIN_HOST=127.0.0.1" "SERVE_ADMIN_PORT=4445"
  "LOG_LEVEL=warn" "SQA_OPT_OUT=true"
)
HYDRA_DSN="$PG/hydra_bench?sslmode=disable"

mkdir -p "$WORK"
cd "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# stop PID: interrupt one process this script started and wait for it.
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# wait_url URL: poll until it answers 200 (30 s at most).
wait_url() {
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

echo "== build"
(cd "$ROOT" && go build -o "$WORK/xaa" ./cmd/xaa && go build -o "$WORK/jwtbearer" ./bench/hydra/jwtbearer)
[ -x "$HYDRA" ] || { echo "no Hydra binary at $HYDRA (see README.md)" >&2; exit 1; }

if [ "${KEEP_DB:-0}" != 1 ]; then
  echo "== fresh keys and databases"
  rm -f key.pem wrapping.key xaa-bench.db xaa-bench.db-wal xaa-bench.db-shm
  ./jwtbearer keygen -alg ES256 -out key.pem >/dev/null
  ./xaa keys init --out wrapping.key >/dev/null
  for db in hydra_bench xaa_bench; do
    psql "$PG/postgres" -qc "drop database if exists $db" -c "create database $db" 2>/dev/null
  done
fi

SHA=$(printf %s "$SECRET" | sha256sum | cut -d' ' -f1)
for db in sqlite postgres; do
  if [ $db = sqlite ]; then url="sqlite:$WORK/xaa-bench.db"; else url="$PG/xaa_bench?sslmode=disable"; fi
  cat >"xaa-$db.yaml" <<EOF
database:
  url: "$url"
keys:
  wrapping_key_file: $WORK/wrapping.key
log:
  level: warn
listen:
  addr: "$XAA_ADDR"
  admin_addr: "127.0.0.1:18481"
issuers:
  authserver: "http://$XAA_ADDR/as"
dev_mode: true
authserver:
  trusted_issuers:
    - issuer: "$IDP"
      jwks_uri: "http://$JWKS_ADDR/jwks.json"
      algorithms: [ES256]
  resources:
    - uri: "$RESOURCE"
      scopes: [files:read, files:write]
  clients:
    - client_id: bench-client
      auth_method: client_secret_basic
      client_secret_sha256: "$SHA"
      resources: ["$RESOURCE"]
      scopes: [files:read]
token_rate_limit:
  disabled: true
EOF
  [ "${KEEP_DB:-0}" = 1 ] || ./xaa migrate --config "xaa-$db.yaml" >/dev/null
done

# start_hydra DSN [extra env...]: start Hydra, record its pid in HPID.
start_hydra() {
  local dsn=$1
  shift
  env "${HYDRA_ENV[@]}" "DSN=$dsn" "$@" "$HYDRA" serve all --dev >>hydra.log 2>&1 &
  HPID=$!
  PIDS+=("$HPID")
  wait_url http://127.0.0.1:4444/health/ready
}

if [ "${KEEP_DB:-0}" != 1 ]; then
  echo "== Hydra schema, trust grant and clients"
  DSN="$HYDRA_DSN" "$HYDRA" migrate sql -e --yes >/dev/null 2>&1
  # Hydra hashes a client secret with the PBKDF2 iterations in force when
  # the client is created and checks it with the iterations stored in the
  # hash, so the two clients are created under two settings.
  start_hydra "$HYDRA_DSN"
  ./jwtbearer hydra-setup -key key.pem -issuer "$IDP" -scope files:read \
    -client-id bench-pbkdf2-25000 -client-secret "$SECRET"
  stop "$HPID"
  start_hydra "$HYDRA_DSN" OAUTH2_HASHERS_PBKDF2_ITERATIONS=1
  ./jwtbearer hydra-setup -key key.pem -issuer "$IDP" -scope files:read -skip-grant \
    -client-id bench-pbkdf2-1 -client-secret "$SECRET"
  stop "$HPID"
fi

./jwtbearer jwks -key key.pem -addr "$JWKS_ADDR" >jwks.log 2>&1 &
PIDS+=($!)
wait_url "http://$JWKS_ADDR/jwks.json"

# load LABEL SERVER_PID ARGS...: one measured run.
load() {
  local label=$1 pid=$2
  shift 2
  echo "-- $label   uptime: $(uptime)"
  ./jwtbearer load -label "$label" -workers "$WORKERS" -duration "$DURATION" \
    -key key.pem -iss "$IDP" -scope files:read -client-secret "$SECRET" -server-pid "$pid" "$@" |
    tee -a results.txt
}

run_config() {
  case $1 in
  xaa-sqlite | xaa-postgres)
    local db=${1#xaa-}
    ./xaa serve --authserver --config "xaa-$db.yaml" >>xaa.log 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_url "http://$XAA_ADDR/healthz"
    local pgdb=()
    [ "$db" = postgres ] && pgdb=(-pg-db xaa_bench)
    load "$1 round $2" "$pid" -url "http://$XAA_ADDR/as/token" -aud "http://$XAA_ADDR/as" \
      -client-id bench-client -resource "$RESOURCE" -param "resource=$RESOURCE" "${pgdb[@]}"
    stop "$pid"
    ;;
  hydra-default | hydra-tuned)
    local dsn=$HYDRA_DSN client=bench-pbkdf2-25000
    if [ "$1" = hydra-tuned ]; then
      # OpenXAA's default pool size (10, all kept idle) and a one-iteration
      # PBKDF2 secret hash: the closest Hydra gets to OpenXAA's
      # SHA-256-digest client secret and pool.
      dsn="$HYDRA_DSN&max_conns=10&max_idle_conns=10"
      client=bench-pbkdf2-1
    fi
    start_hydra "$dsn"
    load "$1 round $2" "$HPID" -url http://127.0.0.1:4444/oauth2/token -aud http://127.0.0.1:4444/oauth2/token \
      -client-id "$client" -param scope=files:read -pg-db hydra_bench
    stop "$HPID"
    ;;
  *)
    echo "unknown config $1" >&2
    exit 2
    ;;
  esac
}

echo "== $RUNS rounds of ${CONFIGS[*]}: $WORKERS workers, $DURATION each; nproc $(nproc)"
echo "== $(date -u +%FT%TZ) $(uname -sr); PostgreSQL synchronous_commit=$(psql "$PG/postgres" -Atc 'show synchronous_commit') fsync=$(psql "$PG/postgres" -Atc 'show fsync')" | tee -a results.txt
for r in $(seq "$RUNS"); do
  for c in "${CONFIGS[@]}"; do run_config "$c" "$r"; done
done
