"""Throughput of `avcpnet predict` with a tiny model on 200 generated 10-s clips, with 0 and 2 decoding workers.

    .venv/bin/python benchmarks/bench_predict.py [--clips 200] [--workers 0 2] [--batch_size 8] [--threads N]

Generates (once, cached under /tmp/avcpnet_bench_predict) small 10-s H.264/AAC clips (96x128, 30 fps, a keyframe
every 60 frames, frame-threaded encoding as phones write them) and a tiny AV-CPNet checkpoint, then runs the real
command in a fresh process for each worker count and prints clips per second (end to end, and inside the labelling
loop), where the time goes (decoding summed over clips, the main process waiting for decoded batches, the model)
and the ratios against the 0-worker run measured in the same invocation.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

from _common import REPO as ROOT, write_clip_once  # the repository on sys.path

CACHE = "/tmp/avcpnet_bench_predict"
SECONDS, FPS, HEIGHT, WIDTH, SAMPLE_RATE = 10, 30, 96, 128, 44100


def make_clips(count: int) -> str:
    from datasets_emotions.synthetic_media import moving_square_frames, tone

    folder = os.path.join(CACHE, f"clips_{SECONDS}s_{HEIGHT}x{WIDTH}")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    made = 0
    for index in range(count):
        path = os.path.join(folder, f"clip_{index:04d}.mp4")
        if os.path.exists(path):
            continue
        color = tuple(int(c) for c in rng.integers(64, 256, size=3))
        frames = moving_square_frames(SECONDS * FPS, HEIGHT, WIDTH, color=color, speed=1.0 + index % 5)
        audio = tone(220.0 + 20 * (index % 30), SECONDS, SAMPLE_RATE, tempo_hz=index % 4)
        write_clip_once(path, frames, fps=FPS, audio=audio, sample_rate=SAMPLE_RATE, gop_size=60)
        made += 1
    if made:
        print(f"generated {made} clips in {time.perf_counter() - start:.0f} s under {folder}")
    return folder


def make_checkpoint() -> str:
    folder = os.path.join(CACHE, "tiny_checkpoint")
    if os.path.exists(os.path.join(folder, "config.json")):
        return folder
    import torch

    from modeling_avcpnet import AVCPNetConfig
    from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification
    from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor
    from modeling_avcpnet.pipeline_avcpnet import save_for_pipeline

    torch.manual_seed(0)
    config = AVCPNetConfig.tiny()
    model = AVCPNetForVideoClassification(config).eval()
    save_for_pipeline(model, AVCPNetProcessor.from_model_config(config), folder)
    return folder


SUMMARY = re.compile(r"(?P<labelled>\d+) labelled(?: \([^)]*\))?, (?P<failed>\d+) unreadable.*; "
                     r"(?P<rate>[\d.]+) clips/s "
                     r"\(decode (?P<decode>[\d.]+) s, waiting for data (?P<wait>[\d.]+) s, model (?P<model>[\d.]+) s\)")


def run_command(clips: str, checkpoint: str, workers: int, batch_size: int, threads: int) -> dict[str, float]:
    output = os.path.join(CACHE, f"predictions_w{workers}.csv")
    command = [sys.executable, "-m", "modeling_avcpnet.apps.cli", "predict", clips, "--model", checkpoint,
               "--output", output, "--overwrite", "--quiet", "--device", "cpu",
               "--batch_size", str(batch_size), "--num_workers", str(workers), "--threads", str(threads)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    match = SUMMARY.search(result.stdout)
    if result.returncode or not match:
        raise SystemExit(f"command failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-3000:]}")
    numbers = {key: float(value) for key, value in match.groupdict().items()}
    numbers["wall"] = wall
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="the command's --threads (0: its default)")
    args = parser.parse_args()

    clips = make_clips(args.clips)
    checkpoint = make_checkpoint()
    # The command labels every file of the folder: keep only the requested number there.
    available = sorted(name for name in os.listdir(clips) if name.endswith(".mp4") and ".part" not in name)
    if len(available) != args.clips:
        raise SystemExit(f"{clips} holds {len(available)} clips, expected {args.clips}; remove it to regenerate")

    threads = f"--threads {args.threads}" if args.threads else "default --threads (cores - workers)"
    print(f"{args.clips} clips of {SECONDS} s, {WIDTH}x{HEIGHT} {FPS} fps H.264 + AAC; tiny AV-CPNet "
          f"(AVCPNetConfig.tiny()); batch size {args.batch_size}; {threads}; {os.cpu_count()} CPU cores, load average "
          f"{os.getloadavg()[0]:.1f} at start (other processes share the cores)")
    header = (f"{'workers':>7} {'wall s':>7} {'clips/s':>8} {'loop clips/s':>12} {'decode s':>9} {'wait s':>7} "
              f"{'model s':>8} {'decode share':>12} {'speed-up':>8}")
    print(header)
    baseline = None
    for workers in args.workers:
        numbers = run_command(clips, checkpoint, workers, args.batch_size, args.threads)
        if numbers["labelled"] != args.clips:
            raise SystemExit(f"only {numbers['labelled']:.0f} of {args.clips} clips were labelled")
        end_to_end = args.clips / numbers["wall"]
        baseline = baseline or end_to_end
        # Share of the labelling loop's time spent on decoding: with 0 workers decoding runs in the main process;
        # with workers it overlaps the model, and what remains visible is the time spent waiting for batches.
        decode_visible = numbers["decode"] if workers == 0 else numbers["wait"]
        share = decode_visible / max(decode_visible + numbers["model"], 1e-9)
        print(f"{workers:>7} {numbers['wall']:>7.1f} {end_to_end:>8.2f} {numbers['rate']:>12.2f} "
              f"{numbers['decode']:>9.1f} {numbers['wait']:>7.1f} {numbers['model']:>8.1f} {share:>12.0%} "
              f"{end_to_end / baseline:>7.2f}x   (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
