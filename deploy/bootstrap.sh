#!/usr/bin/env bash
# Create or refresh .venv with the locked dependencies; fast when nothing changed.
#
# Needs only Python 3.11 or 3.12 (PYTHON overrides which one). uv, the package
# manager that installs from uv.lock, is taken from PATH or installed from PyPI
# into .fraudflow/bootstrap the first time.
set -euo pipefail

cd "$(dirname "$0")/.."
UV_VERSION="0.13.8"
STATE=".fraudflow"
STAMP="$STATE/venv.stamp"

find_python() {
  if [[ -n "${PYTHON:-}" ]]; then
    echo "$PYTHON"
    return
  fi
  for candidate in python3.12 python3.11 python3; do
    # Print the real interpreter path (not a version-manager shim), so uv
    # recognises the interpreter an existing .venv was made with.
    if "$candidate" -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12)
print(sys.executable)' 2>/dev/null; then
      return
    fi
  done
  echo "fraudflow needs Python 3.11 or 3.12 (bytewax 0.21.1 has wheels up to 3.12)" >&2
  exit 1
}

find_uv() {
  if command -v uv >/dev/null 2>&1; then
    command -v uv
    return
  fi
  local tools="$STATE/bootstrap"
  if [[ ! -x "$tools/bin/uv" ]]; then
    echo "installing uv $UV_VERSION into $tools" >&2
    "$1" -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet "uv==$UV_VERSION"
  fi
  echo "$tools/bin/uv"
}

up_to_date() {
  [[ -f "$STAMP" && -x .venv/bin/python && "$STAMP" -nt uv.lock && "$STAMP" -nt pyproject.toml ]]
}

main() {
  mkdir -p "$STATE"
  if up_to_date; then
    return
  fi
  local python uv
  python="$(find_python)"
  uv="$(find_uv "$python")"
  UV_PYTHON_DOWNLOADS=never "$uv" sync --frozen --all-extras --python "$python"
  touch "$STAMP"
}

main "$@"
