#!/usr/bin/env bash
# Create .venv with Python >= 3.12 and install the package with its pinned dependencies.
# A second run reuses the environment unless pyproject.toml or the constraints changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP="$VENV/.installed"

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate
    if [ -n "${PYTHON:-}" ]; then
        if python_ok "$PYTHON"; then echo "$PYTHON"; return 0; fi
        echo "bootstrap: PYTHON=$PYTHON is not a Python >= 3.12 interpreter." >&2
        return 1
    fi
    for candidate in python3.13 python3.12 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$(command -v "$candidate")"; then
            command -v "$candidate"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        local root
        root=$(pyenv root)
        for candidate in $(ls -d "$root"/versions/3.* 2>/dev/null | sort -rV); do
            if [ -x "$candidate/bin/python3" ] && python_ok "$candidate/bin/python3"; then
                echo "$candidate/bin/python3"; return 0
            fi
        done
    fi
    return 1
}

if [ -x "$VENV/bin/python" ] && ! python_ok "$VENV/bin/python"; then
    echo "bootstrap: $VENV uses a Python older than 3.12; recreating it." >&2
    rm -rf "$VENV"
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! PY=$(find_python); then
        cat >&2 <<'MSG'
bootstrap: no Python >= 3.12 was found (looked at $PYTHON, python3.13, python3.12, python3,
python on PATH, and $(pyenv root)/versions/3.*). lsst-images and lsst-pipe-base need 3.12 or newer.
Install one, for example:
    pyenv install 3.12      # then re-run this command
    apt-get install python3.12 python3.12-venv
or point the bootstrap at an interpreter:  PYTHON=/path/to/python3.12 make test
MSG
        exit 1
    fi
    echo "bootstrap: creating $VENV with $PY ($("$PY" --version 2>&1))"
    "$PY" -m venv "$VENV"
fi

# System packages the tests need (requirements/debian-packages.txt): install the missing ones.
missing=()
while read -r pkg; do
    case "$pkg" in ''|'#'*) continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < requirements/debian-packages.txt
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing Debian packages: ${missing[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "bootstrap: the tests need these Debian packages: ${missing[*]}" >&2
        echo "bootstrap: install them (apt-get install ${missing[*]}) and re-run." >&2
        exit 1
    fi
fi

want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi
echo "bootstrap: installing the package and its pinned dependencies into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c requirements/constraints.txt -e ".[test]"
echo "$want" > "$STAMP"
