# Shared shell helpers for Conveyor's scripts. Source it; it defines functions and paths only.
# shellcheck shell=bash disable=SC2034  # variables here are used by the scripts that source it

CONVEYOR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONVEYOR_TOOLCHAIN="$CONVEYOR_ROOT/.toolchain"
CONVEYOR_LOCAL="$CONVEYOR_ROOT/.local"

# Node the project runs on: the machine's own when new enough, else Node 24 from the npm registry.
CONVEYOR_NODE_MIN="22.18.0"
CONVEYOR_NODE_PACKAGE="node@24"

say() { printf '[conveyor] %s\n' "$*" >&2; }
die() { printf '[conveyor] error: %s\n' "$*" >&2; exit 1; }

# version_ge A B: true when dotted version A >= B.
version_ge() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

# The folder of the Node binary package setup.sh installed (bin/node and include/node), if any.
# The npm package `node` pulls the official build in as `node-<os>-<arch>` beside itself.
toolchain_node_dir() {
  local d
  for d in "$CONVEYOR_TOOLCHAIN"/node_modules/node/node_modules/node-*-* "$CONVEYOR_TOOLCHAIN"/node_modules/node-*-*; do
    if [ -x "$d/bin/node" ] && [ -d "$d/include/node" ]; then printf '%s\n' "$d"; return 0; fi
  done
  return 1
}

# Put the project's Node first on PATH when setup.sh installed one.
use_project_node() {
  local dir
  if dir="$(toolchain_node_dir)"; then
    export PATH="$dir/bin:$PATH"
  fi
}

node_is_recent() {
  command -v node >/dev/null 2>&1 || return 1
  local v
  v="$(node -p 'process.versions.node' 2>/dev/null)" || return 1
  version_ge "$v" "$CONVEYOR_NODE_MIN"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# apt_get_install PKG...: non-interactive install (CI has no standard input), package lists refreshed first.
apt_get_install() {
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$CONVEYOR_LOCAL"
  local log="$CONVEYOR_LOCAL/apt.log"
  apt-get update >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get update failed (log: .local/apt.log)"; }
  apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; die "apt-get install $* failed (log: .local/apt.log)"; }
}
