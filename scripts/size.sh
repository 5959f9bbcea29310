#!/usr/bin/env bash
# make size: each deployable bootstrap (what `make build`, i.e. sam build
# through Cargo Lambda, leaves in .aws-sam/build/<Function>/bootstrap) against
# its budget. The authorizer runs before every protected request, so it gets
# the tighter one. Then where each one's bytes are: the largest crates in its
# code, read by tools' keyhub-size from the symbols of the same build kept
# unstripped (Cargo profile `bloat`: the release profile without `strip`,
# built for arm64 by Cargo Lambda as sam build does; one more build of the
# dependencies, a few minutes; KEYHUB_SIZE_CRATES=0 skips it).
# Exit 1 if any is missing or over budget.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=1000000
# Function (template.yaml), its binary (the function's Metadata.Binary) and
# its budget in MB: the one list the checks below read.
functions=(
  ApiFunction:keyhub-api:8
  AuthorizerFunction:keyhub-authorizer:6
  ExampleFunction:keyhub-example:8
  UsageFunction:keyhub-usage:8
  WebhooksFunction:keyhub-webhooks:8
  SweeperFunction:keyhub-sweeper:8
)
fail=0
bins=()
printf '%-20s %12s %12s  %s\n' function bytes budget verdict
for entry in "${functions[@]}"; do
  IFS=: read -r f b mb <<<"$entry"
  bins+=("$b")
  budget=$((mb * MB))
  bin=.aws-sam/build/$f/bootstrap
  if [ ! -f "$bin" ]; then
    printf '%-20s %12s %12s  %s\n' "$f" - "$budget" "missing: run make build"
    fail=1
    continue
  fi
  size=$(stat -c %s "$bin")
  verdict=ok
  if [ "$size" -gt "$budget" ]; then verdict="OVER by $((size - budget)) bytes"; fail=1; fi
  printf '%-20s %12s %12s  %s\n' "$f" "$size" "$budget" "$verdict"
done

if [ "${KEYHUB_SIZE_CRATES:-1}" != 0 ]; then
  CARGO=${CARGO:-cargo}
  echo "[size] the largest crates: building the bootstraps with their symbols (profile bloat)"
  # Into its own directory: cargo lambda moves each binary to
  # <lambda-dir>/<bin>/bootstrap, and target/lambda holds the shipped ones.
  PATH="$PWD/.local/venv/bin:$PATH" $CARGO lambda build --profile bloat --arm64 \
    --lambda-dir target/lambda-bloat $(printf -- '--bin %s ' "${bins[@]}") >&2
  $CARGO run -q -p keyhub-tools --bin keyhub-size -- --top 10 \
    $(printf -- 'target/lambda-bloat/%s/bootstrap ' "${bins[@]}")
fi
exit $fail
