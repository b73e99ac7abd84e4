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
from typing import Iterable, Iterator, Optional, Sequence, Union

import av
import numpy as np

PathLike = Union[str, os.PathLike]


# Containers that cannot hold AAC get a codec they can hold (so write_clip("x.mp3", audio=...) just works).
_AUDIO_CODEC_BY_EXTENSION = {".mp3": "libmp3lame", ".wav": "pcm_s16le", ".ogg": "libvorbis", ".flac": "flac"}


def write_clip(
    path: PathLike,
    frames: Optional[Union[np.ndarray, Iterable[np.ndarray]]] = None,
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
    codec_options: Optional[dict] = None,
) -> str:
    """Encode ``frames`` and/or ``audio`` into ``path`` and return the path as a string.

    Args:
        path: output file; the container is chosen from its extension (``.mp4``, ``.avi``, ``.mkv``, ``.m4a`` ...).
        frames: ``(T, H, W, 3)`` uint8 RGB frames, or an iterable of ``(H, W, 3)`` uint8 frames (encoded one at a
            time, so long 720p clips never sit in memory whole), or ``None`` for an audio-only file. Odd sizes are
            kept as they are (encoded as yuv444p when 4:2:0 subsampling cannot represent them).
        fps: nominal frame rate.
        audio: ``(channels, samples)`` or ``(samples,)`` float waveform in [-1, 1], or ``None`` for a silent file
            with no audio stream at all.
        sample_rate: sample rate of ``audio``.
        gop_size: keyframe interval in frames (phones typically use one keyframe every 1-2 s).
        rotation: if given (e.g. 90, -90, 180), written as the stream's display matrix, the way phones store
            portrait video: a counter-clockwise rotation in degrees, read back by PyAV as ``VideoFrame.rotation``;
            the pixels themselves are not rotated. (FFmpeg 7+ ignores the legacy ``rotate`` metadata tag.)
        frame_times: optional presentation time in seconds of each frame, for variable frame rate files.
        codec_options: extra encoder options, e.g. ``{"bf": "2"}`` for B-frames (the ultrafast preset has none).
    """
    path = str(path)
    extension = os.path.splitext(path)[1].lower()
    if audio_codec == "aac" and extension in _AUDIO_CODEC_BY_EXTENSION:
        audio_codec = _AUDIO_CODEC_BY_EXTENSION[extension]
    if frames is None and audio is None:
        raise ValueError("write_clip needs frames, audio or both")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    container = av.open(path, mode="w")
    try:
        video_stream = None
        time_base = fractions.Fraction(1, 90000) if frame_times is not None else None
        if frames is not None:
            frames, height, width = _peek_frames(frames)
            rate = fractions.Fraction(fps).limit_denominator(1001)
            video_stream = container.add_stream(video_codec, rate=rate)
            video_stream.width, video_stream.height = width, height
            odd = width % 2 or height % 2
            if video_codec in ("libx264", "h264"):
                video_stream.pix_fmt = "yuv444p" if odd else "yuv420p"
                video_stream.options = {"crf": str(crf), "preset": preset, "g": str(gop_size),
                                        "keyint_min": str(gop_size), "sc_threshold": "0", **(codec_options or {})}
            else:
                video_stream.pix_fmt = "yuv420p" if not odd else video_stream.pix_fmt
                video_stream.codec_context.gop_size = gop_size
                if codec_options:
                    video_stream.options = dict(codec_options)
            video_stream.thread_type = "FRAME"
            if time_base is not None:
                # Frame timestamps are given in this time base: the encoder must use it too, else it rescales them
                # as if they were at the nominal rate and the muxer rejects the non-increasing result.
                video_stream.time_base = time_base
                video_stream.codec_context.time_base = time_base
            if rotation is not None:
                video_stream.set_display_rotation(float(rotation))
        audio_stream = None
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim == 1:
                audio = audio[None]
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            audio_stream = container.add_stream(audio_codec, rate=sample_rate)
            audio_stream.layout = layout
            if not audio_codec.startswith("pcm_") and audio_codec != "flac":
                audio_stream.bit_rate = audio_bit_rate

        if video_stream is not None:
            for index, rgb in enumerate(frames):
                if rgb.shape != (height, width, 3) or rgb.dtype != np.uint8:
                    raise ValueError(f"frame {index} is {rgb.shape} {rgb.dtype}, expected ({height}, {width}, 3) uint8")
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


def _peek_frames(frames) -> tuple[Iterator[np.ndarray], int, int]:
    """Return an iterator over the frames plus their height and width, looking only at the first frame."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(f"frames must be (T, H, W, 3) uint8 with T > 0, got {frames.shape} {frames.dtype}")
        return iter(frames), frames.shape[1], frames.shape[2]
    iterator = iter(frames)
    try:
        first = np.asarray(next(iterator))
    except StopIteration:
        raise ValueError("frames is empty") from None
    if first.ndim != 3 or first.shape[-1] != 3:
        raise ValueError(f"each frame must be (H, W, 3) uint8, got {first.shape}")

    def chain():
        yield first
        for frame in iterator:
            yield np.asarray(frame)

    return chain(), first.shape[0], first.shape[1]


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


def textured_frames(num_frames: int, height: int, width: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield ``num_frames`` ``(H, W, 3)`` uint8 frames of a smooth random texture panning diagonally, with a moving
    square and a frame counter band on top: enough detail and motion that H.264 decoding costs about what phone
    footage costs (flat synthetic frames decode unrealistically fast). Frames are generated one at a time."""
    rng = np.random.default_rng(seed)
    tile = 64
    coarse = rng.integers(0, 256, size=((height + 2 * num_frames) // tile + 3, (width + num_frames) // tile + 3, 3),
                          dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, tile, axis=0), tile, axis=1)
    noise = rng.integers(0, 24, size=(texture.shape[0], texture.shape[1], 1), dtype=np.uint8)
    texture = texture // 2 + noise
    square = max(2, min(height, width) // 6)
    for index in range(num_frames):
        frame = texture[2 * index:2 * index + height, index:index + width].copy()
        x = (index * 7) % max(1, width - square)
        y = (index * 3) % max(1, height - square)
        frame[y:y + square, x:x + square] = (255, 64, 64)
        frame[:4, :, :] = index % 256
        yield frame


def truncated_copy(source: PathLike, destination: PathLike, keep_fraction: float = 0.5) -> str:
    """Copy the first ``keep_fraction`` of ``source``'s bytes to ``destination`` (a download cut short)."""
    data = open(source, "rb").read()
    with open(destination, "wb") as handle:
        handle.write(data[: int(len(data) * keep_fraction)])
    return str(destination)


def write_frame_folder(folder: PathLike, frames: np.ndarray, start_number: int = 1, quality: int = 95) -> str:
    """Write ``(T, H, W, 3)`` uint8 frames as ``%06d.jpg`` files numbered from ``start_number`` (the eMotions
    release layout: one folder of extracted frames per clip, the soundtrack as an mp3 beside it)."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for offset, frame in enumerate(np.asarray(frames)):
        Image.fromarray(frame).save(os.path.join(folder, f"{start_number + offset:06d}.jpg"), quality=quality)
    return str(folder)
