"""Emotion timeline of a video of any length: the model over sliding windows, in one pass over the file.

```python
>>> from modeling_avcpnet.inference.timeline import emotion_timeline
>>> timeline = emotion_timeline("path/to/checkpoint", "talk.mp4", window=4.0, stride=1.0)
>>> timeline.probabilities.shape          # (num_windows, num_labels)
>>> timeline.segments[0]                  # {'start': 0.0, 'end': 12.5, 'label': 'neutral', 'score': 0.61, ...}
>>> timeline.save("talk_timeline")        # timeline.csv, timeline.json, timeline.png, timeline.svg
```

Window `k` covers `[k * stride, k * stride + window)` seconds (a last window ending at the end of the video is added
when the stride does not reach it; a video shorter than `window` is one window). Each window is sampled exactly like
a clip of that time span by the processor in eval mode: its frames are split into `num_segments` segments and the
centred `frames_per_segment` frames of each are taken; its audio features are the MFCC of its stretch of the
soundtrack. So the probabilities of a window equal those of the processor and model run on that window cut out as
its own clip (frames and waveform; tests/test_timeline.py checks it).

Decoding: the file is opened once by the media layer's `MediaReader`, whose indexing pass also decodes the
soundtrack (once, mono at the feature extractor's rate). The frames that some window needs are decoded front to back
in chunks that start at keyframes (one `read_frames` call per chunk), so each frame is decoded at most once however
much the windows overlap, and only the frames still needed by a window not yet classified stay in memory: frame
memory is bounded by about `window + batch_size * stride` seconds of resized frames, whatever the video's length.
The soundtrack is the one part that grows with the length (10.6 MB per minute at 44.1 kHz).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from ..labels import POLARITIES
from ..media_avcpnet import MediaReader, StreamingAudio
from ..prediction_avcpnet import polarity_probabilities, predict_clips

EPSILON = 1e-6


# --------------------------------------------------------------------------------------------------- windows
@dataclass
class WindowPlan:
    """Where the windows lie: `starts`/`ends` `(N,)` seconds and `indices` `(N, num_segments * frames_per_segment)`
    the frames each window samples (frame numbers of the whole video, segment after segment)."""

    starts: np.ndarray
    ends: np.ndarray
    indices: np.ndarray


def window_starts(duration: float, window: float, stride: float) -> np.ndarray:
    """Start times of the windows over a video of `duration` seconds (see the module docstring)."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive seconds, got window={window}, stride={stride}")
    if duration <= window + EPSILON:
        return np.zeros(1)
    count = int(np.floor((duration - window) / stride + EPSILON)) + 1
    starts = np.arange(count) * stride
    if starts[-1] + window < duration - 1e-3:
        starts = np.append(starts, duration - window)  # cover the tail
    return starts


def plan_windows(frame_times: np.ndarray, duration: float, window: float, stride: float, video_processor
                 ) -> WindowPlan:
    """Windows over a video whose frame `i` is shown at `frame_times[i]` seconds (from the first frame), each
    sampled with `video_processor.sample_indices` (eval mode) over the frames of its time span."""
    starts = window_starts(duration, window, stride)
    ends = np.minimum(starts + window, duration) if len(starts) > 1 or duration > window else np.array([duration])
    firsts = np.searchsorted(frame_times, starts - EPSILON, side="left")
    lasts = np.maximum(np.searchsorted(frame_times, ends - EPSILON, side="left"), firsts + 1)
    lasts = np.minimum(lasts, len(frame_times))
    indices = np.stack([first + video_processor.sample_indices(int(last - first), training=False)
                        for first, last in zip(firsts, lasts)])
    return WindowPlan(starts.astype(np.float64), ends.astype(np.float64), indices)


def video_duration(times: np.ndarray, fps: Optional[float]) -> tuple[float, float]:
    """`(duration, frame step)` in seconds of a video whose frames are shown at `times` (the last frame lasts one
    typical frame step)."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / (fps or 25.0)
    return float(times[-1] + step), step


def keyframe_chunks(wanted: np.ndarray, keyframes: Optional[np.ndarray], min_frames: int) -> list[np.ndarray]:
    """Split sorted frame numbers into chunks that each start in a new group of pictures (a keyframe after the
    previous chunk's last frame) and hold at least `min_frames` frames of video. Decoding chunk after chunk then
    seeks forward only and never decodes a frame twice."""
    if keyframes is None or len(wanted) == 0:
        return [wanted] if len(wanted) else []
    group = np.searchsorted(keyframes, wanted, side="right") - 1
    chunks, begin = [], 0
    for position in range(1, len(wanted) + 1):
        at_end = position == len(wanted)
        if at_end or (group[position] != group[position - 1] and wanted[position - 1] - wanted[begin] + 1 >= min_frames):
            chunks.append(wanted[begin:position])
            begin = position
    return chunks


# --------------------------------------------------------------------------------------------------- result
@dataclass
class EmotionTimeline:
    """Per-window emotion probabilities over a video, their smoothed track and the segments of constant top
    emotion. Arrays are `(num_windows, num_labels)` float32 unless said otherwise."""

    video: str
    labels: list[str]
    polarity_ids: list[int]
    duration: float
    fps: Optional[float]
    window: float
    stride: float
    smooth: int
    starts: np.ndarray  # (N,) seconds
    ends: np.ndarray  # (N,) seconds
    probabilities: np.ndarray
    smoothed: np.ndarray
    visual_probabilities: Optional[np.ndarray] = None
    audio_probabilities: Optional[np.ndarray] = None
    has_audio: bool = True
    segments: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the run
    frames_decoded: int = 0
    num_frames: int = 0
    peak_buffered_frames: int = 0  # most decoded frames held at once (bounded, whatever the video's length)

    @property
    def centres(self) -> np.ndarray:
        return (self.starts + self.ends) / 2

    @property
    def polarity_probabilities(self) -> np.ndarray:
        """`(N, 3)`: the summed probabilities of each polarity's classes (positive, neutral, negative)."""
        return polarity_probabilities(torch.from_numpy(self.probabilities), self.polarity_ids).numpy()

    @property
    def top_labels(self) -> list[str]:
        return [self.labels[i] for i in self.probabilities.argmax(-1)]

    @property
    def realtime_factor(self) -> float:
        """Seconds of video per second of compute (higher is faster; > 1 is faster than real time)."""
        return self.duration / max(self.seconds, 1e-9)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per window, as written to the CSV file."""
        polarity = self.polarity_probabilities
        rows = []
        for k in range(len(self.starts)):
            top, top_polarity = int(self.probabilities[k].argmax()), int(polarity[k].argmax())
            row = {"window": k, "start": round(float(self.starts[k]), 4), "end": round(float(self.ends[k]), 4),
                   "label": self.labels[top], "score": float(self.probabilities[k, top]),
                   "smoothed_label": self.labels[int(self.smoothed[k].argmax())],
                   "polarity": POLARITIES[top_polarity], "polarity_score": float(polarity[k, top_polarity])}
            for prefix, values in self._tracks():
                row.update({f"{prefix}_{label}": float(values[k, i]) for i, label in enumerate(self.labels)})
            rows.append(row)
        return rows

    def _tracks(self) -> list[tuple[str, np.ndarray]]:
        tracks = [("prob", self.probabilities), ("smoothed", self.smoothed)]
        if self.visual_probabilities is not None:
            tracks.append(("visual", self.visual_probabilities))
        if self.audio_probabilities is not None and self.has_audio:
            tracks.append(("audio", self.audio_probabilities))
        return tracks

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (written to timeline.json)."""
        def named(values: np.ndarray, names) -> dict[str, float]:
            return {name: round(float(v), 6) for name, v in zip(names, values)}

        polarity = self.polarity_probabilities
        windows = []
        for k in range(len(self.starts)):
            item = {"start": round(float(self.starts[k]), 4), "end": round(float(self.ends[k]), 4),
                    "label": self.top_labels[k], "score": round(float(self.probabilities[k].max()), 6),
                    "polarity": POLARITIES[int(polarity[k].argmax())],
                    "probabilities": named(self.probabilities[k], self.labels),
                    "smoothed": named(self.smoothed[k], self.labels),
                    "polarity_probabilities": named(polarity[k], POLARITIES)}
            if self.visual_probabilities is not None:
                item["visual"] = named(self.visual_probabilities[k], self.labels)
            if self.audio_probabilities is not None and self.has_audio:
                item["audio"] = named(self.audio_probabilities[k], self.labels)
            windows.append(item)
        return {"video": self.video, "duration": round(self.duration, 4), "fps": self.fps, "window": self.window,
                "stride": self.stride, "smooth": self.smooth, "labels": self.labels, "has_audio": self.has_audio,
                "windows": windows, "segments": self.segments,
                "speed": {"seconds": round(self.seconds, 3), "x_real_time": round(self.realtime_factor, 2),
                          "frames": self.num_frames, "frames_decoded": self.frames_decoded,
                          "peak_buffered_frames": self.peak_buffered_frames}}

    def save(self, output_dir: str | os.PathLike, plot: bool = True, branches: bool = False) -> dict[str, str]:
        """Write `timeline.csv`, `timeline.json` and (with `plot`) `timeline.png` and `timeline.svg` into
        `output_dir`; returns their paths by kind."""
        output_dir = os.fspath(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        paths = {"csv": os.path.join(output_dir, "timeline.csv"), "json": os.path.join(output_dir, "timeline.json")}
        rows = self.rows()
        with open(paths["csv"], "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        with open(paths["json"], "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=1)
        if plot:
            from .timeline_plot import plot_timeline

            for extension in ("png", "svg"):
                paths[extension] = plot_timeline(self, os.path.join(output_dir, f"timeline.{extension}"),
                                                 branches=branches)
        return paths


def smooth_track(probabilities: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over `width` windows (odd; 1 leaves the track as it is); at the ends the average is
    over the windows that exist, so rows still sum to 1."""
    if width <= 1 or len(probabilities) < 2:
        return probabilities.copy()
    half = width // 2
    kernel = np.ones(2 * half + 1)
    counts = np.convolve(np.ones(len(probabilities)), kernel, mode="same")
    summed = np.stack([np.convolve(column, kernel, mode="same") for column in probabilities.T], axis=1)
    return (summed / counts[:, None]).astype(np.float32)


def change_segments(timeline_centres: np.ndarray, track: np.ndarray, labels: list[str], duration: float
                    ) -> list[dict[str, Any]]:
    """Runs of windows with the same top emotion in `track`: `[{start, end, label, score, windows}]`, covering
    `[0, duration]`; a boundary lies half way between the centres of the last window of a run and the first of the
    next; `score` is the run's mean probability of its label."""
    top = track.argmax(-1)
    segments, begin = [], 0
    for k in range(1, len(top) + 1):
        if k == len(top) or top[k] != top[begin]:
            start = 0.0 if begin == 0 else (timeline_centres[begin - 1] + timeline_centres[begin]) / 2
            end = duration if k == len(top) else (timeline_centres[k - 1] + timeline_centres[k]) / 2
            segments.append({"start": round(float(start), 4), "end": round(float(end), 4),
                             "label": labels[int(top[begin])],
                             "score": round(float(track[begin:k, top[begin]].mean()), 6), "windows": k - begin})
            begin = k
    return segments


# --------------------------------------------------------------------------------------------------- the run
def resolve_model(model_or_pipeline, processor=None):
    """`(model, processor)` from an `AVCPNetPipeline`, a model (with `processor`), or a checkpoint folder / Hub id."""
    if isinstance(model_or_pipeline, (str, os.PathLike)):
        from .loading import load_pipeline

        try:
            model_or_pipeline = load_pipeline(os.fspath(model_or_pipeline))
        except SystemExit as error:  # the CLI helper exits with a message; callers of the API get an exception
            raise ValueError(str(error.code).removeprefix("error: ")) from None
    if hasattr(model_or_pipeline, "model") and hasattr(model_or_pipeline, "processor"):
        return model_or_pipeline.model, processor or model_or_pipeline.processor
    if processor is None:
        raise ValueError("pass the processor with a model: emotion_timeline(model, video, processor=processor)")
    return model_or_pipeline, processor


def emotion_timeline(model_or_pipeline, video: str | os.PathLike, window: float = 4.0, stride: float = 1.0,
                     batch_size: int = 8, smooth: int = 3, processor=None, progress: bool = False
                     ) -> EmotionTimeline:
    """Run an AV-CPNet model over sliding windows of `video` (a media file path, bytes or file object).

    Args:
        model_or_pipeline: an `AVCPNetPipeline`, an `AVCPNetForVideoClassification` (then pass `processor`), or
            a checkpoint folder / Hub id holding both.
        window, stride: window length and step in seconds.
        batch_size: windows per model forward.
        smooth: width in windows of the centred moving average giving `smoothed` (and the segments).
        progress: show a progress bar.

    Returns an [`EmotionTimeline`]. Raises `MediaError` (naming the file) for unusable media.
    """
    from tqdm.auto import tqdm

    model, processor = resolve_model(model_or_pipeline, processor)
    if batch_size < 1 or smooth < 1:
        raise ValueError(f"batch_size and smooth must be >= 1, got {batch_size} and {smooth}")
    started = time.perf_counter()
    video_processor, feature_extractor = processor.video_processor, processor.feature_extractor
    shortest_edge = video_processor.size.shortest_edge if video_processor.do_resize else None
    rate = feature_extractor.sampling_rate
    if isinstance(video, os.PathLike):
        video = os.fspath(video)
    # The soundtrack is decoded alongside the windows (StreamingAudio: memory flat in the video's length); a file
    # object can be read by one container only, so its soundtrack is decoded whole while the video is indexed.
    stream_audio = not hasattr(video, "read")
    with MediaReader(video, require_video=True, audio_sample_rate=None if stream_audio else rate,
                     threads=video_processor.decode_threads) as reader, \
            (StreamingAudio(video, rate) if stream_audio else contextlib.nullcontext()) as streaming:
        audio = streaming if stream_audio else _WholeAudio(reader.audio, reader.audio_problem)
        times = reader.frame_times()
        fps = reader.fps
        duration, step = video_duration(times, fps)
        plan = plan_windows(times, duration, window, stride, video_processor)
        # Chunks of about batch_size strides (at least a window) of video: enough frames for a batch of windows.
        min_frames = int(np.ceil(max(window, batch_size * stride) / step))
        keyframes = reader.index.keyframes if reader.index is not None else None
        chunks = keyframe_chunks(np.unique(plan.indices), keyframes, min_frames)
        # The first frame any window from k on needs: frames before it can leave the buffer.
        still_needed = np.minimum.accumulate(plan.indices.min(1)[::-1])[::-1]

        outputs: dict[str, list[np.ndarray]] = {"fusion": [], "visual": [], "audio": []}
        buffer: dict[int, np.ndarray] = {}
        next_window, decoded_until, peak_buffered = 0, -1, 0
        bar = tqdm(total=len(plan.starts), unit="window", desc="timeline", disable=not progress)
        for chunk_number, chunk in enumerate(chunks + [None]):
            if chunk is not None:
                buffer.update(zip(chunk.tolist(), reader.read_frames(chunk, shortest_edge=shortest_edge)))
                decoded_until = int(chunk[-1])
                peak_buffered = max(peak_buffered, len(buffer))
            ready = next_window
            while ready < len(plan.starts) and plan.indices[ready].max() <= decoded_until:
                ready += 1
            while ready - next_window >= batch_size or (chunk is None and ready > next_window):
                batch = range(next_window, min(ready, next_window + batch_size))
                _classify(model, processor, plan, batch, buffer, audio, rate, outputs)
                next_window = batch[-1] + 1
                bar.update(len(batch))
                if next_window < len(plan.starts):
                    for index in [i for i in buffer if i < still_needed[next_window]]:
                        del buffer[index]
        bar.close()
        frames_decoded, num_frames = reader.frames_decoded, reader.num_frames

    config = model.config
    labels = [config.id2label[i] for i in range(config.num_labels)]
    probabilities = _concatenate(outputs["fusion"])
    smoothed = smooth_track(probabilities, smooth)
    result = EmotionTimeline(
        video=video if isinstance(video, str) else reader.name, labels=labels,
        polarity_ids=list(config.polarity_ids), duration=duration, fps=fps, window=window, stride=stride,
        smooth=smooth, starts=plan.starts, ends=plan.ends, probabilities=probabilities, smoothed=smoothed,
        visual_probabilities=_concatenate(outputs["visual"]), audio_probabilities=_concatenate(outputs["audio"]),
        has_audio=audio.problem is None,
        segments=change_segments((plan.starts + plan.ends) / 2, smoothed, labels, duration),
        frames_decoded=frames_decoded, num_frames=num_frames, peak_buffered_frames=peak_buffered)
    result.seconds = time.perf_counter() - started
    return result


def _classify(model, processor, plan: WindowPlan, batch: range, buffer: dict[int, np.ndarray],
              audio: "StreamingAudio | _WholeAudio", rate: int, outputs: dict[str, list[np.ndarray]]) -> None:
    """Class probabilities of the windows `batch` (frames from `buffer`, each window's stretch of the soundtrack)
    for the fused head and each branch."""
    frames = [np.stack([buffer[i] for i in plan.indices[k].tolist()]) for k in batch]  # already sampled, eval mode
    clips = processor.video_processor(frames, do_sample_frames=False, return_tensors="pt")["pixel_values_videos"]
    waveforms = [audio.read(round(plan.starts[k] * rate), round(plan.ends[k] * rate)) for k in batch]
    features = processor.feature_extractor(waveforms, return_tensors="pt")
    predictions = predict_clips(model, {"pixel_values_videos": clips, **features})
    outputs["fusion"].append(predictions.probabilities.numpy())
    for branch, probabilities in predictions.branch_probabilities.items():
        outputs[branch].append(probabilities.numpy())


@dataclass
class _WholeAudio:
    """A soundtrack decoded whole, with `StreamingAudio`'s `read` and `problem`."""

    waveform: Optional[np.ndarray]
    problem: Optional[str]

    def read(self, begin: int, end: int) -> Optional[np.ndarray]:
        return None if self.waveform is None else self.waveform[begin:end]


def _concatenate(chunks: list[np.ndarray]) -> Optional[np.ndarray]:
    return np.concatenate(chunks) if chunks else None


__all__ = ["EmotionTimeline", "emotion_timeline", "plan_windows", "smooth_track", "change_segments"]


# --------------------------------------------------------------------------------------------------- command line
def timeline_command(args) -> int:
    """`avcpnet timeline` (arguments: `apps/cli.py`): write the timeline files, print the segments and the speed."""
    import sys
    import warnings

    from .loading import load_pipeline
    from ..processing_avcpnet import MissingAudioWarning
    from ..media_avcpnet import MediaError

    if args.window <= 0 or args.stride <= 0 or args.batch_size < 1 or args.smooth < 1 or args.threads < 0:
        print("error: --window and --stride must be > 0, --batch_size and --smooth >= 1, --threads >= 0",
              file=sys.stderr)
        return 2
    if not os.path.isfile(args.video):
        print(f"error: {args.video}: no such file", file=sys.stderr)
        return 2
    output_dir = args.output_dir or os.path.splitext(args.video)[0] + "_timeline"
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        pipe = load_pipeline(args.model, device=args.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingAudioWarning)
            timeline = emotion_timeline(pipe, args.video, window=args.window, stride=args.stride,
                                        batch_size=args.batch_size, smooth=args.smooth, progress=not args.quiet)
    except MediaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        torch.set_num_threads(threads)
    paths = timeline.save(output_dir, plot=not args.no_plot, branches=args.branches)
    for segment in timeline.segments:
        print(f"{segment['start']:9.2f} - {segment['end']:9.2f} s  {segment['label']:<12} {segment['score']:.2f}")
    audio = "" if timeline.has_audio else " (no audio track: vision alone)"
    print(f"avcpnet timeline: {len(timeline.starts)} windows of {args.window:g} s every {args.stride:g} s over "
          f"{timeline.duration:.1f} s of video{audio} in {timeline.seconds:.1f} s "
          f"({timeline.realtime_factor:.1f}x real time) -> {', '.join(paths.values())}")
    return 0
