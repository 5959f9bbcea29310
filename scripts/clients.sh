#!/usr/bin/env bash
# The Python and TypeScript clients, generated from openapi.yaml every time
# (so they cannot drift from the spec) with pinned generators, into .local/
# (which git ignores):
#
#   .local/clients/python/keyhub_api     openapi-python-client's package
#   .local/clients/typescript/           clients/typescript with the
#                                        generated src/schema.d.ts, compiled
#                                        to build/ with the pinned tsc
#
# The generators install on first use: Python's into .local/clients/venv from
# clients/python/requirements.txt, npm's from clients/typescript's
# package-lock.json (npm ci). Nothing generated is committed; only the thin
# hand-written layer (retries, rate-limit headers) and the tests are.
#
#   scripts/clients.sh            install what is missing, generate, compile
#
# Runs are serialised with flock: tests on parallel stacks share the output.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.local/clients"
venv="$out/venv"
log() { echo "[clients] $*" >&2; }

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

python_setup() {
  local stamp="$venv/.requirements"
  if [ ! -x "$venv/bin/openapi-python-client" ] || ! cmp -s "$root/clients/python/requirements.txt" "$stamp"; then
    log "installing openapi-python-client into .local/clients/venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/clients/python/requirements.txt" >&2
    cp "$root/clients/python/requirements.txt" "$stamp"
  fi
}

# Generates into a fresh directory and swaps it in. A warning from the
# generator means part of the spec was left out of the client, so it fails.
python_generate() {
  local tmp="$out/python.new" report="$out/python-generate.log"
  rm -rf "$tmp"; mkdir -p "$tmp"
  # ruff (the post hooks) is in the venv.
  if ! PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate \
      --path "$root/openapi.yaml" --config "$root/clients/python/generator.yaml" \
      --meta none --output-path "$tmp/keyhub_api" >"$report" 2>&1; then
    cat "$report" >&2; log "openapi-python-client failed"; exit 1
  fi
  if grep -qi 'warning' "$report"; then
    cat "$report" >&2; log "openapi-python-client left part of openapi.yaml out (above)"; exit 1
  fi
  rm -rf "$out/python"; mv "$tmp" "$out/python"
}

typescript_generate() {
  local src="$root/clients/typescript" dir="$out/typescript"
  mkdir -p "$dir"
  if ! cmp -s "$src/package-lock.json" "$dir/package-lock.json" || [ ! -d "$dir/node_modules" ]; then
    command -v npm >/dev/null || { log "npm (Node 20 or later) is needed for the TypeScript client"; exit 1; }
    log "installing openapi-typescript, openapi-fetch and typescript into .local/clients/typescript"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
  rm -rf "$dir/src" "$dir/test" "$dir/build"
  cp -r "$src/src" "$src/test" "$src/tsconfig.json" "$dir/"
  (cd "$dir" && node_modules/.bin/openapi-typescript "$root/openapi.yaml" -o src/schema.d.ts --silent >&2 \
    && node_modules/.bin/tsc -p tsconfig.json)
}

python_setup
python_generate
typescript_generate
log "generated from openapi.yaml: .local/clients/python/keyhub_api, .local/clients/typescript/build"
