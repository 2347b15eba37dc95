#!/usr/bin/env bash
# Install the deployment checkers that do not belong in the project venv.
#
# checkov pins a large dependency set of its own and bundles a forked HCL
# parser that clashes with python-hcl2, so it lives in a separate venv,
# .fraudflow/checkov by default. The tests in tests/unit/deploy look for it there.
# Re-running is cheap: an existing install at the pinned version is kept.
#
# Usage: deploy/tools.sh [VENV_DIR]
set -euo pipefail

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${repo_root}/.fraudflow/checkov}"
uv_bin="$(command -v uv || true)"
# bootstrap.sh installs uv here when it is not on PATH.
if [[ -z "${uv_bin}" && -x "${repo_root}/.fraudflow/bootstrap/bin/uv" ]]; then
    uv_bin="${repo_root}/.fraudflow/bootstrap/bin/uv"
fi

installed_version() {
    "${venv}/bin/checkov" --version 2>/dev/null || true
}

if [[ "$(installed_version)" == "${CHECKOV_VERSION}" ]]; then
    echo "checkov ${CHECKOV_VERSION} already in ${venv}"
    exit 0
fi

mkdir -p "$(dirname "${venv}")"
if [[ -n "${uv_bin}" ]]; then
    "${uv_bin}" venv --quiet --python "${repo_root}/.venv/bin/python" "${venv}"
    "${uv_bin}" pip install --quiet --python "${venv}/bin/python" \
        "checkov==${CHECKOV_VERSION}"
else
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet "checkov==${CHECKOV_VERSION}"
fi
echo "installed checkov $(installed_version) in ${venv}"
