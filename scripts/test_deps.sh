#!/usr/bin/env bash
# Test the declared dependency ranges of pyproject.toml at both ends, away from the locked .venv:
#   bash scripts/test_deps.sh lowest [PYTEST ARGS]   every direct dependency at the lowest version it declares
#                                                    (uv's --resolution lowest-direct; what they need: newest allowed)
#   bash scripts/test_deps.sh latest [PYTEST ARGS]   everything at the newest release the ranges allow today
# Each builds (or brings up to date) its own venv, $AVCPNET_VENVS/lowest or /latest (default .venvs/, ignored by
# git), installed exactly as resolved (uv pip sync) plus the project (editable), prints the key versions, then runs
# `python -m pytest -q PYTEST ARGS` there (e.g. `-m smoke` for the quick subset) and exits with pytest's status.
# The resolution is kept in the venv (resolved.txt). uv comes from PyPI, at the version requirements.lock pins.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
    lowest) resolution=(--resolution lowest-direct) ;;
    latest) resolution=() ;;
    *) echo "usage: bash scripts/test_deps.sh lowest|latest [pytest arguments]" >&2; exit 2 ;;
esac
shift
source scripts/_uv.sh
venv="$AVCPNET_VENVS/$mode"
[ -x "$venv/bin/python" ] || "$UV" venv -q --python "$PYTHON" "$venv"
"$UV" pip compile -q pyproject.toml --extra test --python "$venv/bin/python" --upgrade "${resolution[@]}" \
    --no-header --no-annotate -o "$venv/resolved.txt" >/dev/null
"$UV" pip sync -q --python "$venv/bin/python" "$venv/resolved.txt"
# pip too, at the locked version (tests build the wheel with `python -m pip`; it is what a user has), and the project
"$UV" pip install -q --python "$venv/bin/python" "$(grep -E '^pip==' requirements.lock | cut -d' ' -f1)"
"$UV" pip install -q --python "$venv/bin/python" --no-deps -e .
"$venv/bin/python" - "$mode" <<'PY'
import datetime, importlib.metadata as metadata, platform, sys
names = ["transformers", "huggingface-hub", "datasets", "accelerate", "torch", "numpy", "av", "tokenizers",
         "safetensors", "evaluate", "pyarrow"]
versions = ", ".join(f"{name} {metadata.version(name)}" for name in names)
print(f"test_deps {sys.argv[1]} ({datetime.date.today()}, Python {platform.python_version()}): {versions}")
PY
exec "$venv/bin/python" -m pytest -q "$@"
