"""Benchmark: our VideoSwinEncoder vs torchvision's swin3d_t, same weights, same input (default (16, 3, 8, 112, 112)).

Both models compute the same thing: features after the final LayerNorm pooled over time and space (torchvision:
`norm(features(patch_embed(x))).mean((1, 2, 3))`, its classification head left out).

- Time: one process, models alternated (ours, torchvision, ours, ...) after a warm-up call each, median of
  `--repeats` runs. "forward" runs under `torch.inference_mode()` in eval mode; "forward+backward" runs in train mode
  (stochastic depth 0.1 in both) and back-propagates `pooled.square().mean()`.
- Peak memory: a fresh subprocess per (model, mode) measurement, so that nothing allocated by another measurement
  is counted. torch's CPU tensors are malloc'ed, so `tracemalloc` cannot see them; we read the kernel's peak resident
  set size instead. The subprocess sets `MALLOC_MMAP_THRESHOLD_=65536`, so that every tensor buffer of 64 KiB or
  more is its own mmap that returns to the OS when freed (RSS then follows live tensor memory instead of glibc's
  cached free lists), builds the model and input, runs one warm-up call, records its current RSS, resets the peak
  (`echo 5 > /proc/self/clear_refs` resets VmHWM) and runs the measured call: peak = VmHWM - RSS before the call,
  i.e. the activations, gradients and workspaces that the call adds.

Usage: python benchmarks/bench_backbone.py [--batch 16 --frames 8 --size 112 --repeats 5 --threads 2]
       [--modes forward forward+backward] [--attn-implementation sdpa|eager]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from _common import proc_status_kib, reset_peak_rss  # the repository on sys.path

MODES = ("forward", "forward+backward")
MODELS = ("ours", "torchvision")


def build_models(attn_implementation: str = "sdpa"):
    """torchvision swin3d_t with random weights (seed 0), and our encoder with the same weights converted."""
    from torchvision.models.video import swin3d_t

    from modeling_avcpnet.configuration_avcpnet import AVCPNetConfig
    from modeling_avcpnet.convert.video_swin_weights import convert_torchvision_state_dict
    from modeling_avcpnet.modeling_video_swin import VideoSwinEncoder

    torch.manual_seed(0)
    torchvision_model = swin3d_t()
    config = AVCPNetConfig()  # the paper's Video Swin-T = swin3d_t's configuration
    config._attn_implementation = attn_implementation
    ours = VideoSwinEncoder(config)
    ours.load_state_dict(convert_torchvision_state_dict(torchvision_model.state_dict()))
    return {"ours": ours, "torchvision": torchvision_model}


def pooled_features(name: str, model, clips: torch.Tensor) -> torch.Tensor:
    if name == "ours":
        return model(clips).pooler_output
    return model.norm(model.features(model.patch_embed(clips))).mean(dim=(1, 2, 3))


def run_once(name: str, model, clips: torch.Tensor, mode: str) -> None:
    if mode == "forward":
        model.eval()
        with torch.inference_mode():
            pooled_features(name, model, clips)
    else:
        model.train()
        pooled_features(name, model, clips).square().mean().backward()
        model.zero_grad(set_to_none=True)


def make_clips(args) -> torch.Tensor:
    return torch.randn(args.batch, 3, args.frames, args.size, args.size, generator=torch.Generator().manual_seed(1))


def measure_times(args) -> dict:
    models = build_models(args.attn_implementation)
    clips = make_clips(args)
    times = {mode: {name: [] for name in MODELS} for mode in args.modes}
    for mode in args.modes:
        for name in MODELS:
            run_once(name, models[name], clips, mode)  # warm-up
        for _ in range(args.repeats):
            for name in MODELS:
                start = time.perf_counter()
                run_once(name, models[name], clips, mode)
                times[mode][name].append(time.perf_counter() - start)
    return {mode: {name: statistics.median(values) for name, values in by_model.items()} for mode, by_model in times.items()}


def measure_peak_memory_child(args) -> None:
    """Runs in a fresh subprocess: prints the peak RSS growth (MiB) of one call of one model."""
    torch.set_num_threads(args.threads)
    model = build_models(args.attn_implementation)[args.child_model]
    clips = make_clips(args)
    run_once(args.child_model, model, clips, args.child_mode)  # warm-up: one-time kernel and thread-pool setup
    before = proc_status_kib("VmRSS")
    reset_peak_rss()  # VmHWM (the peak RSS) = the current RSS
    run_once(args.child_model, model, clips, args.child_mode)
    print(json.dumps({"peak_mib": (proc_status_kib("VmHWM") - before) / 1024}))


def measure_peak_memory(args, name: str, mode: str) -> float:
    command = [sys.executable, os.path.abspath(__file__), "--child-model", name, "--child-mode", mode]
    for option in ("batch", "frames", "size", "threads"):
        command += [f"--{option}", str(getattr(args, option))]
    command += ["--attn-implementation", args.attn_implementation]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attn-implementation", default="sdpa", choices=("sdpa", "eager"))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--child-model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_model:
        measure_peak_memory_child(args)
        return

    torch.set_num_threads(args.threads)
    print(f"input ({args.batch}, 3, {args.frames}, {args.size}, {args.size}), {args.threads} threads, "
          f"torch {torch.__version__}, attn_implementation={args.attn_implementation}")
    memory = {mode: {name: measure_peak_memory(args, name, mode) for name in MODELS} for mode in args.modes}
    times = measure_times(args)
    header = f"{'mode':<18}{'ours s':>10}{'tv s':>10}{'time ratio':>12}{'ours MiB':>11}{'tv MiB':>10}{'mem ratio':>11}"
    print(header)
    for mode in args.modes:
        t, m = times[mode], memory[mode]
        print(f"{mode:<18}{t['ours']:>10.3f}{t['torchvision']:>10.3f}{t['ours'] / t['torchvision']:>12.3f}"
              f"{m['ours']:>11.0f}{m['torchvision']:>10.0f}{m['ours'] / m['torchvision']:>11.3f}")


if __name__ == "__main__":
    main()
