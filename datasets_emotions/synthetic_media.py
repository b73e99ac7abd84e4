"""Write small synthetic video files with PyAV.

Used by the generated ``sample`` dataset, by the tests (which make all their media themselves) and by the
benchmarks. Nothing here downloads anything.

``write_clip`` encodes frames (``(T, H, W, 3)`` uint8 RGB) and/or a waveform (``(channels, samples)`` float32 in
[-1, 1]) into one container. Defaults mimic phone uploads: H.264 in mp4 with AAC audio, frame-threaded encoding
(PyAV's default writes two slices per frame, which decodes unrealistically fast) and a fixed keyframe interval.
"""

from __future__ import annotations

import fractions
import os
from typing import Optional, Sequence, Union

import av
import numpy as np

PathLike = Union[str, os.PathLike]


def write_clip(
    path: PathLike,
    frames: Optional[np.ndarray] = None,
    fps: float = 30,
    audio: Optional[np.ndarray] = None,
    sample_rate: int = 44100,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    gop_size: int = 60,
    crf: int = 23,
    preset: str = "ultrafast",
    rotation: Optional[int] = None,
    frame_times: Optional[Sequence[float]] = None,
    audio_bit_rate: int = 64000,
) -> str:
    """Encode ``frames`` and/or ``audio`` into ``path`` and return the path as a string.

    Args:
        path: output file; the container is chosen from its extension (``.mp4``, ``.avi``, ``.mkv``, ``.m4a`` ...).
        frames: ``(T, H, W, 3)`` uint8 RGB frames, or ``None`` for an audio-only file. Odd sizes are kept as they
            are (encoded as yuv444p when 4:2:0 subsampling cannot represent them).
        fps: nominal frame rate.
        audio: ``(channels, samples)`` or ``(samples,)`` float waveform in [-1, 1], or ``None`` for a silent file
            with no audio stream at all.
        sample_rate: sample rate of ``audio``.
        gop_size: keyframe interval in frames (phones typically use one keyframe every 1-2 s).
        rotation: if given (90, 180, 270), written as the stream's display-matrix rotation, the way phones store
            portrait video; the pixels themselves are not rotated.
        frame_times: optional presentation time in seconds of each frame, for variable frame rate files.
    """
    path = str(path)
    if frames is None and audio is None:
        raise ValueError("write_clip needs frames, audio or both")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    container = av.open(path, mode="w")
    try:
        video_stream = None
        time_base = fractions.Fraction(1, 90000) if frame_times is not None else None
        if frames is not None:
            frames = np.asarray(frames)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
            height, width = frames.shape[1:3]
            rate = fractions.Fraction(fps).limit_denominator(1001)
            video_stream = container.add_stream(video_codec, rate=rate)
            video_stream.width, video_stream.height = width, height
            odd = width % 2 or height % 2
            if video_codec in ("libx264", "h264"):
                video_stream.pix_fmt = "yuv444p" if odd else "yuv420p"
                video_stream.options = {"crf": str(crf), "preset": preset, "g": str(gop_size),
                                        "keyint_min": str(gop_size), "sc_threshold": "0"}
            else:
                video_stream.pix_fmt = "yuv420p" if not odd else video_stream.pix_fmt
                video_stream.codec_context.gop_size = gop_size
            video_stream.thread_type = "FRAME"
            if time_base is not None:
                video_stream.time_base = time_base
            if rotation is not None:
                # PyAV exposes the display matrix through stream side data on recent versions; fall back to the
                # legacy "rotate" metadata tag, which FFmpeg's mp4 muxer turns into a display matrix.
                video_stream.metadata["rotate"] = str(int(rotation) % 360)
        audio_stream = None
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim == 1:
                audio = audio[None]
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            audio_stream = container.add_stream(audio_codec, rate=sample_rate)
            audio_stream.layout = layout
            audio_stream.bit_rate = audio_bit_rate

        if video_stream is not None:
            for index, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                if time_base is not None:
                    frame.pts = int(round(frame_times[index] / time_base))
                    frame.time_base = time_base
                for packet in video_stream.encode(frame):
                    container.mux(packet)
            for packet in video_stream.encode():
                container.mux(packet)

        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio, sample_rate)
    finally:
        container.close()
    return path


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    """Feed planar float audio to the encoder in chunks; the encoder's resampler handles the format."""
    chunk = 1024
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    pts = 0
    for start in range(0, audio.shape[1], chunk):
        block = np.ascontiguousarray(audio[:, start:start + chunk])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = pts
        pts += block.shape[1]
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def tone(frequency: float, duration: float, sample_rate: int = 44100, amplitude: float = 0.3,
         tempo_hz: float = 0.0) -> np.ndarray:
    """A sine tone of ``duration`` seconds, optionally gated on and off ``tempo_hz`` times per second.

    Returns ``(1, samples)`` float32.
    """
    t = np.arange(int(round(duration * sample_rate))) / sample_rate
    wave = amplitude * np.sin(2 * np.pi * frequency * t)
    if tempo_hz > 0:
        wave = wave * (np.sin(2 * np.pi * tempo_hz * t) > 0)
    return wave.astype(np.float32)[None]


def moving_square_frames(num_frames: int, height: int, width: int, color=(255, 64, 64), background=0,
                         speed: float = 2.0, square: int = 0) -> np.ndarray:
    """Frames with a coloured square moving left to right at ``speed`` pixels per frame and a frame counter
    drawn as a gradient band, so that every frame differs. Returns ``(T, H, W, 3)`` uint8."""
    square = square or max(2, min(height, width) // 4)
    frames = np.full((num_frames, height, width, 3), background, dtype=np.uint8)
    for index in range(num_frames):
        x = int(index * speed) % max(1, width - square)
        y = (height - square) // 2
        frames[index, y:y + square, x:x + square] = color
        frames[index, :2, :, :] = index % 256
    return frames
