#!/usr/bin/env bash
# Run on a machine with the registries, before `scripts/gpu_check.sh` on the GPU machine: the wheels its image lacks
# into .whl/ (carry it: `run ... carry=[".whl"]`): ../shared/gpu/wheels.sh's set (datasets, av, evaluate and their
# small dependencies, at .venv's versions) plus pytest-xdist, execnet and pytest-timeout for the parallel suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ../shared/gpu/wheels.sh
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl \
    pytest-xdist execnet pytest-timeout
ls -1 .whl
