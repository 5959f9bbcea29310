#!/usr/bin/env bash
# `make fuzz`: schemathesis, driven by openapi.yaml alone, against the local
# stack, with every check and the stateful phase (links from openapi.yaml).
# It must find nothing: any server error or check failure fails the run.
#
#   FUZZ_SECONDS  time budget (default 600)
#   FUZZ_SEED     seed to replay a run (default: a fresh one, printed)
#   FUZZ_PHASES   schemathesis phases (default examples,coverage,fuzzing,stateful)
#   FUZZ_WORKERS  workers for fuzzing and stateful (default 2: on 2 cores, 4
#                 gave 708 cases in 60 s against 1,116 with 2)
#   CARGO         cargo to build with (default cargo; the Makefile passes its own)
#
# The stack runs in a network namespace of its own with only a loopback
# interface: the fuzzer creates webhook endpoints at whatever public URLs it
# makes up, and their deliveries must not leave this machine. DynamoDB Local
# runs in memory, so every run starts empty.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { echo "[fuzz] $*" >&2; }

seconds=${FUZZ_SECONDS:-600}
seed=${FUZZ_SEED:-$(python3 -c 'import secrets; print(secrets.randbelow(2**31))')}
out="$root/.local/fuzz"

# One schemathesis run: phases, workers, seconds, scratch dir, port, seed. Its key
# comes from scripts/fuzz_auth.py, which replaces it when the fuzzer has
# revoked it (see there).
schemathesis_run() {
  # Run from a scratch directory: schemathesis keeps a .schemathesis/ cache
  # in its working directory.
  (cd "$4" && SCHEMATHESIS_HOOKS="$root/scripts/fuzz_auth.py" \
    "$root/.local/venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" \
    run "$root/openapi.yaml" \
    --url "http://127.0.0.1:$5" \
    --checks all \
    --phases "$1" \
    --max-time "$3" \
    --seed "$6" \
    --workers "$2" \
    --request-timeout 10 \
    --suppress-health-check all \
    --warnings off \
    --report junit,ndjson --report-dir "$out") 2>&1 | tee -a "$out/schemathesis.log"
}

inside() {
  work=$(mktemp -d)
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # The fuzzer's own key must not run out of quota: limits far above what
  # it can send in the time it has.
  export KEYHUB_RATE_LIMITS='{"key_default": {"per_minute": 100000000, "per_hour": null, "per_day": null},
    "free": {"per_minute": 100000000}, "pro": {"per_minute": 100000000}, "enterprise": {"per_minute": 100000000}}'
  # The fuzzer makes keys by the thousand in one account, and listing reads
  # an account's keys whole: a lower cap keeps each list fast (past it,
  # creating answers the documented 409).
  export KEYHUB_MAX_KEYS_PER_ACCOUNT=${KEYHUB_MAX_KEYS_PER_ACCOUNT:-200}
  # Webhook URLs as in production: https only.
  export KEYHUB_WEBHOOK_ALLOW_HTTP=false
  export RUST_LOG=${RUST_LOG:-warn}
  target/debug/keyhub-local --stack "fuzz$seed" --port "$port" --receiver-port 0 \
    --dev-key-file "$work/key" --secrets-file "$work/secrets.json" >"$out/keyhub-local.log" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 300); do
    if [ -s "$work/key" ] && curl -s -o /dev/null "http://127.0.0.1:$port/api/v1/whoami"; then break; fi
    kill -0 "$pid" 2>/dev/null || { log "keyhub-local exited:"; cat "$out/keyhub-local.log" >&2; return 1; }
    sleep 0.1
  done
  local key; key=$(cat "$work/key")
  export FUZZ_BASE_URL="http://127.0.0.1:$port" FUZZ_KEY_FILE="$work/key" FUZZ_STACK="fuzz$seed" \
    FUZZ_ADMIN="$root/target/debug/keyhub-admin" FUZZ_KEYS_LOG="$out/keys-replaced.log" FUZZ_MIN_LIMIT=100000000
  FUZZ_ACCOUNT=$(curl -s "$FUZZ_BASE_URL/api/v1/whoami" -H "Authorization: Bearer $key" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["account"]["id"])')
  export FUZZ_ACCOUNT
  : >"$FUZZ_KEYS_LOG"
  log "keyhub on http://127.0.0.1:$port; schemathesis for ${seconds}s, seed $seed"
  local rc=0
  set -o pipefail
  # Two runs, one time budget: the examples and coverage phases on one
  # worker, then fuzzing and the stateful phase on two. Python 3.11 before
  # 3.11.8 has a race in its AST constructor (CPython gh-106905) that
  # schemathesis' coverage phase hits from several threads as a
  # SystemError: an error of the tool, not a finding, but it fails the run.
  local phases=${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}
  local first="" rest=""
  for p in ${phases//,/ }; do
    case "$p" in
      examples|coverage) first="${first:+$first,}$p" ;;
      *) rest="${rest:+$rest,}$p" ;;
    esac
  done
  local started=$SECONDS budget
  : >"$out/schemathesis.log"
  if [ -n "$first" ]; then
    budget=$(( seconds / 4 > 30 ? seconds / 4 : 30 ))
    schemathesis_run "$first" 1 "$budget" "$work" "$port" "$seed" || rc=$?
  fi
  # Fuzzing and stateful in rounds until the time is spent. One round ends
  # on its own once every operation has had its examples (schemathesis'
  # --max-examples, 100 by default), in well under a minute when the stack
  # is quick; raising the count instead would spend the whole budget on
  # the first operations the workers take. Round r runs with seed + r, so
  # each round tries new cases and a run replays from its one seed.
  local round=0
  while [ -n "$rest" ] && [ "$rc" -eq 0 ]; do
    budget=$(( seconds - (SECONDS - started) ))
    if [ "$budget" -lt 10 ]; then
      [ "$round" -eq 0 ] || break
      budget=10
    fi
    schemathesis_run "$rest" "${FUZZ_WORKERS:-2}" "$budget" "$work" "$port" $(( seed + round )) || rc=$?
    round=$(( round + 1 ))
  done
  local cases; cases=$(grep -Eo '[0-9]+ generated' "$out/schemathesis.log" | awk '{n += $1} END {print n + 0}')
  local replaced; replaced=$(wc -l <"$FUZZ_KEYS_LOG")
  log "seed $seed, ${seconds} s: ${cases:-no} test cases (fuzzing and stateful in $round rounds); the fuzzer revoked or narrowed its key $replaced times, each time replaced"
  # A crash of schemathesis itself is not a clean run either.
  if [ "$rc" -eq 0 ] && grep -qE '^(Error|.*Traceback|.*Internal Error)' "$out/schemathesis.log"; then
    log "schemathesis reported an error of its own"
    rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    log "schemathesis found problems (exit $rc); replay with FUZZ_SEED=$seed FUZZ_SECONDS=$seconds make fuzz"
    log "reports: $out"
  fi
  return "$rc"
}

if [ "${1:-}" = "--inside" ]; then
  inside
  exit $?
fi

mkdir -p "$out"
rm -f "$out"/*.log "$out"/*.xml "$out"/*.ndjson
"$root/scripts/stack.sh" setup
# The build `make test` makes: building only keyhub-tools would resolve
# the dependencies' features differently and compile the AWS SDK again.
${CARGO:-cargo} build --workspace --all-targets
log "seed $seed (replay: FUZZ_SEED=$seed make fuzz)"
# A network namespace of our own: root makes one directly, anyone else
# through a user namespace.
if [ "$(id -u)" = 0 ]; then netns=(unshare --net); else netns=(unshare --map-root-user --net); fi
"${netns[@]}" true 2>/dev/null || { log "cannot make a network namespace (unshare --net); refusing to fuzz with a route out"; exit 1; }
FUZZ_SEED=$seed FUZZ_SECONDS=$seconds exec "${netns[@]}" bash -c \
  'ip link set lo up && exec "$0/scripts/stack.sh" run -- "$0/scripts/fuzz.sh" --inside' "$root"
