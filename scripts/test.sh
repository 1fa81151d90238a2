#!/usr/bin/env bash
# npm test: sets up what is missing, brings up the local brokers, builds, type-checks and runs every test.
# Brokers given by KAFKA_BROKERS / AMQP_URL are used as they are; otherwise the local ones are started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVEYOR_ROOT"
started=$SECONDS
bash scripts/setup.sh
use_project_node
if [ -z "${KAFKA_BROKERS:-}" ] || [ -z "${AMQP_URL:-}" ]; then
  bash scripts/brokers.sh start
  export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
  export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672}"
fi
say "setup and brokers took $((SECONDS - started)) s; building"
npx --no-install tsc -p tsconfig.build.json
npx --no-install tsc -p tsconfig.json --noEmit
say "running tests against Kafka $KAFKA_BROKERS and RabbitMQ $(printf %s "$AMQP_URL" | sed -E 's#//([^:/@]+):[^@]*@#//\1:***@#')"

summary="$CONVEYOR_LOCAL/test-summary.json"
rm -f "$summary"
rc=0
CONVEYOR_TEST_SUMMARY="$summary" npx --no-install vitest run "$@" || rc=$?
[ "$rc" -eq 0 ] && exit 0

# The Kafka client's native layer can crash the *test* process (not Conveyor's runner) when a test client
# disconnects (confluent-kafka-javascript issue #34, a segfault in a consume-loop callback after close).
# When the only failures of the run are test files whose process died of a signal, those files run once more,
# whole, in a fresh process; every one of their tests must pass then. Any assertion failure fails the run as is.
# shellcheck disable=SC2016 # JavaScript, not shell
crashed_files="$(node -e '
  const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (s.failed === 0 && s.crashed.length > 0) console.log(s.crashed.map((c) => c.file).join("\n"));
' "$summary" 2>/dev/null || true)"
[ -n "$crashed_files" ] || exit "$rc"
mapfile -t files <<<"$crashed_files"
say "the test process of ${files[*]} died of a signal (see the error above); running those files once more"
first="$summary.first"
mv "$summary" "$first"
rc=0
CONVEYOR_TEST_SUMMARY="$summary" npx --no-install vitest run "${files[@]}" || rc=$?
# shellcheck disable=SC2016 # JavaScript, not shell
node -e '
  const fs = require("fs");
  const [a, b] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  const sum = (key) => a.crashed.reduce((n, c) => n + c[key], 0);
  const passed = a.passed - sum("passed") + b.passed;
  const skipped = a.skipped - (sum("tests") - sum("passed")) + b.skipped;
  console.log("[conveyor] whole run, the crashed files counted from their second run:");
  console.log(`${passed} passed, ${b.failed + b.crashed.length} failed, ${skipped} skipped`);
' "$first" "$summary" || true
exit "$rc"
