#!/usr/bin/env bash
# make size: each deployable bootstrap (what `make build`, i.e. sam build
# through Cargo Lambda, leaves in .aws-sam/build/<Function>/bootstrap) against
# its budget. The authorizer runs before every protected request, so it gets
# the tighter one. Exit 1 if any is missing or over budget.
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
exit $fail
