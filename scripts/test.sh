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

# A test process that dies of a signal fails the run like any failed test: nothing is run again.
npx --no-install vitest run "$@"
