#!/usr/bin/env bash
# Sets up everything Conveyor needs to build and test on this machine, and nothing twice:
#   1. a Node >= 22.18 (the machine's own, else Node 24 from the npm registry into .toolchain/);
#   2. the Debian packages the Kafka client's native build links against;
#   3. npm dependencies, with @confluentinc/kafka-javascript built from source (zstd included).
# A second run checks a stamp and returns in seconds.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVEYOR_ROOT"

BUILD_PACKAGES=(libssl-dev zlib1g-dev libzstd-dev libsasl2-dev build-essential python3)

ensure_node() {
  use_project_node
  if node_is_recent; then
    return 0
  fi
  say "Node $(node -v 2>/dev/null || echo 'not found') is older than $CONVEYOR_NODE_MIN: installing $CONVEYOR_NODE_PACKAGE from the npm registry into .toolchain/"
  command -v npm >/dev/null 2>&1 || die "npm is not installed; install Node.js >= 20 with npm first"
  mkdir -p "$CONVEYOR_TOOLCHAIN"
  # The `node` package ships the official binary and its include/node headers (needed by native builds).
  npm install --prefix "$CONVEYOR_TOOLCHAIN" --no-save --no-package-lock --no-audit --no-fund \
    "$CONVEYOR_NODE_PACKAGE" >"$CONVEYOR_TOOLCHAIN/install.log" 2>&1 \
    || { tail -n 20 "$CONVEYOR_TOOLCHAIN/install.log" >&2; die "could not install $CONVEYOR_NODE_PACKAGE (log: .toolchain/install.log)"; }
  use_project_node
  node_is_recent || die "installed $CONVEYOR_NODE_PACKAGE but 'node' still reports $(node -v); see .toolchain/install.log"
  say "using Node $(node -v) from .toolchain/"
}

ensure_debian_packages() {
  local missing=() p
  for p in "${BUILD_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing build packages (${missing[*]}) and no apt-get to install them"
  [ "$(id -u)" = 0 ] || die "missing build packages (${missing[*]}): run 'sudo apt-get install ${missing[*]}'"
  say "installing Debian packages: ${missing[*]}"
  apt_get_install "${missing[@]}"
}

# The stamp names what the installed node_modules was built for; any change means reinstall.
deps_stamp() {
  printf '%s %s %s\n' "$(node -p 'process.versions.node')" \
    "$(sha256sum package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)" "$(uname -m)"
}

ensure_npm_dependencies() {
  local stamp_file="node_modules/.conveyor-setup"
  local want
  want="$(deps_stamp)"
  if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want" ] \
      && [ -f node_modules/@confluentinc/kafka-javascript/build/Release/confluent-kafka-javascript.node ]; then
    return 0
  fi
  say "installing npm dependencies (builds the Kafka client from source; about a minute)"
  local cmd=(npm ci)
  [ -f package-lock.json ] || cmd=(npm install)
  # dynamic: librdkafka is built from the bundled source and linked against Debian's OpenSSL, zstd, zlib, SASL.
  # The prebuilt-binary download that precedes it cannot reach its host here and falls back to this build.
  # Native builds compile against the headers of the Node that runs them (the toolchain's, when installed).
  local nodedir build_env=(CKJS_LINKING=dynamic)
  if nodedir="$(toolchain_node_dir)"; then build_env+=("npm_config_nodedir=$nodedir"); fi
  env "${build_env[@]}" "${cmd[@]}" --no-audit --no-fund >"$CONVEYOR_LOCAL/npm-install.log" 2>&1 \
    || { tail -n 30 "$CONVEYOR_LOCAL/npm-install.log" >&2; die "npm install failed (log: .local/npm-install.log)"; }
  node -e "require('@confluentinc/kafka-javascript')" 2>/dev/null \
    || die "the Kafka client did not build (log: .local/npm-install.log)"
  printf '%s\n' "$(deps_stamp)" >"$stamp_file"
}

main() {
  local started=$SECONDS
  mkdir -p "$CONVEYOR_LOCAL"
  ensure_node
  ensure_debian_packages
  ensure_npm_dependencies
  say "setup ready in $((SECONDS - started)) s (node $(node -v))"
}

main "$@"
