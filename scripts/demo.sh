#!/usr/bin/env bash
# npm run demo: sets up what is missing, brings up the local brokers, builds, runs the demo.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVEYOR_ROOT"
bash scripts/setup.sh
use_project_node
bash scripts/brokers.sh start
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
npx --no-install tsc -p tsconfig.build.json
exec node dist/demo/demo.js "$@"
