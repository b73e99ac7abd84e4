"""Run a Python snippet in a fresh process where this repository's packages cannot be imported.

The Hub round-trip tests use it: a saved folder must load through ``trust_remote_code`` with only site-packages
(torch, transformers, ...) importable, as on a user's machine without ``avcpnet`` installed.
"""

import os
import subprocess
import sys
import textwrap

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_PACKAGES = ("modeling_avcpnet", "datasets_emotions", "train_hf", "hub_cards")

# Drops the repository from sys.path and the editable install's finder from sys.meta_path, then checks that none of
# our packages can be found any more.
_HIDE_PACKAGES = f"""
import importlib.util as _util, os as _os, sys as _sys
_repo = _os.path.realpath({REPO_ROOT!r})
_sys.path[:] = [p for p in _sys.path if p not in ("", ".") and _os.path.realpath(p) != _repo]
_sys.meta_path[:] = [f for f in _sys.meta_path if "editable" not in (getattr(f, "__module__", "") or "")]
_sys.path_importer_cache.clear()
for _name in {OUR_PACKAGES!r}:
    assert _util.find_spec(_name) is None, _name + " is still importable"
"""


def run_without_package(script: str, cwd, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``script`` (dedented) with ``python -c`` in ``cwd``, our packages hidden, HF_HUB_OFFLINE=1 and ``env``
    added to the environment (PYTHONPATH removed). Returns the completed process (stdout/stderr as text)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(HF_HUB_OFFLINE="1", **(env or {}))
    code = _HIDE_PACKAGES + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)
