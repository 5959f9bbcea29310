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
declare -A budget=(
  [AuthorizerFunction]=$((6 * MB))
  [ApiFunction]=$((8 * MB))
  [ExampleFunction]=$((8 * MB))
  [UsageFunction]=$((8 * MB))
  [WebhooksFunction]=$((8 * MB))
  [SweeperFunction]=$((8 * MB))
)
fail=0
printf '%-20s %12s %12s  %s\n' function bytes budget verdict
for f in ApiFunction AuthorizerFunction ExampleFunction UsageFunction WebhooksFunction SweeperFunction; do
  bin=.aws-sam/build/$f/bootstrap
  if [ ! -f "$bin" ]; then
    printf '%-20s %12s %12s  %s\n' "$f" - "${budget[$f]}" "missing: run make build"
    fail=1
    continue
  fi
  size=$(stat -c %s "$bin")
  verdict=ok
  if [ "$size" -gt "${budget[$f]}" ]; then verdict="OVER by $((size - budget[$f])) bytes"; fail=1; fi
  printf '%-20s %12s %12s  %s\n' "$f" "$size" "${budget[$f]}" "$verdict"
done

if [ "${KEYHUB_SIZE_CRATES:-1}" != 0 ]; then
  CARGO=${CARGO:-cargo}
  bins=(keyhub-api keyhub-authorizer keyhub-example keyhub-usage keyhub-webhooks keyhub-sweeper)
  echo "[size] the largest crates: building the bootstraps with their symbols (profile bloat)"
  # Into its own directory: cargo lambda moves each binary to
  # <lambda-dir>/<bin>/bootstrap, and target/lambda holds the shipped ones.
  PATH="$PWD/.local/venv/bin:$PATH" $CARGO lambda build --profile bloat --arm64 \
    --lambda-dir target/lambda-bloat $(printf -- '--bin %s ' "${bins[@]}") >&2
  $CARGO run -q -p keyhub-tools --bin keyhub-size -- --top 10 \
    $(printf -- 'target/lambda-bloat/%s/bootstrap ' "${bins[@]}")
fi
exit $fail
