# Sourced by scripts/run and scripts/test: creates or refreshes .venv, quickly when nothing
# changed. Usage: hearth_venv [EXTRAS]   (EXTRAS such as "dev"; empty for the runtime only)
set -euo pipefail

HEARTH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HEARTH_VENV="$HEARTH_ROOT/.venv"

_hearth_python() {
    local c
    for c in "${PYTHON:-}" python3.14 python3.13 python3.12 python3.11 python3; do
        [ -n "$c" ] || continue
        if command -v "$c" >/dev/null 2>&1 &&
            "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    echo "Hearth needs Python 3.11 or newer on PATH (or in \$PYTHON)." >&2
    return 1
}

hearth_venv() {
    local extras="${1:-}" py want have spec
    py="$(_hearth_python)"
    if [ ! -x "$HEARTH_VENV/bin/python" ]; then
        echo "hearth: creating $HEARTH_VENV" >&2
        if ! "$py" -m venv "$HEARTH_VENV" >/dev/null 2>&1; then
            # Debian/Ubuntu without python3-venv have no ensurepip: make the venv bare and
            # bring pip in from PyPI ourselves.
            rm -rf "$HEARTH_VENV"
            "$py" -m venv --without-pip "$HEARTH_VENV"
            "$HEARTH_VENV/bin/python" "$HEARTH_ROOT/scripts/bootstrap_pip.py"
        fi
    fi
    want="$(cat "$HEARTH_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    have="$(cat "$HEARTH_VENV/.hearth-installed" 2>/dev/null || true)"
    # A venv with the dev extras also serves the runtime.
    if [ "$have" = "$want:$extras" ] || { [ -z "$extras" ] && [ "$have" = "$want:dev" ]; }; then
        return 0
    fi
    echo "hearth: installing dependencies into $HEARTH_VENV" >&2
    spec="$HEARTH_ROOT"
    [ -z "$extras" ] || spec="$HEARTH_ROOT[$extras]"
    "$HEARTH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$HEARTH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$want:$extras" >"$HEARTH_VENV/.hearth-installed"
}
