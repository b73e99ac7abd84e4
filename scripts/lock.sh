#!/usr/bin/env bash
# Regenerate requirements.lock from pyproject.toml: the newest releases that the declared ranges allow today, for
# the project's dependencies with the test extra, plus pip (which scripts/setup.sh installs first) and uv (which
# this script and scripts/test_deps.sh use). One universal file: for every Python the project supports
# (requires-python) and every platform, with environment markers where they differ.
# scripts/setup.sh installs with it as pip constraints (-c), so the README's commands give the same versions any day.
# Then run the suite on the new lock (bash scripts/setup.sh && .venv/bin/python -m pytest -q) and commit both files.
# Extra arguments go to `uv pip compile` (e.g. --upgrade-package transformers together with --no-upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_uv.sh
upgrade=--upgrade
for arg in "$@"; do [ "$arg" = --no-upgrade ] && upgrade=; done
args=()
for arg in "$@"; do [ "$arg" = --no-upgrade ] || args+=("$arg"); done
printf 'pip\nuv\n' | "$UV" pip compile pyproject.toml - --extra test --universal \
    --python-version "$(sed -n 's/^requires-python = ">=\([0-9.]*\)".*/\1/p' pyproject.toml)" \
    --no-annotate --custom-compile-command "bash scripts/lock.sh" $upgrade "${args[@]}" -o requirements.lock >/dev/null
echo "wrote requirements.lock ($(grep -c '==' requirements.lock) pins)"
