"""Benchmark: AV-CPNet training steps in float32 vs bfloat16 autocast on CPU, in one run.

What `train_hf.py ... --bf16 true --use_cpu true` does on a CPU: the Trainer (through Accelerate) runs forward and
loss under `torch.autocast("cpu", dtype=torch.bfloat16)`, weights and optimizer state stay float32, the backward
follows autocast's dtypes (the Video Swin's window attention keeps its fused SDPA forward and recomputing backward).
Here: the paper config (random weights), a small batch of random inputs, AdamW; one warm-up step per mode, then the
modes alternate step by step (fp32, bf16, fp32, ...) so that the load of a shared machine hits them alike; the median
step time gives samples/s and the ratio.

Usage: python benchmarks/bench_bf16_train.py [--config paper|tiny] [--batch 2] [--steps 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="paper", choices=["paper", "tiny"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from bench_inference import random_inputs

    from modeling_avcpnet import AVCPNetConfig
    from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification

    config = AVCPNetConfig() if args.config == "paper" else AVCPNetConfig.tiny()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}, "
          f"{args.config} config, batch {args.batch}", flush=True)
    inputs = random_inputs(config, args.batch)
    labels = torch.arange(args.batch) % config.num_labels
    runs = {}
    for mode in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = AVCPNetForVideoClassification(config).train()
        runs[mode] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4))

    def step(mode: str) -> float:
        model, optimizer = runs[mode]
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()
        start = time.perf_counter()
        with autocast:
            loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start

    for mode in runs:
        step(mode)  # warm-up
    times = {mode: [] for mode in runs}
    for _ in range(args.steps):
        for mode in runs:
            times[mode].append(step(mode))
    reference = statistics.median(times["fp32"])
    print("| mode | s/step (median) | samples/s | vs fp32 |\n|---|---|---|---|")
    for mode, values in times.items():
        seconds = statistics.median(values)
        print(f"| {mode} | {seconds:.2f} | {args.batch / seconds:.3f} | {reference / seconds:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
