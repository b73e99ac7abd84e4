"""Speed and memory of `avcpnet timeline` (tiny model, 4-s windows every 1 s) on generated 720p videos.

    .venv/bin/python benchmarks/bench_timeline.py [--minutes 10] [--short_minutes 1] [--threads 1]

Generates once, cached under /tmp/avcpnet_bench_timeline, a 1280x720 30-fps H.264/AAC video of `--minutes` minutes
and one of `--short_minutes` (low-complexity frames: a flat background whose colour changes half way and a moving
square, so x264's ultrafast preset encodes them quickly; frame-threaded encoding and a keyframe every 60 frames, as
phones write them; a mono tone whose pitch changes half way) and a tiny random AV-CPNet checkpoint (bench_predict's). Every
measurement runs in a fresh process and reports wall time, x real time (video seconds per second of compute), the
peak resident memory above the resident memory after imports, and the most decoded frames held at once. Baselines
measured in the same run:
- decode floor: PyAV decoding every video frame of the long video, without conversion (what any reader must pay
  when nearly every frame is needed, as with 4-s windows every second);
- per-window clips (short video only): each window read on its own (`MediaReader.read_frames` of its sampled frames,
  i.e. a seek to the keyframe before it and a decode through it, as cutting each window into a clip would), with the
  same model, batch and audio features; overlapping windows decode the same frames again.
Times are the fastest of `--repeats` interleaved rounds; memory is that run's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from bench_predict import make_checkpoint  # the same tiny random AV-CPNet checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CACHE = "/tmp/avcpnet_bench_timeline"
HEIGHT, WIDTH, FPS, SAMPLE_RATE = 720, 1280, 30, 16000


def make_video(minutes: float) -> str:
    from datasets_emotions.synthetic_media import write_clip

    path = os.path.join(CACHE, f"talk_{minutes:g}min_{HEIGHT}p.mp4")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    count = int(minutes * 60 * FPS)
    backgrounds = [np.full((HEIGHT, WIDTH, 3), colour, np.uint8) for colour in ((150, 60, 50), (50, 70, 160))]

    def frames():
        frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        for index in range(count):
            np.copyto(frame, backgrounds[index >= count // 2])
            x = (index * 7) % (WIDTH - 160)
            y = (index * 3) % (HEIGHT - 160)
            frame[y:y + 160, x:x + 160] = (230, 230, 90)
            yield frame

    seconds = count / FPS
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = np.where(t < seconds / 2, 220.0, 880.0)
    audio = (0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE)).astype(np.float32)[None]
    start = time.perf_counter()
    partial = path + ".partial.mp4"
    write_clip(partial, frames(), fps=FPS, audio=audio, sample_rate=SAMPLE_RATE, gop_size=60)
    os.replace(partial, path)
    print(f"generated {path} ({os.path.getsize(path) / 1e6:.1f} MB) in {time.perf_counter() - start:.0f} s",
          flush=True)
    return path


# --------------------------------------------------------------------------------------------------- children
def memory_mb(field: str) -> float:
    """`VmRSS` (resident now) or `VmHWM` (peak resident) of this process, in MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak_memory() -> None:
    """Make `VmHWM` start again from the current resident size (Linux), so that the peak of the measured part is
    not hidden by the peak of loading torch and the model."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def child(method: str, video: str, model: str, threads: int) -> dict:
    import torch

    from modeling_avcpnet.inference.loading import load_pipeline
    from modeling_avcpnet.inference.timeline import emotion_timeline, plan_windows, video_duration
    from modeling_avcpnet.media_avcpnet import MediaReader

    torch.set_num_threads(threads)
    pipe = load_pipeline(model, device="cpu")
    baseline = memory_mb("VmRSS")
    reset_peak_memory()
    start = time.perf_counter()
    result: dict = {}
    if method == "timeline":
        timeline = emotion_timeline(pipe, video, window=4.0, stride=1.0, batch_size=8)
        result.update(windows=len(timeline.starts), duration=timeline.duration,
                      frames_decoded=timeline.frames_decoded, frames=timeline.num_frames,
                      buffered=timeline.peak_buffered_frames, segments=len(timeline.segments))
    elif method == "floor":
        import av

        with av.open(video) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            decoded = sum(1 for _ in container.decode(stream))
        result.update(frames_decoded=decoded, duration=decoded / FPS)
    elif method == "per_window":
        processor, model_ = pipe.processor, pipe.model
        rate = processor.feature_extractor.sampling_rate
        edge = processor.video_processor.size.shortest_edge
        with MediaReader(video, audio_sample_rate=rate) as reader:
            times = reader.frame_times()
            duration, _ = video_duration(times, reader.fps)
            plan = plan_windows(times, duration, 4.0, 1.0, processor.video_processor)
            for first in range(0, len(plan.starts), 8):
                batch = range(first, min(first + 8, len(plan.starts)))
                clips = processor.video_processor([reader.read_frames(plan.indices[k], edge) for k in batch],
                                                  do_sample_frames=False, return_tensors="pt")["pixel_values_videos"]
                audio = [reader.audio[int(plan.starts[k] * rate):int(plan.ends[k] * rate)] for k in batch]
                features = processor.feature_extractor(audio)
                with torch.inference_mode():
                    model_(pixel_values_videos=clips, **features)
            result.update(windows=len(plan.starts), duration=duration, frames_decoded=reader.frames_decoded,
                          frames=reader.num_frames)
    result["seconds"] = time.perf_counter() - start
    result["peak_mb"] = memory_mb("VmHWM") - baseline
    return result


def measure(method: str, video: str, model: str, threads: int) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", method, video, model, "--threads", str(threads)],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--short_minutes", type=float, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the measured processes")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the fastest run is reported")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "VIDEO", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, threads=args.threads)))
        return
    model = make_checkpoint()
    long_video, short_video = make_video(args.minutes), make_video(args.short_minutes)
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    # Rounds interleave the methods so that load from other jobs, which drifts over minutes, hits them alike.
    by: dict[tuple[str, str], dict] = {}
    for _ in range(args.repeats):
        for label, method, video in (("short", "timeline", short_video), ("short", "per_window", short_video),
                                     ("long", "timeline", long_video), ("long", "floor", long_video)):
            result = measure(method, video, model, args.threads)
            result.update(video=label, method=method)
            print(json.dumps(result), flush=True)
            best = by.get((label, method))
            if best is None or result["seconds"] < best["seconds"]:
                by[(label, method)] = result
    rows = list(by.values())
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}\n")
    print("| video | method | windows | wall s | x real time | frames decoded / frames | peak buffered frames "
          "| peak memory above imports |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        minutes = args.minutes if row["video"] == "long" else args.short_minutes
        frames = f"{row['frames_decoded']} / {row.get('frames', row['frames_decoded'])}"
        print(f"| {minutes:g} min 720p | {row['method']} | {row.get('windows', '-')} | {row['seconds']:.1f} | "
              f"{row['duration'] / row['seconds']:.1f}x | {frames} | {row.get('buffered', '-')} | "
              f"{row['peak_mb']:.0f} MB |")
    long_timeline, short_timeline = by[("long", "timeline")], by[("short", "timeline")]
    print(f"\ntimeline / decode floor (long video): {long_timeline['seconds'] / by[('long', 'floor')]['seconds']:.2f}x")
    print(f"per-window clips / timeline (short video): "
          f"{by[('short', 'per_window')]['seconds'] / short_timeline['seconds']:.2f}x")
    print(f"peak memory long / short: {long_timeline['peak_mb'] / max(short_timeline['peak_mb'], 1e-9):.2f}x for "
          f"{args.minutes / args.short_minutes:g}x the length; peak buffered frames "
          f"{long_timeline['buffered']} vs {short_timeline['buffered']}")


if __name__ == "__main__":
    main()
