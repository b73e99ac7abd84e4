"""A training cache of clips re-encoded at the model's input size, so that DataLoader workers keep a GPU fed.

Decoding is what limits the input pipeline: a 10-s 640x360 H.264 clip has one keyframe in 250 frames, so reading
16 snippets decodes nearly every frame at full size, then scales it down to a 112-pixel short side. The cache does
that work once: [`cache_split_media`] writes each clip of a split as an MP4 file whose frames are the ones the
processor would have read (upright, short side resized in FFmpeg's scaler exactly as `MediaReader.read_frames`
does), encoded with a keyframe every `frames_per_segment` frames (a snippet then decodes at most two short runs),
and whose audio stream is the source's own packets, copied (the same samples, so the same MFCC). The split's
`video` column then points at the cached files, and training runs the unchanged processor on them.

What stays the same: the frame count and order (the segment sampling, the random snippet offsets and crops are
those of the reference path: resume stays exact), the pixels and the audio samples (`pixel_values_videos` and
`input_features` are equal to the reference path's: `tests/test_media_cache.py`, `benchmarks/bench_gpu.py`),
bad-clip handling (a clip that cannot be decoded is not cached; its row keeps the original path, so training reports
it exactly as before). The frames are stored as lossless H.264 in RGB (`libx264rgb`, `crf` 0): no RGB -> YUV
rounding, and the decoder hands out planar RGB that needs no colour conversion (`frame_to_rgb` takes the planes as
they are, where a YUV frame costs FFmpeg's scaler 15x more than the copy). Lossless 112-pixel frames take about as
much disk as the full-size source (0.1 MB per second of video at 30 fps). Cached names
hash the source path, size and modification time plus the encoding settings, so an edited source or other settings
give a new file, and an interrupted preparation resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from typing import Optional

import datasets
import numpy as np

CACHE_FORMAT = 2  # bump when the encoding changes: old cached files are then not reused
CHUNK_FRAMES = 256  # frames decoded and encoded at a time (bounded memory for long videos)


def cached_clip_name(source: str, shortest_edge: int, keyframe_interval: int, crf: int) -> str:
    """`<digest>.mp4`: a function of the source file (path, size, mtime) and the encoding settings."""
    stat = os.stat(source)
    key = f"{CACHE_FORMAT}|{os.path.abspath(source)}|{stat.st_size}|{stat.st_mtime_ns}|{shortest_edge}|" \
          f"{keyframe_interval}|{crf}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + ".mp4"


def write_cached_clip(source: str, target: str, shortest_edge: int, keyframe_interval: int = 8,
                      crf: int = 0) -> None:
    """Re-encode `source`'s video at `shortest_edge` and copy its first audio stream into `target` (MP4: its edit
    list keeps the AAC priming samples out of the decoded audio, as in the source; Matroska would not).

    Raises `MediaError` (from the media layer) when the source cannot be decoded; writes to a temporary name and
    renames, so a killed preparation never leaves a truncated file under the final name."""
    partial = f"{target}.partial-{os.getpid()}.mp4"
    try:
        _encode(source, partial, shortest_edge, keyframe_interval, crf)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    os.replace(partial, target)


def _encode(source: str, partial: str, shortest_edge: int, keyframe_interval: int, crf: int) -> None:
    import av

    from ..media_avcpnet import MediaReader, output_size

    with MediaReader(source, require_video=True, threads=1) as reader, av.open(source) as audio_source, \
            av.open(partial, "w") as output:
        num_frames = reader.num_frames
        height, width = output_size(*reader.size, shortest_edge)
        rate = Fraction(reader.fps or 25).limit_denominator(1001)
        video = output.add_stream("libx264rgb", rate=rate)  # lossless RGB: decodes to planar RGB, bit-exact
        video.width, video.height, video.pix_fmt = width, height, "rgb24"
        video.options = {"crf": str(crf), "g": str(keyframe_interval), "keyint_min": str(keyframe_interval),
                         "bf": "0", "sc_threshold": "0", "preset": "veryfast", "tune": "fastdecode"}
        video.thread_count = 1
        # Every stream exists before the first packet is written (the header is written then).
        audio_in = audio_source.streams.audio[0] if audio_source.streams.audio else None
        audio_out = output.add_stream_from_template(audio_in) if audio_in is not None else None
        for start in range(0, num_frames, CHUNK_FRAMES):
            frames = reader.read_frames(np.arange(start, min(start + CHUNK_FRAMES, num_frames)), shortest_edge)
            for index, array in enumerate(frames, start):
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts = index
                output.mux(video.encode(frame))
        output.mux(video.encode(None))
        if audio_in is not None:  # the source's packets, not re-encoded: the same samples
            for packet in audio_source.demux(audio_in):
                if packet.dts is None:  # the demuxer's final flush packet
                    continue
                packet.stream = audio_out
                output.mux(packet)


class _CacheClips:
    """`datasets.map` function (picklable for `num_proc`): the `video` path of each row -> its cached copy, and
    the soundtrack's MFCC -> the `mfcc` column (empty where the processor is to decode the soundtrack itself: no
    usable soundtrack, or a clip that stays uncached). Holds settings only (a stable `datasets` fingerprint); the
    feature extractor is built from its saved settings in each process."""

    def __init__(self, cache_dir: str, shortest_edge: int, keyframe_interval: int, crf: int,
                 feature_extractor_settings: dict):
        self.cache_dir, self.shortest_edge = cache_dir, shortest_edge
        self.keyframe_interval, self.crf = keyframe_interval, crf
        self.feature_extractor_settings = feature_extractor_settings
        self.cache_format = CACHE_FORMAT  # in the state, so in `datasets`' fingerprint: a new format maps anew
        self._processor = None

    def __getstate__(self):
        return dict(self.__dict__, _processor=None)

    def no_mfcc(self) -> np.ndarray:
        """The empty entry: the processor decodes this row's soundtrack itself."""
        return np.zeros((0, self.feature_extractor_settings["num_mfcc"]), np.float32)

    def mfcc(self, video: str, audio) -> np.ndarray:
        import torch

        from datasets_emotions.transforms import _media

        from ..feature_extraction_avcpnet import AVCPNetFeatureExtractor
        from ..processing_avcpnet import AVCPNetProcessor

        if self._processor is None:
            self._processor = AVCPNetProcessor(
                feature_extractor=AVCPNetFeatureExtractor.from_dict(self.feature_extractor_settings))
        # One thread, as in a DataLoader worker, and no OpenMP pool in a process that `datasets` forked from one
        # that had one (a child entering OpenMP then deadlocks).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            mfcc = self._processor.soundtrack_mfcc(video, _media(audio))
        except ValueError:  # a soundtrack that cannot be decoded: left to the processor, which reports it
            mfcc = None
        finally:
            torch.set_num_threads(threads)
        return mfcc if mfcc is not None else self.no_mfcc()

    def cached(self, source):
        if not isinstance(source, str) or not os.path.isfile(source):
            return source  # frame folders, bytes, missing files: left to the processor as they are
        target = os.path.join(self.cache_dir, cached_clip_name(source, self.shortest_edge, self.keyframe_interval,
                                                               self.crf))
        if not os.path.exists(target):
            try:
                write_cached_clip(source, target, self.shortest_edge, self.keyframe_interval, self.crf)
            except Exception as error:  # noqa: BLE001 - a bad clip keeps its original path and its error
                # Undecodable sources, and audio codecs MP4 cannot hold (e.g. PCM): the original file, as before.
                if not isinstance(error, ValueError) and not _is_ffmpeg_error(error):
                    raise
                return source
        return target

    def __call__(self, batch: dict) -> dict:
        videos = [self.cached(source) for source in batch["video"]]
        audio = batch.get("audio") or [None] * len(videos)
        mfcc = [self.mfcc(video, entry) if video != source else self.no_mfcc()
                for video, source, entry in zip(videos, batch["video"], audio)]
        return {"video": videos, "mfcc": mfcc}


def _is_ffmpeg_error(error: BaseException) -> bool:
    import av

    return isinstance(error, av.FFmpegError)


def cache_split_media(split, processor, cache_dir: str, num_proc: Optional[int] = None, crf: int = 0):
    """`split` (a `datasets.Dataset` whose `video` column holds file paths) with each clip replaced by its copy in
    `cache_dir`, re-encoded at `processor`'s frame size (see the module docstring); prepared with `num_proc`
    processes (default: all cores), once: later calls find the files (and `datasets` its cached map)."""
    video_processor = processor.video_processor
    shortest_edge = video_processor.size["shortest_edge"]
    os.makedirs(cache_dir, exist_ok=True)
    feature_extractor = processor.feature_extractor
    clips = _CacheClips(os.path.abspath(cache_dir), shortest_edge, video_processor.frames_per_segment, crf,
                        feature_extractor.to_dict())
    num_proc = num_proc or os.cpu_count() or 1
    num_proc = max(1, min(num_proc, len(split)))
    features = split.features.copy()
    features["mfcc"] = datasets.Array2D(shape=(None, feature_extractor.num_mfcc), dtype="float32")
    return split.map(clips, batched=True, batch_size=8, num_proc=num_proc if num_proc > 1 else None,
                     features=features, desc=f"re-encoding clips at {shortest_edge} px into {cache_dir}")


__all__ = ["cache_split_media", "cached_clip_name", "write_cached_clip"]
