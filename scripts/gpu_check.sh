#!/usr/bin/env bash
# The GPU machine's check, in one call (see ../shared/gpu/README.md for the machine): install the carried wheels
# (.whl/, made here by scripts/gpu_wheels.sh) into the image's Python with this
# checkout on its path, run the suite on CUDA, then benchmarks/bench_gpu.py on the paper config. Logs go to
# ${OUT:-gpu_out}/ as they are written, so a command cut at its time limit keeps what it measured.
#   device run: bash scripts/gpu_check.sh          (carry: .whl)
# The demo's browser test and the librosa MFCC comparison are left out there (no Chromium, no librosa in the image;
# neither touches the GPU). BUDGET (seconds, default 540) bounds the whole call.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
T0=$(date +%s); BUDGET=${BUDGET:-540}
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=$(command -v python3); PREFIX=$("$PY" -c "import sys; print(sys.prefix)")
if [ ! -f /tmp/.avcpnet-env ]; then  # the image's Python is a venv: install into it, as a user would
    "$PY" -m pip install -q --no-index --no-deps --no-compile .whl/*.whl
    echo "$PWD" > "$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/avcpnet-checkout.pth"
    printf '#!%s\nimport sys\nfrom modeling_avcpnet.apps.cli import main\nsys.exit(main())\n' "$PY" > "$PREFIX/bin/avcpnet"
    chmod +x "$PREFIX/bin/avcpnet"; touch /tmp/.avcpnet-env
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; date -u
  "$PY" -c "import torch, transformers, huggingface_hub, datasets, av, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__, '| hub', huggingface_hub.__version__, '| datasets', datasets.__version__, '| av', av.__version__, '| accelerate', accelerate.__version__)"
} > "$OUT/env.txt" 2>&1; cat "$OUT/env.txt"
timeout $(( $(left) / 2 )) "$PY" -m pytest -q -n 14 --dist loadfile --timeout 200 -p no:cacheprovider \
    --ignore tests/test_demo.py --ignore tests/test_feature_extraction_mfcc.py -rfE --tb=short > "$OUT/pytest.txt" 2>&1
echo "pytest rc $? after $(( $(date +%s) - T0 )) s" >> "$OUT/pytest.txt"; tail -15 "$OUT/pytest.txt"
timeout $(( $(left) - 10 )) "$PY" benchmarks/bench_gpu.py --config paper --batch 32 --workers 15 \
    --parts model,compile,memory,data,e2e,compile_train_regional --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1
echo "bench rc $? after $(( $(date +%s) - T0 )) s" >> "$OUT/bench.txt"; grep -v "Warning\|warn\|^W1" "$OUT/bench.txt" | tail -40
