#!/usr/bin/env bash
# Create .venv if missing and install the project (editable) with its test extra, every dependency at the version
# requirements.lock pins (pip constraints; regenerate the lock with scripts/lock.sh).
# Idempotent: a stamp keyed on pyproject.toml and requirements.lock skips the install when neither changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.avcpnet-install-$(cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q -c requirements.lock pip
    .venv/bin/python -m pip install -q -c requirements.lock -e ".[test]"
    rm -f .venv/.avcpnet-install-* && touch "$stamp"
fi
