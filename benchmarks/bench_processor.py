"""Benchmark AVCPNetProcessor against the naive path and the decoding floor, on phone-like 720x1280 clips.

Generates (once, cached in --cache-dir) a 25-s and a 60-s 720x1280 30 fps H.264 clip (one slice per frame, a
keyframe every 60 frames) with AAC audio, then measures, each in a fresh subprocess (so that peak memory is that
method's own: the peak RSS minus the RSS after imports):

- ours:  `AVCPNetProcessor()(videos=[path])`: 16 x 8 frames at 112x112 plus the MFCC, in eval and training mode;
- naive: `transformers.video_utils.load_video(path, backend="pyav")` (every frame decoded to RGB), then the same
  segment sampling, resize, crop and normalisation, and the same audio features;
- floor: PyAV decoding, without any conversion, of the packets from each snippet's preceding keyframe through the
  snippet, plus decoding the audio track.

and prints seconds per clip (min and median over interleaved rounds), peak memory and the ratios, then the
throughput of a DataLoader with 2 workers.

    .venv/bin/python benchmarks/bench_processor.py            # everything (the naive 60-s run needs ~15 GB)
    .venv/bin/python benchmarks/bench_processor.py --skip-naive-60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _common import REPO, max_rss_bytes, rss_bytes, write_clip_once  # the repository on sys.path


def make_clip(path: str, seconds: int) -> str:
    if os.path.exists(path):
        return path
    import numpy as np

    from datasets_emotions.synthetic_media import textured_frames, tone

    audio = np.concatenate([tone(440, seconds, tempo_hz=2), tone(660, seconds)], 0)  # stereo
    # write_clip encodes frame-threaded (one slice per frame, like phones), streaming the frames one by one.
    return write_clip_once(path, textured_frames(30 * seconds, 1280, 720), fps=30, audio=audio, gop_size=60)


def rss_mb() -> float:
    return rss_bytes() / 2**20


# -- the three methods (run inside a worker process) ----------------------------------------------------------------


def run_ours(path: str, training: bool):
    import torch

    from modeling_avcpnet import AVCPNetProcessor

    processor = AVCPNetProcessor()

    def once():
        batch = processor(videos=[path], training=training)
        assert batch["pixel_values_videos"].shape == (1, 16, 8, 3, 112, 112)
        assert bool(batch["audio_mask"][0])
        return batch

    torch.manual_seed(0)
    return once


def run_naive(path: str, training: bool):
    import torch
    from transformers.video_utils import load_video

    from modeling_avcpnet import AVCPNetProcessor
    from modeling_avcpnet.media_avcpnet import MediaReader

    processor = AVCPNetProcessor()
    video_processor = processor.video_processor

    def once():
        video, _ = load_video(path, backend="pyav")  # every frame as full-size RGB
        # The array path: sample by index, resize in torch, then the same crop and normalisation.
        pixel_values = video_processor(video, training=training)["pixel_values_videos"]
        del video
        with MediaReader(path, audio_sample_rate=44100) as reader:  # the same audio decode as ours
            audio = processor.feature_extractor([reader.audio])
        assert pixel_values.shape == (1, 16, 8, 3, 112, 112) and audio["audio_mask"].all()
        return pixel_values

    torch.manual_seed(0)
    return once


def run_floor(path: str, training: bool):
    import av
    import numpy as np

    from modeling_avcpnet import AVCPNetVideoProcessor

    video_processor = AVCPNetVideoProcessor()

    def once():
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
            pts = np.sort([p for p, _ in packets])
            keyframes = np.searchsorted(pts, sorted(p for p, key in packets if key))
            # Frame ranges [keyframe before the snippet, end of the snippet], overlapping ones merged.
            ranges = []
            for snippet in video_processor.sample_indices(len(pts)).reshape(16, 8):
                start = int(keyframes[np.searchsorted(keyframes, snippet[0], side="right") - 1])
                if ranges and start <= ranges[-1][1]:
                    ranges[-1][1] = max(ranges[-1][1], int(snippet[-1]))
                else:
                    ranges.append([start, int(snippet[-1])])
            for start, end in ranges:
                container.seek(int(pts[start]), stream=stream, backward=True)
                for frame in container.decode(stream):  # no conversion at all
                    if frame.pts >= pts[end]:
                        break
        with av.open(path) as container:
            for _ in container.decode(audio=0):
                pass

    return once


METHODS = {"ours": run_ours, "naive": run_naive, "floor": run_floor}


def worker(method: str, path: str, repeats: int, training: bool) -> None:
    import torch

    torch.set_num_threads(2)
    once = METHODS[method](path, training)
    baseline = rss_mb()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    peak = max_rss_bytes() / 2**20
    print(json.dumps({"seconds": statistics.median(times), "all": times, "peak_mb": peak - baseline}))


def measure(method: str, path: str, repeats: int, training: bool = False) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", method, path, str(repeats)]
    if training:
        command.append("--training")
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"{method} on {path} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- DataLoader throughput ------------------------------------------------------------------------------------------


class ClipDataset:
    def __init__(self, paths):
        from modeling_avcpnet import AVCPNetProcessor

        self.paths, self.processor = paths, AVCPNetProcessor()

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        batch = self.processor(videos=[self.paths[index]], training=True)
        return {key: value[0] for key, value in batch.items()}


def dataloader_throughput(path: str, clips: int, workers: int) -> float:
    import torch

    loader = torch.utils.data.DataLoader(ClipDataset([path] * clips), batch_size=2, num_workers=workers)
    start = time.perf_counter()
    seen = 0
    for batch in loader:
        seen += batch["pixel_values_videos"].shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default="/tmp/avcpnet_bench")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per clip")
    parser.add_argument("--skip-naive-60", action="store_true", help="skip the naive 60-s run (~15 GB of RAM)")
    parser.add_argument("--loader-clips", type=int, default=8)
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "PATH", "REPEATS"), help=argparse.SUPPRESS)
    parser.add_argument("--training", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]), args.training)
        return

    os.makedirs(args.cache_dir, exist_ok=True)
    for seconds in (25, 60):
        path = make_clip(os.path.join(args.cache_dir, f"clip_720x1280_{seconds}s.mp4"), seconds)
        runs = {"ours": [], "ours_train": [], "floor": [], "naive": []}
        # Interleaved rounds, one fresh process per measurement: load from other jobs drifts over minutes, so
        # every method sees the same conditions; the minimum is the least disturbed run.
        for round_index in range(args.repeats):
            runs["ours"].append(measure("ours", path, 1))
            runs["ours_train"].append(measure("ours", path, 1, training=True))
            runs["floor"].append(measure("floor", path, 1))
            if round_index == 0 and not (seconds == 60 and args.skip_naive_60):
                runs["naive"].append(measure("naive", path, 1))  # once: it needs 5-15 GB
        print(f"\n{seconds}-s clip ({os.path.getsize(path) / 1e6:.1f} MB): seconds per clip, min and median of "
              f"{args.repeats} interleaved runs (naive: 1 run), peak memory above the imports:")
        best = {}
        for name, values in runs.items():
            if not values:
                print(f"  {name:10s}  skipped")
                continue
            times = [value["seconds"] for value in values]
            best[name] = min(times)
            print(f"  {name:10s} min {min(times):6.2f} s  median {statistics.median(times):6.2f} s  "
                  f"peak {max(value['peak_mb'] for value in values):7.0f} MB")
        print(f"  ours / floor = {best['ours'] / best['floor']:.2f}x (min), "
              f"{statistics.median(v['seconds'] for v in runs['ours']) / statistics.median(v['seconds'] for v in runs['floor']):.2f}x (median)", end="")
        if "naive" in best:
            ours_peak = max(value["peak_mb"] for value in runs["ours"])
            print(f";  naive / ours = {best['naive'] / best['ours']:.1f}x (time, min), "
                  f"{runs['naive'][0]['peak_mb'] / ours_peak:.0f}x (memory)")
        else:
            print()

    path = os.path.join(args.cache_dir, "clip_720x1280_25s.mp4")
    serial = dataloader_throughput(path, args.loader_clips, 0)
    parallel = dataloader_throughput(path, args.loader_clips, 2)
    print(f"\nDataLoader (25-s clips, training mode, batch 2): {serial:.2f} clips/s in the main process, "
          f"{parallel:.2f} clips/s with 2 workers ({parallel / serial:.2f}x)")


if __name__ == "__main__":
    main()
