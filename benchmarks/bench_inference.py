"""Benchmark: AV-CPNet inference, float32 eager vs the fast modes of `modeling_avcpnet.inference`, in one run.

Speed: for each config (`paper` = AVCPNetConfig(), random weights; `tiny`) and batch size, the modes run in
interleaved rounds (fp32, bf16, int8, fp32, ...) after one warm-up call each, so that the load of a shared machine
hits them alike; the table gives the median seconds per batch, clips/s and the ratio to fp32 eager of the same run.

- Peak memory: the rise of the process's peak resident set size (VmHWM, reset through /proc/self/clear_refs) during
  one call over the resident size before it; the script re-executes itself with `MALLOC_MMAP_THRESHOLD_=65536` so
  that freed tensor buffers return to the OS and the RSS follows live tensors.
- Achieved GFLOP/s: the FLOPs of one clip counted by `torch.utils.flop_counter.FlopCounterMode` on the float32 model
  with eager attention (the counter has no formula for the fused CPU attention kernel) times clips/s. The same
  nominal FLOPs are credited to every mode.
- Machine peak: measured in the same run as the GFLOP/s of a large matrix product (float32 and bfloat16, 2048^3,
  same thread count), the practical peak of dense math here; the share is achieved / that peak of the mode's dtype
  (int8 mode against the float32 peak).

Accuracy guard (`--guard CHECKPOINT --clips DIR`): the checkpoint's processor turns every clip under DIR into inputs
once; each mode's probabilities are compared with float32's: top-1 agreement and max absolute probability difference.

Usage: python benchmarks/bench_inference.py [--configs paper tiny] [--batches 1 8] [--modes fp32 bf16 int8]
       [--repeats 3] [--threads 2] [--guard runs/sample --clips ~/.cache/.../sample]
       [--distributed runs/sample --clips FOLDER]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

if os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":  # see the docstring: RSS must follow live tensors
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MODES = {  # name -> optimize_for_inference arguments
    "fp32": {},
    "bf16": {"dtype": "bfloat16"},
    "int8": {"quantize": "int8"},
    "bf16+compile": {"dtype": "bfloat16", "compile": True},
}


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_rise_mib(call) -> float:
    """MiB that `call()` adds to the peak resident set size."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = rss_kib("VmRSS")
    call()
    return max(rss_kib("VmHWM") - before, 0) / 1024


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    """GFLOP/s of a `size`^3 matrix product in `dtype` (best of `repeats`)."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def clip_flops(config) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification

    eager = copy.deepcopy(config)
    eager._attn_implementation = "eager"
    model = AVCPNetForVideoClassification(eager).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(**random_inputs(config, 1))
    return counter.get_total_flops()


def random_inputs(config, batch: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "pixel_values_videos": torch.randn(batch, config.num_segments, config.frames_per_segment, 3,
                                           config.image_size, config.image_size, generator=generator),
        "input_features": torch.randn(batch, config.audio_segments, config.audio_length // config.audio_segments,
                                      config.num_mfcc, generator=generator),
    }


def bench_speed(args) -> None:
    from modeling_avcpnet import AVCPNetConfig
    from modeling_avcpnet.inference import optimize_for_inference
    from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"practical peak (2048^3 matmul, {torch.get_num_threads()} threads): fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)
    for config_name in args.configs:
        config = AVCPNetConfig() if config_name == "paper" else AVCPNetConfig.tiny()
        flops = clip_flops(config)
        torch.manual_seed(0)
        base = AVCPNetForVideoClassification(config).eval()
        models = {mode: optimize_for_inference(copy.deepcopy(base), **MODES[mode]) for mode in args.modes}
        print(f"\n{config_name}: {flops / 1e9:.3f} GFLOP per clip (FlopCounterMode, eager attention)", flush=True)
        for batch in args.batches:
            inputs = random_inputs(config, batch)
            times, memory, probabilities = {m: [] for m in args.modes}, {}, {}
            with torch.inference_mode():
                for mode, model in models.items():  # warm-up call (and compilation): memory and outputs
                    outputs = []
                    start = time.perf_counter()
                    memory[mode] = peak_rise_mib(lambda: outputs.append(model(**inputs).logits.float()))
                    if not args.repeats:  # --repeats 0: time the first call itself (one-time set-up included)
                        times[mode].append(time.perf_counter() - start)
                    probabilities[mode] = outputs[0].softmax(-1)
                for _ in range(args.repeats):
                    for mode, model in models.items():
                        times[mode].append(_timed(lambda: model(**inputs)))
            print("| config | batch | mode | s/batch (median) | clips/s | vs fp32 | peak memory | GFLOP/s | "
                  "share of peak | max prob diff vs fp32 |\n|---|---|---|---|---|---|---|---|---|---|")
            reference = statistics.median(times["fp32"]) if "fp32" in times else None
            for mode in args.modes:
                seconds = statistics.median(times[mode])
                achieved = flops * batch / seconds / 1e9
                peak = peaks["bf16" if mode.startswith("bf16") else "fp32"]
                ratio = f"{reference / seconds:.2f}x" if reference else "-"
                difference = (probabilities[mode] - probabilities["fp32"]).abs().max().item() if reference else 0
                print(f"| {config_name} | {batch} | {mode} | {seconds:.3f} | {batch / seconds:.2f} | {ratio} | "
                      f"{memory[mode]:.0f} MiB | {achieved:.2f} | {100 * achieved / peak:.1f}% | {difference:.4f} |",
                      flush=True)


def bench_guard(args) -> None:
    """Agreement of each mode with float32 on real clips, with a trained checkpoint."""
    from modeling_avcpnet.inference.predict import find_videos
    from modeling_avcpnet.inference import load_for_inference, optimize_for_inference
    from modeling_avcpnet.pipeline_avcpnet import collate_model_inputs, preprocess_clip

    base, processor, _ = load_for_inference(args.guard)
    paths, _ = find_videos([args.clips])
    inputs = collate_model_inputs([preprocess_clip(processor, path) for path in paths])
    tensors = {key: inputs[key] for key in ("pixel_values_videos", "input_features", "audio_mask")}
    results = {}
    with torch.inference_mode():
        for mode in args.modes:
            model = optimize_for_inference(copy.deepcopy(base), **MODES[mode])
            results[mode] = torch.cat([model(**{k: v[i:i + 32] for k, v in tensors.items()}).logits.float()
                                       for i in range(0, len(paths), 32)]).softmax(-1)
    print(f"\naccuracy guard: {len(paths)} clips under {args.clips}, checkpoint {args.guard}")
    print("| mode | top-1 agreement with fp32 | max prob diff | mean prob diff |\n|---|---|---|---|")
    for mode in args.modes:
        agreement = (results[mode].argmax(-1) == results["fp32"].argmax(-1)).float().mean().item()
        difference = (results[mode] - results["fp32"]).abs()
        print(f"| {mode} | {100 * agreement:.2f}% | {difference.max().item():.4f} | {difference.mean().item():.5f} |")


def bench_distributed(args) -> None:
    """`avcpnet predict` on one process vs `torchrun --nproc_per_node 2` (1 torch thread per process), same clips."""
    import subprocess
    import tempfile

    python = sys.executable
    torchrun = os.path.join(os.path.dirname(python), "torchrun")
    predict = ["-m", "modeling_avcpnet.apps.cli", "predict", args.clips, "--model", args.distributed, "--quiet",
               "--threads", "1", "--device", "cpu"]
    commands = {"1 process": [python, *predict],
                "2 processes": [torchrun, "--nproc_per_node", "2", "--standalone", *predict]}
    print(f"\ndistributed predict: clips under {args.clips}, checkpoint {args.distributed}")
    print("| run | wall s (start-up included) | labelling clips/s (summary) | vs 1 process |\n|---|---|---|---|")
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, command in commands.items():
            output = os.path.join(folder, name.replace(" ", "_") + ".csv")
            start = time.perf_counter()
            done = subprocess.run([*command, "--output", output], capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT})
            wall = time.perf_counter() - start
            summary = [line for line in done.stdout.splitlines() if line.startswith("avcpnet predict:")]
            if done.returncode or not summary:
                raise SystemExit(f"{name} failed: {done.stderr[-2000:]}")
            rates[name] = float(summary[-1].split(" clips/s")[0].rsplit(" ", 1)[-1])
            print(f"| {name} | {wall:.1f} | {rates[name]:.2f} | {rates[name] / rates['1 process']:.2f}x |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["paper", "tiny"], choices=["paper", "tiny"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--modes", nargs="+", default=["fp32", "bf16", "int8"], choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls per mode after the warm-up; 0 times the warm-up call (one-time set-up in)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    parser.add_argument("--guard", help="a trained checkpoint folder: run the accuracy guard instead of the speed")
    parser.add_argument("--clips", help="folder of clips for --guard / --distributed")
    parser.add_argument("--distributed", help="a checkpoint folder: time predict on 1 process vs torchrun with 2")
    args = parser.parse_args()
    if "fp32" not in args.modes:
        args.modes.insert(0, "fp32")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.1f}")
    if args.distributed:
        bench_distributed(args)
    elif args.guard:
        bench_guard(args)
    else:
        bench_speed(args)


if __name__ == "__main__":
    main()
