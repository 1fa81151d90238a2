#!/usr/bin/env bash
# Conveyor's benchmarks (docs/benchmarks.md). Builds dist/, makes sure Kafka answers, then runs one benchmark.
#
#   bash bench/run.sh throughput|cpu|memory|io|latency|rabbitmq [options]   (npm run bench -- <name> [options])
#   bash bench/run.sh all                               (all six, one after the other)
#   bash bench/run.sh <name> --help                     (the options)
#
# Each benchmark prints a table and, as its last stdout line, one JSON object, also written to
# bench/results/<name>-<timestamp>.json. Build, broker and log output go to stderr.
# Environment: KAFKA_BROKERS (default: start the local broker, 127.0.0.1:9092); AMQP_URL for memory and rabbitmq (default:
# start the local RabbitMQ, amqp://guest:guest@127.0.0.1:5672); any Conveyor setting
# (KAFKA_MAX_BATCH_SIZE, CONVEYOR_POOL_MAX_BATCH, CONVEYOR_POOL_SIZE, …) applies to the run;
# BENCH_NODE_OPTIONS adds node flags, e.g. "--cpu-prof --cpu-prof-dir=bench/results/prof".
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$CONVEYOR_ROOT"

usage() {
  printf 'usage: bash bench/run.sh throughput|cpu|memory|io|latency|rabbitmq|all [options]   (npm run bench -- <name> [options])\n' >&2
  exit 64
}

[ $# -ge 1 ] || usage
name="$1"
shift
case "$name" in
  throughput | cpu | memory | io | latency | rabbitmq) benches=("$name") ;;
  all) benches=(throughput cpu memory io latency rabbitmq) ;;
  -h | --help) usage ;;
  *) printf 'unknown benchmark: %s\n' "$name" >&2; usage ;;
esac

use_project_node
node_is_recent || die "Node $CONVEYOR_NODE_MIN or newer is needed (run npm run setup)"
[ -d node_modules ] || die "dependencies are missing: run npm run setup (or npm test) first"

say "building dist/"
npx --no-install tsc -p tsconfig.build.json >&2

if [ -z "${KAFKA_BROKERS:-}" ]; then
  bash scripts/brokers.sh start kafka >&2
  export KAFKA_BROKERS=127.0.0.1:9092
fi
if [ -z "${AMQP_URL:-}" ] && [[ " ${benches[*]} " == *" memory "* || " ${benches[*]} " == *" rabbitmq "* ]]; then
  bash scripts/brokers.sh start rabbitmq >&2
  export AMQP_URL=amqp://guest:guest@127.0.0.1:5672
fi

# shellcheck disable=SC2086  # BENCH_NODE_OPTIONS is a list of flags
for bench in "${benches[@]}"; do
  node ${BENCH_NODE_OPTIONS:-} "bench/$bench.ts" "$@"
done
