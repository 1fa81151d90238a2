#!/usr/bin/env bash
# Local brokers for the demo and the tests, with no Docker engine:
#   Kafka    - a single-node Apache Kafka 4.x in KRaft mode from Apache's jars (Maven Central), 127.0.0.1:9092,
#              plus a SASL_PLAINTEXT listener on 127.0.0.1:9094 (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; user conveyor)
#   RabbitMQ - Debian's rabbitmq-server, 127.0.0.1:5672 (user guest/guest, loopback only)
# Usage: brokers.sh start|stop|status [kafka|rabbitmq]
# start is idempotent: a broker that already answers is left alone. It returns once both really serve requests.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${CONVEYOR_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${CONVEYOR_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_SASL_PORT="${CONVEYOR_KAFKA_SASL_PORT:-9094}"
# The SASL listener's one user, for the security tests (test/support/sasl-listener.ts holds the same pair).
# A throwaway secret of a loopback-only test broker, not a credential of anything real.
KAFKA_SASL_USER=conveyor
KAFKA_SASL_PASSWORD=conveyor-local-sasl-3f9d1c7a
# CONVEYOR_KAFKA_HOME: a second, throwaway broker (other ports, its own data) for tests that format or kill one
KAFKA_HOME="${CONVEYOR_KAFKA_HOME:-$CONVEYOR_LOCAL/kafka}"
KAFKA_POM="$CONVEYOR_ROOT/scripts/kafka/pom.xml"
KAFKA_PID_FILE="$KAFKA_HOME/kafka.pid"
KAFKA_READY_SECONDS="${CONVEYOR_KAFKA_READY_SECONDS:-120}"
RABBITMQ_PORT=5672
RABBITMQ_READY_SECONDS="${CONVEYOR_RABBITMQ_READY_SECONDS:-90}"

# ---------------------------------------------------------------- Kafka

KAFKA_JAVA=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.properties" -Dkafka.logs.dir="$KAFKA_HOME/logs"
  -cp "$KAFKA_HOME/libs/*")
# Admin tools: a small heap, errors only on the console.
KAFKA_TOOL_JAVA=(java -Xmx256m -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2-tools.properties" -cp "$KAFKA_HOME/libs/*")

kafka_pid() {
  local pid
  [ -f "$KAFKA_PID_FILE" ] || return 1
  pid="$(cat "$KAFKA_PID_FILE")"
  kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# A metadata request (list topics) answered by the broker: the test of "really ready".
kafka_answers_metadata() {
  timeout 30 "${KAFKA_TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list \
    --command-config <(printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n') >/dev/null 2>&1
}

# The same request through the SASL listener, authenticated with SCRAM-SHA-512 as the test user.
kafka_answers_sasl() {
  timeout 30 "${KAFKA_TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_SASL_PORT" --list \
    --command-config <(kafka_sasl_client_properties) >/dev/null 2>&1
}

kafka_sasl_client_properties() {
  printf '%s\n' 'request.timeout.ms=5000' 'default.api.timeout.ms=10000' \
    'security.protocol=SASL_PLAINTEXT' 'sasl.mechanism=SCRAM-SHA-512' \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$KAFKA_SASL_USER\" password=\"$KAFKA_SASL_PASSWORD\";"
}

# SCRAM credentials live in the cluster metadata, not in server.properties: (re)set them, for both mechanisms, for the
# test user through the plaintext listener. Idempotent, and it also serves a data directory formatted before
# the SASL listener existed.
# One mechanism per request: the broker refuses to alter one user's credentials twice in a request.
kafka_ensure_scram_user() {
  local mechanism
  : >"$KAFKA_HOME/logs/scram-user.log"
  for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
    timeout 60 "${KAFKA_TOOL_JAVA[@]}" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
      --alter --entity-type users --entity-name "$KAFKA_SASL_USER" --add-config "$mechanism=[password=$KAFKA_SASL_PASSWORD]" \
      >>"$KAFKA_HOME/logs/scram-user.log" 2>&1 || return 1
  done
}

kafka_ensure_java() {
  command -v java >/dev/null 2>&1 \
    || die "Java is not installed: Kafka needs Java 17 or newer (Debian: apt-get install -y openjdk-17-jre-headless)"
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
  [ "${major%%.*}" -ge 17 ] 2>/dev/null || die "Java $major found, Kafka 4 needs Java 17 or newer"
}

# Resolve Apache's jars once; the pom's hash decides whether they are current.
kafka_ensure_jars() {
  local stamp="$KAFKA_HOME/libs/.pom-sha" want
  want="$(sha256sum "$KAFKA_POM" | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is not installed: it fetches Kafka's jars (Debian: apt-get install -y maven)"
  say "resolving Apache Kafka jars from Maven Central (scripts/kafka/pom.xml)"
  rm -rf "$KAFKA_HOME/libs"
  mkdir -p "$KAFKA_HOME/libs"
  (cd "$(dirname "$KAFKA_POM")" && mvn -B -q dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_HOME/libs") >"$KAFKA_HOME/mvn.log" 2>&1 \
    || { tail -n 20 "$KAFKA_HOME/mvn.log" >&2; die "Maven could not resolve Kafka's jars (log: .local/kafka/mvn.log)"; }
  printf '%s\n' "$want" >"$stamp"
}

kafka_write_config() {
  mkdir -p "$KAFKA_HOME/data" "$KAFKA_HOME/logs"
  cat >"$KAFKA_HOME/server.properties" <<EOF
# Generated by scripts/brokers.sh: single-node KRaft broker+controller, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
# SASL for the security tests: PLAIN checks the static user below; SCRAM checks the credentials that
# brokers.sh stores in the cluster metadata (kafka_ensure_scram_user). No authorizer: an authenticated user may do anything.
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$KAFKA_HOME/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# tests form groups all the time: do not wait 3 s for more members
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
EOF
  cat >"$KAFKA_HOME/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $KAFKA_HOME/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
EOF
  cat >"$KAFKA_HOME/log4j2-tools.properties" <<EOF
status = error
rootLogger.level = error
EOF
}

kafka_start() {
  local pid
  if pid="$(kafka_pid)"; then
    say "Kafka already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    kafka_has_sasl_listener "$pid" \
      || die "the running Kafka (pid $pid) has no SASL listener on 127.0.0.1:$KAFKA_SASL_PORT: it was started with an older configuration; restart it once: bash scripts/brokers.sh stop kafka && bash scripts/brokers.sh start kafka"
    kafka_wait_ready "$pid"
    return 0
  fi
  kafka_ensure_java
  kafka_ensure_jars
  kafka_write_config
  if port_open "$KAFKA_PORT"; then
    if kafka_answers_metadata; then
      say "a Kafka broker not started by this checkout already answers on 127.0.0.1:$KAFKA_PORT; using it (its SASL listener, if any, is not checked)"
      return 0
    fi
    die "port $KAFKA_PORT is taken by another process that is not a Kafka broker ($(port_owner "$KAFKA_PORT")); free it or set CONVEYOR_KAFKA_PORT"
  fi
  port_open "$KAFKA_CONTROLLER_PORT" \
    && die "port $KAFKA_CONTROLLER_PORT (Kafka controller) is taken ($(port_owner "$KAFKA_CONTROLLER_PORT")); free it or set CONVEYOR_KAFKA_CONTROLLER_PORT"
  port_open "$KAFKA_SASL_PORT" \
    && die "port $KAFKA_SASL_PORT (Kafka SASL listener) is taken ($(port_owner "$KAFKA_SASL_PORT")); free it or set CONVEYOR_KAFKA_SASL_PORT"
  if [ ! -f "$KAFKA_HOME/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$KAFKA_HOME/server.properties" \
      >"$KAFKA_HOME/logs/format.log" 2>&1 \
      || { tail -n 20 "$KAFKA_HOME/logs/format.log" >&2; die "could not format Kafka storage (log: .local/kafka/logs/format.log)"; }
  fi
  say "starting Kafka on 127.0.0.1:$KAFKA_PORT (data: .local/kafka/data, log: .local/kafka/logs/server.log)"
  nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_HOME/server.properties" \
    >"$KAFKA_HOME/logs/server.out" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$KAFKA_PID_FILE"
  kafka_wait_ready "$pid"
}

kafka_wait_ready() {
  local pid="$1" deadline=$((SECONDS + KAFKA_READY_SECONDS))
  while ! port_open "$KAFKA_PORT"; do
    kill -0 "$pid" 2>/dev/null || kafka_died
    [ $SECONDS -lt $deadline ] || die "Kafka did not open port $KAFKA_PORT within ${KAFKA_READY_SECONDS}s (log: .local/kafka/logs/server.log)"
    sleep 0.3
  done
  until kafka_answers_metadata; do
    kill -0 "$pid" 2>/dev/null || kafka_died
    [ $SECONDS -lt $deadline ] || die "Kafka did not answer a metadata request within ${KAFKA_READY_SECONDS}s (log: .local/kafka/logs/server.log)"
    sleep 1
  done
  # Ready includes the SASL listener with its SCRAM user: store the user when a SCRAM login fails.
  until kafka_answers_sasl; do
    kill -0 "$pid" 2>/dev/null || kafka_died
    [ $SECONDS -lt $deadline ] \
      || die "Kafka's SASL listener on 127.0.0.1:$KAFKA_SASL_PORT did not accept user $KAFKA_SASL_USER within ${KAFKA_READY_SECONDS}s (logs: .local/kafka/logs/server.log, scram-user.log)"
    kafka_ensure_scram_user || say "could not store the SCRAM user $KAFKA_SASL_USER yet (log: .local/kafka/logs/scram-user.log); retrying"
    sleep 1
  done
  say "Kafka ready on 127.0.0.1:$KAFKA_PORT (SASL_PLAINTEXT on 127.0.0.1:$KAFKA_SASL_PORT, user $KAFKA_SASL_USER)"
}

# Whether the running broker listens on the SASL port: a broker started before the listener was added does not.
# Listeners open together, so once the plaintext one is open the SASL one follows within moments or never.
kafka_has_sasl_listener() {
  local pid="$1" deadline=$((SECONDS + KAFKA_READY_SECONDS))
  until port_open "$KAFKA_PORT"; do
    kill -0 "$pid" 2>/dev/null || kafka_died
    [ $SECONDS -lt $deadline ] || return 0  # kafka_wait_ready reports a broker that never opens its ports
    sleep 0.3
  done
  deadline=$((SECONDS + 5))
  until port_open "$KAFKA_SASL_PORT"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.3
  done
}

kafka_died() {
  rm -f "$KAFKA_PID_FILE"
  { tail -n 15 "$KAFKA_HOME/logs/server.out"; grep -E 'ERROR|FATAL' "$KAFKA_HOME/logs/server.log" 2>/dev/null | tail -n 10; } >&2 || true
  die "Kafka exited during start-up (logs: .local/kafka/logs/)"
}

kafka_stop() {
  local pid
  if ! pid="$(kafka_pid)"; then
    rm -f "$KAFKA_PID_FILE"
    say "Kafka not running (from this checkout)"
    return 0
  fi
  say "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      say "Kafka did not stop within 60 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.3
  done
  rm -f "$KAFKA_PID_FILE"
}

kafka_status() {
  local pid
  if pid="$(kafka_pid)"; then echo "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  if port_open "$KAFKA_PORT"; then echo "kafka: port $KAFKA_PORT open, not started by this checkout"; return 0; fi
  echo "kafka: stopped"
  return 1
}

# ---------------------------------------------------------------- RabbitMQ

rabbitmq_ensure_installed() {
  command -v rabbitmq-server >/dev/null 2>&1 && return 0
  [ -x /usr/sbin/rabbitmq-server ] && { export PATH="$PATH:/usr/sbin"; return 0; }
  [ "$(id -u)" = 0 ] || die "RabbitMQ is not installed: run 'sudo apt-get install -y rabbitmq-server'"
  say "installing Debian's rabbitmq-server"
  apt_get_install rabbitmq-server
  # The package may have started its own node (or been refused by policy-rc.d); either way we manage it below.
}

rabbitmq_ready() {
  timeout 30 rabbitmqctl -q await_startup >/dev/null 2>&1
}

rabbitmq_start() {
  rabbitmq_ensure_installed
  if port_open "$RABBITMQ_PORT"; then
    if rabbitmq_ready; then
      say "RabbitMQ already running on 127.0.0.1:$RABBITMQ_PORT"
      return 0
    fi
    die "port $RABBITMQ_PORT is taken by a process that is not this machine's RabbitMQ node ($(port_owner "$RABBITMQ_PORT")); free it"
  fi
  say "starting RabbitMQ on 127.0.0.1:$RABBITMQ_PORT (log: /var/log/rabbitmq/)"
  # The Debian wrapper switches to the rabbitmq user; the environment carries the bind address.
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$RABBITMQ_PORT \
    rabbitmq-server -detached >"$CONVEYOR_LOCAL/rabbitmq-start.log" 2>&1 \
    || { cat "$CONVEYOR_LOCAL/rabbitmq-start.log" >&2; die "rabbitmq-server did not start (log: .local/rabbitmq-start.log)"; }
  local deadline=$((SECONDS + RABBITMQ_READY_SECONDS))
  # await_startup needs the node registered first; until then it fails at once, so poll it.
  until rabbitmq_ready && port_open "$RABBITMQ_PORT"; do
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 /var/log/rabbitmq/*.log 2>/dev/null >&2 || true
      die "RabbitMQ did not finish starting within ${RABBITMQ_READY_SECONDS}s (logs: /var/log/rabbitmq/)"
    fi
    sleep 1
  done
  say "RabbitMQ ready on 127.0.0.1:$RABBITMQ_PORT"
}

rabbitmq_stop() {
  command -v rabbitmqctl >/dev/null 2>&1 || { say "RabbitMQ not installed"; return 0; }
  if ! port_open "$RABBITMQ_PORT"; then say "RabbitMQ not running"; return 0; fi
  say "stopping RabbitMQ"
  timeout 60 rabbitmqctl -q shutdown >/dev/null 2>&1 || die "rabbitmqctl shutdown failed (logs: /var/log/rabbitmq/)"
}

rabbitmq_status() {
  if port_open "$RABBITMQ_PORT" && rabbitmq_ready; then echo "rabbitmq: running on 127.0.0.1:$RABBITMQ_PORT"; return 0; fi
  echo "rabbitmq: stopped"
  return 1
}

# ---------------------------------------------------------------- main

port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 pid \2/p' | head -n 1
}

main() {
  local cmd="${1:-start}" which="${2:-all}" started=$SECONDS
  case "$which" in all | kafka | rabbitmq) ;; *) die "unknown broker '$which' (kafka, rabbitmq)";; esac
  case "$cmd" in
    start)
      mkdir -p "$CONVEYOR_LOCAL"
      [ "$which" = rabbitmq ] || kafka_start
      [ "$which" = kafka ] || rabbitmq_start
      say "brokers ready in $((SECONDS - started)) s: KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT KAFKA_SASL_BROKERS=127.0.0.1:$KAFKA_SASL_PORT AMQP_URL=amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT"
      ;;
    stop)
      [ "$which" = rabbitmq ] || kafka_stop
      [ "$which" = kafka ] || rabbitmq_stop
      ;;
    status)
      local rc=0
      [ "$which" = rabbitmq ] || kafka_status || rc=1
      [ "$which" = kafka ] || rabbitmq_status || rc=1
      return $rc
      ;;
    *) die "usage: brokers.sh start|stop|status [kafka|rabbitmq]" ;;
  esac
}

main "$@"
