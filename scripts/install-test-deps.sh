#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine (Debian 12, root,
# Python 3.11, Node.js 20 + npm). Idempotent: steps already done are skipped.
#
#   redis-server   Debian package, only when redis-server is not on PATH
#   Azurite        npm ci in tests/servers/node (pinned by its package-lock.json)
#   Python deps    pip install -e ".[all,test]" (moto[server], SDKs, emulators, pytest...)
#
# Usage: scripts/install-test-deps.sh [--skip-apt] [--skip-npm] [--skip-pip]
# Env:   PYTHON=python3.11 to choose the interpreter (default: python, else python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

skip_apt=0 skip_npm=0 skip_pip=0
for arg in "$@"; do
    case "$arg" in
        --skip-apt) skip_apt=1 ;;
        --skip-npm) skip_npm=1 ;;
        --skip-pip) skip_pip=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "install-test-deps: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

say() { printf '[install-test-deps] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-test-deps: need root (or sudo) for: $*" >&2
        return 1
    fi
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- 1. redis-server (Debian) -------------------------------------------------------
if [ "$skip_apt" -eq 1 ]; then
    say "redis-server: skipped (--skip-apt)"
elif command -v redis-server >/dev/null 2>&1; then
    say "redis-server: present ($(redis-server --version | awk '{print $3}'))"
else
    apt_install redis-server
    say "redis-server: installed ($(redis-server --version | awk '{print $3}'))"
fi

# --- 2. Azurite (npm) ---------------------------------------------------------------
NODE_DIR="tests/servers/node"
STAMP="$NODE_DIR/node_modules/.bd-install-stamp"
AZURITE_MAIN="$NODE_DIR/node_modules/azurite/dist/src/blob/main.js"
if [ "$skip_npm" -eq 1 ]; then
    say "azurite: skipped (--skip-npm)"
else
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        if [ "$skip_apt" -eq 1 ]; then
            echo "install-test-deps: node/npm missing and --skip-apt given" >&2
            exit 1
        fi
        apt_install nodejs npm
    fi
    # The stamp records what node_modules was installed from; a match means nothing to do.
    want="$(cat "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json" | sha256sum | cut -d' ' -f1) node-$(node --version)"
    if [ -f "$STAMP" ] && [ -f "$AZURITE_MAIN" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        say "azurite: node_modules up to date ($(node -p "require('./$NODE_DIR/node_modules/azurite/package.json').version"))"
    else
        say "azurite: npm ci in $NODE_DIR (node $(node --version), npm $(npm --version))"
        npm ci --no-audit --no-fund --loglevel=error --prefix "$NODE_DIR"
        test -f "$AZURITE_MAIN" || { echo "install-test-deps: $AZURITE_MAIN missing after npm ci" >&2; exit 1; }
        printf '%s\n' "$want" >"$STAMP"
        say "azurite: installed ($(node -p "require('./$NODE_DIR/node_modules/azurite/package.json').version"))"
    fi
fi

# --- 3. Python package with its test extras ----------------------------------------
if [ "$skip_pip" -eq 1 ]; then
    say "pip: skipped (--skip-pip)"
else
    if [ -z "${PYTHON:-}" ]; then
        if command -v python >/dev/null 2>&1; then PYTHON=python; else PYTHON=python3; fi
    fi
    say "pip: $PYTHON -m pip install -e .[all,test] ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m pip install --root-user-action=ignore --disable-pip-version-check --progress-bar off -q -e ".[all,test]"
    say "pip: done"
fi

say "all test dependencies installed"
