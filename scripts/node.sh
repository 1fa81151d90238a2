#!/usr/bin/env bash
# Runs a command on the project's Node: the Node 24 that setup.sh installed into .toolchain/ when there is one
# (the Kafka client's native module was built for it), else the machine's own. For the npm scripts that need
# Node >= 22.18 on machines whose own Node is older (npm run conveyor, npm run test:unit, npm run vitest):
#
#   bash scripts/node.sh node dist/runner.js --help
#
# Without a recent enough Node it says so in one line and exits 1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
use_project_node
node_is_recent || die "Conveyor needs Node.js >= $CONVEYOR_NODE_MIN (found $(node -v 2>/dev/null || echo 'none')): run \`npm run setup\`, which installs Node 24 into .toolchain/"
exec "$@"
