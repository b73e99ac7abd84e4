# Sourced by scripts/lock.sh and scripts/test_deps.sh: puts uv (the version requirements.lock pins) in $UV.
# uv lives in its own venv under $AVCPNET_VENVS (default .venvs/, ignored by git), never in the project's .venv.
AVCPNET_VENVS=${AVCPNET_VENVS:-$PWD/.venvs}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
export UV_PYTHON_DOWNLOADS=never  # uv uses the Pythons that are installed; it downloads none
UV="$AVCPNET_VENVS/tools/bin/uv"
uv_pin=$(grep -E '^uv==' requirements.lock 2>/dev/null | head -1 | cut -d' ' -f1 || true)
if [ ! -x "$UV" ] || { [ -n "$uv_pin" ] && [ "$("$UV" --version | cut -d' ' -f2)" != "${uv_pin#uv==}" ]; }; then
    [ -x "$AVCPNET_VENVS/tools/bin/python" ] || "$PYTHON" -m venv "$AVCPNET_VENVS/tools"
    "$AVCPNET_VENVS/tools/bin/python" -m pip install -q "${uv_pin:-uv}"
fi
