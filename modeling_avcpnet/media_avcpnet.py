"""The one media layer: every PyAV decode of the project (video snippets, soundtracks, probing) and frame folders.

- `MediaReader` opens a file once and makes one demuxing pass over it (packets only, no video decoding: about
  0.06 s per minute of 720p video) that records the presentation timestamp and keyframe flag of every video packet
  and, when asked, decodes the audio track to mono float32 at the requested rate. `read_frames(indices)` then
  decodes only the runs of packets from the keyframe before each wanted frame through that frame: it seeks when the
  next wanted frame lies beyond another keyframe, and keeps decoding forward otherwise, so a short clip or densely
  sampled frames are decoded once, front to back. Only the wanted frames are converted to RGB, resized inside
  FFmpeg's scaler (`VideoFrame.to_ndarray(width=, height=)`), never as full-size RGB arrays.
- `FrameFolderReader` reads a folder of extracted frames (`000001.jpg`, `000002.jpg`, ...: the eMotions release
  layout) with the same `num_frames` / `read_frames` interface; `open_video` picks the reader for a source.
- `load_audio(source, sampling_rate)`: a file's first audio stream as a mono float32 waveform.
- `probe_media(path)`: stream information from the container headers only (no decoding), for cheap checks.
- `VIDEO_EXTENSIONS`: the file extensions scanned as videos (CLI, dataset builders).

Frame `i` is the `i`-th frame in presentation order, the same numbering as decoding every frame front to back
(`transformers.video_utils.load_video(..., backend="pyav")`), also for variable frame rate files and B-frames:
decoded frames are identified by their timestamp, not by counting after a seek. The display matrix rotation that
phones write for portrait video is applied, so frames come out upright.

Bad media raises `MediaError` (`VideoDecodingError` is the same class under its older name), a `ValueError` whose
message names the file and the problem. This module imports only numpy at import time (PyAV when first used, Pillow
for frame folders), so dataset preparation can probe files without loading torch or transformers.

Why one file of ~700 lines: it is the single media layer (one error type, one reader) and it travels into Hub
repos as one file, next to the processors that import it.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    import av


MediaSource = Union[str, os.PathLike, bytes, bytearray, memoryview, io.IOBase, dict]

# Extensions scanned as videos in folders (lower case, with the dot); a file named explicitly is read whatever its
# extension.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".m4v", ".3gp", ".wmv", ".mpg", ".mpeg", ".ts")
FRAME_FILE_PATTERN = re.compile(r"^(\d+)\.(jpe?g|png)$", re.IGNORECASE)


class MissingAudioWarning(UserWarning):
    """A sample has no usable audio: its audio features are zeros and its `audio_mask` is False."""


class MediaError(ValueError):
    """Raised for media that cannot be decoded as asked; the message names the file and the problem."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")

    def __reduce__(self):  # picklable across DataLoader workers with both arguments
        return type(self), (self.name, self.problem)


VideoDecodingError = MediaError  # the name before the media layer was unified; kept for old imports


def is_media_error(error: BaseException) -> bool:
    """True for a `MediaError` from any copy of this module: the package's, or the one a Hub folder carries and
    transformers imports under another module name (`trust_remote_code`), which is another class of the same name.
    A pipeline loaded from a folder may meet a processor from the installed package, or the other way round."""
    return isinstance(error, ValueError) and any(cls.__name__ == "MediaError" for cls in type(error).__mro__)


def describe_source(source) -> str:
    """A short name for `source` to put in error messages: the path, a file object's name, or `<N bytes>`."""
    if isinstance(source, dict):
        return str(source.get("path") or describe_source(source.get("bytes") or b""))
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes in memory>"
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, (str, os.PathLike)) else f"<{type(source).__name__}>"


def _open_container(source: MediaSource, name: str):
    """`av.open` for a path, bytes, a file object or a datasets-style `{"path", "bytes"}` dict, with the checks
    that give a clear message (missing, a directory, empty) before FFmpeg's own."""
    import av

    if isinstance(source, dict):  # datasets Audio/Video(decode=False) value
        source = source.get("bytes") or source.get("path")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise MediaError(name, "file not found")
        if os.path.isdir(path):
            raise MediaError(name, "is a directory, not a media file")
        if os.path.getsize(path) == 0:
            raise MediaError(name, "file is empty (0 bytes)")
        target = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaError(name, "no data (0 bytes)")
        target = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        target = source
    else:
        raise TypeError(f"cannot read media from a {type(source).__name__}; pass a path, bytes or a file object")
    try:
        return av.open(target, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(name, f"not a readable media file ({_reason(error)})") from error


def output_size(height: int, width: int, shortest_edge: Optional[int]) -> tuple[int, int]:
    """`(height, width)` after resizing the short side to `shortest_edge`, keeping the aspect ratio."""
    if not shortest_edge:
        return height, width
    scale = shortest_edge / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def frame_to_rgb(frame: "av.VideoFrame", shortest_edge: Optional[int] = None,
                 interpolation: str = "BILINEAR") -> np.ndarray:
    """Convert one decoded frame to upright `(H, W, 3)` uint8 RGB, its short side resized to `shortest_edge`.

    The resize happens in FFmpeg's scaler together with the YUV to RGB conversion (cheaper than converting the
    full-size frame first). The frame's display-matrix rotation (phones store portrait video as rotated landscape)
    is applied after resizing. This is the one conversion function used for every decoded frame.
    """
    quarter_turns = _quarter_turns(frame)
    upright_h, upright_w = (frame.width, frame.height) if quarter_turns % 2 else (frame.height, frame.width)
    out_h, out_w = output_size(upright_h, upright_w, shortest_edge)
    if quarter_turns % 2:
        out_h, out_w = out_w, out_h  # size in the stored orientation
    if (out_h, out_w) == (frame.height, frame.width) and frame.format.name == "gbrp":
        # Planar RGB (the media cache's lossless H.264 RGB): the planes as they are, 15x cheaper than the scaler.
        array = frame.to_ndarray()
    elif (out_h, out_w) == (frame.height, frame.width):
        array = frame.to_ndarray(format="rgb24")
    else:
        array = frame.to_ndarray(width=out_w, height=out_h, format="rgb24", interpolation=interpolation)
    if quarter_turns:
        array = np.ascontiguousarray(np.rot90(array, k=quarter_turns))
    return array


# -- probing --------------------------------------------------------------------------------------------------------


@dataclass
class MediaInfo:
    """What the container headers say about a file (nothing is decoded to find it)."""

    name: str
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    declared_frames: int = 0  # 0 when the container does not say (e.g. .mkv, .webm)
    fps: Optional[float] = None
    duration: Optional[float] = None  # seconds, when known
    audio_sample_rate: Optional[int] = None


def probe_media(source: MediaSource, require_video: bool = False) -> MediaInfo:
    """Open `source` and read its stream headers only: a cheap readability check (a few ms per file).

    Raises `MediaError` for a missing, empty or non-media file, and with `require_video` for a file without a video
    stream or whose video stream has no frame size. A file whose header is intact but whose later packets are
    damaged passes: `MediaReader` finds that out when it indexes the file.
    """
    import av

    name = describe_source(source)
    container = _open_container(source, name)
    try:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        info = MediaInfo(name=name, has_video=video is not None, has_audio=audio is not None,
                         duration=container.duration / 1_000_000 if container.duration else None,
                         audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None)
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            info.width, info.height = video.codec_context.width or 0, video.codec_context.height or 0
            info.declared_frames, info.fps = video.frames or 0, float(rate) if rate else None
    except av.FFmpegError as error:
        raise MediaError(name, f"stream headers cannot be read ({_reason(error)})") from error
    finally:
        container.close()
    if require_video and not info.has_video:
        raise MediaError(name, "has no video stream" + (" (an audio-only file)" if info.has_audio else ""))
    if require_video and not (info.width and info.height):
        raise MediaError(name, "video stream without a frame size")
    return info


# -- audio ----------------------------------------------------------------------------------------------------------


def load_audio(source: MediaSource, sampling_rate: int, max_seconds: Optional[float] = None) -> np.ndarray:
    """The first audio stream of a media file (audio or video) as mono float32 at `sampling_rate`: `(samples,)`.

    With `max_seconds`, only the central `max_seconds` of a longer soundtrack are decoded. Raises `MediaError` when
    the file has no audio stream or it cannot be decoded.
    """
    with MediaReader(source, require_video=False, audio_sample_rate=sampling_rate, audio_max_seconds=max_seconds,
                     index_video=False) as reader:
        if reader.audio is None:
            raise MediaError(reader.name, reader.audio_problem or "has no audio stream")
        return reader.audio


class _OpenContainer:
    """Owns an open PyAV container (`self._container`): `close()`, and use as a context manager."""

    _container = None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamingAudio(_OpenContainer):
    """The first audio stream of a media file, decoded forward on demand to mono float32 at `rate`, holding only the
    samples still to be read: memory stays flat in the file's length (the emotion timeline over a whole film, where
    `MediaReader(audio_sample_rate=...)` would hold the soundtrack: 10.6 MB per minute at 44.1 kHz).

    `read(begin, end)` returns the samples `[begin, end)` counted from the first decoded sample: exactly
    `MediaReader(source, audio_sample_rate=rate).audio[begin:end]` (shorter, or empty, past the end of the track).
    `begin` must not decrease from one call to the next (samples before it are dropped). `read` returns None when
    there is no usable audio: no audio stream, a track with no decodable samples, or a decoding error (from then
    on); `problem` says which. Paths, bytes and `{"path", "bytes"}` dicts (a second container is opened, so a file
    object, which the video reader is reading, is not accepted).
    """

    def __init__(self, source: MediaSource, rate: int):
        if hasattr(source, "read"):
            raise TypeError("StreamingAudio needs a path or bytes (it opens its own container), not a file object")
        self.name, self.rate = describe_source(source), rate
        self._container = _open_container(source, self.name)
        streams = self._container.streams.audio
        self.problem: Optional[str] = None if streams else "has no audio stream"
        self._track = _AudioTrack(streams[0], rate, None) if streams else None
        self._packets = self._container.demux(streams[0]) if streams else iter(())
        self._buffer = np.zeros(0, np.float32)
        self._offset = 0  # position of _buffer[0] in the whole track
        self._ended = self._track is None

    def read(self, begin: int, end: int) -> Optional[np.ndarray]:
        if begin < self._offset:
            raise ValueError(f"{self.name}: audio is read forward only (asked for sample {begin}, already past "
                             f"{self._offset})")
        while not self._ended and self._offset + len(self._buffer) < end:
            self._decode_some()
        if self.problem is not None:
            return None
        if begin > self._offset:  # a copy, so that the dropped samples are freed
            self._buffer = self._buffer[begin - self._offset:].copy()
            self._offset = begin
        return self._buffer[:max(0, end - begin)].copy()

    def _decode_some(self, packets: int = 16) -> None:
        import av

        track = self._track
        try:
            for _ in range(packets):
                track.decode(next(self._packets))
        except StopIteration:
            self._ended = True
        except (av.FFmpegError, EOFError):
            self._ended = True  # a truncated file: keep what could be read, as MediaReader does
        if self._ended:
            track.flush()
        if track.problem is not None:
            self.problem, self._ended = track.problem, True
        elif track.chunks:
            self._buffer = np.concatenate([self._buffer, *track.chunks]).astype(np.float32, copy=False)
            track.chunks.clear()
        if self._ended and self.problem is None and self._offset + len(self._buffer) == 0:
            self.problem = "audio stream holds no decodable samples"


# -- frame folders --------------------------------------------------------------------------------------------------


def is_frame_folder(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike)) and os.path.isdir(source)


class FrameFolderReader:
    """A folder of extracted frames, `000001.jpg`, `000002.jpg`, ... (`.jpg`, `.jpeg` or `.png`, numbered in any
    width), read with the same `num_frames` / `read_frames` interface as `MediaReader`. Frames are numbered in the
    order of their file numbers. Raises `MediaError` for a folder without frame images."""

    has_video = True
    audio = None
    audio_problem = "a frame folder has no audio"
    resizes_while_decoding = False  # read_frames returns full-size images

    def __init__(self, folder: Union[str, os.PathLike]):
        self.name = os.fspath(folder)
        numbered = []
        for name in os.listdir(self.name):
            match = FRAME_FILE_PATTERN.match(name)
            if match:
                numbered.append((int(match.group(1)), name))
        if not numbered:
            raise MediaError(self.name, "folder holds no frame images (expected 000001.jpg, 000002.jpg, ...)")
        self.files = [os.path.join(self.name, name) for _, name in sorted(numbered)]

    @property
    def num_frames(self) -> int:
        return len(self.files)

    def read_frames(self, indices: Sequence[int]) -> np.ndarray:
        """The images at `indices` (any order, repeats allowed) as `(len(indices), H, W, 3)` uint8 RGB, full size;
        each image is read once."""
        from PIL import Image

        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_frames):
            raise MediaError(self.name, f"frame indices must lie in [0, {self.num_frames}), got "
                                        f"{indices.min()}..{indices.max()}")
        loaded: dict[int, np.ndarray] = {}
        for index in np.unique(indices).tolist():
            try:
                with Image.open(self.files[index]) as image:
                    loaded[index] = np.asarray(image.convert("RGB"))
            except (OSError, ValueError) as error:
                raise MediaError(self.files[index], f"frame image cannot be read ({error})") from error
        shapes = {frame.shape for frame in loaded.values()}
        if len(shapes) > 1:
            raise MediaError(self.name, f"frame images differ in size: {sorted(shapes)}")
        return np.stack([loaded[i] for i in indices.tolist()])

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameFolderReader":
        return self

    def __exit__(self, *exc) -> None:
        pass


def open_video(source: MediaSource, audio_sample_rate: Optional[int] = None,
               audio_max_seconds: Optional[float] = None, threads: int = 0):
    """A `FrameFolderReader` for a folder, else a `MediaReader` requiring a video stream (see its arguments)."""
    if is_frame_folder(source):
        return FrameFolderReader(source)
    return MediaReader(source, require_video=True, audio_sample_rate=audio_sample_rate,
                       audio_max_seconds=audio_max_seconds, threads=threads)


# -- video files ----------------------------------------------------------------------------------------------------


@dataclass
class VideoIndex:
    """Timestamps of the video packets in presentation order, and which of them are keyframes."""

    pts: np.ndarray  # (num_frames,) int64, sorted
    keyframes: np.ndarray  # (num_keyframes,) int64 frame indices, sorted


class MediaReader(_OpenContainer):
    """One open media file: its video packet index, optionally its decoded soundtrack, and `read_frames`.

    Args:
        source: a path, `bytes`, a seekable binary file object, or a `{"path", "bytes"}` dict (datasets style).
        require_video: raise `MediaError` when the file has no video stream (else `num_frames` is 0).
        audio_sample_rate: when given, decode the first audio stream to mono float32 at this rate during the
            indexing pass (`self.audio`, shape `(samples,)`; `None` when there is no audio stream, with the reason in
            `self.audio_problem`).
        audio_max_seconds: when given and the soundtrack is longer, decode only its central `audio_max_seconds`
            (the features use a centre crop anyway), so that a 10-minute file costs about what a 1-minute one does.
        threads: decoder threads (0: FFmpeg picks, from the CPU count).
        index_video: False to leave the video stream alone (no packet index, `num_frames` 0): audio only.

    Use as a context manager, or call `close()`.
    """

    # read_frames takes `shortest_edge` (a class attribute rather than an isinstance check: a Hub folder's copy of
    # this module, imported through trust_remote_code, holds other classes of the same names)
    resizes_while_decoding = True

    def __init__(self, source: MediaSource, require_video: bool = True, audio_sample_rate: Optional[int] = None,
                 audio_max_seconds: Optional[float] = None, threads: int = 0, index_video: bool = True):
        self.name = describe_source(source)
        self.audio: Optional[np.ndarray] = None
        self.audio_problem: Optional[str] = None
        self.frames_decoded = 0  # video frames decoded so far by read_frames (a cost measure: seeking keeps it low)
        self._container = _open_container(source, self.name)
        try:
            self._index_and_decode_audio(require_video, audio_sample_rate, audio_max_seconds, threads, index_video)
        except BaseException:
            self.close()
            raise

    # -- opening and indexing -------------------------------------------------------------------------------------

    def _fail(self, problem: str) -> MediaError:
        return MediaError(self.name, problem)

    def _index_and_decode_audio(self, require_video: bool, audio_sample_rate: Optional[int],
                                audio_max_seconds: Optional[float], threads: int, index_video: bool) -> None:
        import av

        container = self._container
        video = container.streams.video[0] if container.streams.video and index_video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and require_video and index_video:
            kind = "an audio-only file" if audio is not None else "no audio stream either"
            raise self._fail(f"has no video stream ({kind}); a video is required")
        if audio_sample_rate is not None and audio is None:
            self.audio_problem = "has no audio stream"
        self._video = video
        self._rotation: Optional[int] = None
        if video is not None:
            video.thread_type = "AUTO"
            video.thread_count = threads

        track = None
        if audio is not None and audio_sample_rate is not None:
            track = _AudioTrack(audio, audio_sample_rate, audio_max_seconds)
        wanted = [stream for stream in (video, audio if track is not None else None) if stream]
        pts, keyframe_pts, missing_pts = [], [], 0
        try:
            for packet in container.demux(wanted):
                if packet.stream is video:
                    if packet.size == 0:
                        continue
                    if packet.pts is None:
                        missing_pts += 1
                        continue
                    pts.append(packet.pts)
                    if packet.is_keyframe:
                        keyframe_pts.append(packet.pts)
                elif track is not None:
                    track.decode(packet)
        except av.FFmpegError as error:
            if video is not None and not pts:
                raise self._fail(f"cannot be read ({_reason(error)})") from error
            # A truncated file: keep what could be read; the frame count check below decides.
        if track is not None:
            self.audio, self.audio_problem = track.finish()

        if video is None:
            self.index = VideoIndex(np.zeros(0, np.int64), np.zeros(0, np.int64))
            return
        if missing_pts and pts:
            raise self._fail(f"{missing_pts} video packets have no timestamp; cannot index frames")
        if not pts and missing_pts:
            # No timestamps at all (e.g. raw streams): frames are numbered by counting during a front-to-back decode.
            self.index = None
            self._num_frames_without_pts = missing_pts
            return
        if not pts:
            raise self._fail("video stream has no frames")
        declared = video.frames or 0
        # One frame of slack: FFmpeg's AVI muxer (and so some real .avi files, e.g. CAER) declares one frame more
        # than it stores; a truncated download loses far more than that.
        if declared > len(pts) + 1:
            # A file cut short (e.g. an interrupted download of an mp4 whose index comes first): sampling from the
            # readable part would silently give the wrong frames for the clip.
            raise self._fail(f"truncated or corrupt: the header declares {declared} video frames but only "
                             f"{len(pts)} can be read")
        sorted_pts = np.unique(np.asarray(pts, dtype=np.int64))
        if len(sorted_pts) != len(pts):
            raise self._fail("video stream has duplicate frame timestamps; cannot index frames")
        keyframes = np.searchsorted(sorted_pts, np.asarray(keyframe_pts, dtype=np.int64))
        if len(keyframes) == 0 or keyframes[0] != 0:
            keyframes = np.concatenate([[0], keyframes])  # decoding from the start always works
        self.index = VideoIndex(sorted_pts, np.unique(keyframes))

    # -- properties -----------------------------------------------------------------------------------------------

    @property
    def has_video(self) -> bool:
        return self._video is not None

    @property
    def num_frames(self) -> int:
        """Frames in the video stream (presentation order), counted from the packets."""
        if self._video is None:
            return 0
        return len(self.index.pts) if self.index is not None else self._num_frames_without_pts

    @property
    def fps(self) -> Optional[float]:
        rate = self._video.average_rate or self._video.guessed_rate if self._video is not None else None
        return float(rate) if rate else None

    def frame_times(self) -> np.ndarray:
        """Presentation time in seconds of every frame (presentation order), counted from the first frame; frames
        of a stream without timestamps are spaced by the frame rate (25 fps when unknown)."""
        if self.index is None:
            return np.arange(self.num_frames) / (self.fps or 25.0)
        pts = self.index.pts
        return (pts - pts[0]) * float(self._video.time_base)

    @property
    def rotation(self) -> int:
        """Display-matrix rotation (counter-clockwise degrees, a multiple of 90), read from the first frame."""
        import av

        if self._rotation is None:
            self._rotation = 0
            try:
                self._container.seek(0, stream=self._video, backward=True, any_frame=False)
                for frame in self._container.decode(self._video):
                    self._rotation = _quarter_turns(frame) * 90
                    break
            except av.FFmpegError:
                pass
        return self._rotation

    @property
    def size(self) -> tuple[int, int]:
        """`(height, width)` of the upright frames."""
        height, width = self._video.codec_context.height, self._video.codec_context.width
        return (width, height) if (self.rotation // 90) % 2 else (height, width)

    # -- decoding -------------------------------------------------------------------------------------------------

    def read_frames(self, indices: Sequence[int], shortest_edge: Optional[int] = None,
                    interpolation: str = "BILINEAR") -> np.ndarray:
        """Decode the frames at `indices` (any order, repeats allowed) as `(len(indices), H, W, 3)` uint8 RGB.

        Frames come out upright with their short side resized to `shortest_edge` (full size when `None`).
        Raises `MediaError` if an index is out of range or a wanted frame cannot be decoded.
        """
        import av

        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if not self.has_video:
            raise self._fail("has no video stream")
        if indices.size == 0:
            height, width = output_size(*self.size, shortest_edge)
            return np.zeros((0, height, width, 3), np.uint8)
        if indices.min() < 0 or indices.max() >= self.num_frames:
            raise self._fail(f"frame indices must lie in [0, {self.num_frames}), got {indices.min()}..{indices.max()}")
        wanted = np.unique(indices)
        convert = lambda frame: frame_to_rgb(frame, shortest_edge, interpolation)  # noqa: E731
        try:
            if self.index is None:
                decoded = self._decode_counting(wanted, convert)
            else:
                decoded = self._decode_runs(wanted, convert)
        except av.FFmpegError as error:
            raise self._fail(f"video cannot be decoded ({_reason(error)})") from error
        missing = [int(i) for i in wanted if int(i) not in decoded]
        if missing:
            raise self._fail(f"frames {_short_list(missing)} of {self.num_frames} cannot be decoded "
                             "(truncated or corrupt file)")
        shapes = {decoded[int(i)].shape for i in wanted}
        if len(shapes) > 1:
            raise self._fail(f"frame size changes within the stream ({sorted(shapes)}); not supported")
        return np.stack([decoded[int(i)] for i in indices])

    def _runs(self, wanted: np.ndarray) -> list[tuple[int, list[int]]]:
        """Group the sorted wanted frames into decoding runs `(start keyframe, frames)`: a new run (one seek)
        starts only when a wanted frame lies beyond a keyframe that comes after the previous wanted frame."""
        keyframes = self.index.keyframes
        runs: list[tuple[int, list[int]]] = []
        for frame_index in wanted.tolist():
            keyframe = int(keyframes[np.searchsorted(keyframes, frame_index, side="right") - 1])
            if runs and keyframe <= runs[-1][1][-1]:
                runs[-1][1].append(frame_index)  # decoding forward is no more work than seeking
            else:
                runs.append((keyframe, [frame_index]))
        return runs

    def _decode_runs(self, wanted: np.ndarray, convert) -> dict[int, np.ndarray]:
        pts_table = self.index.pts
        decoded: dict[int, np.ndarray] = {}
        for keyframe, frames in self._runs(wanted):
            targets = {int(pts_table[i]): i for i in frames}
            first_pts, last_pts = int(pts_table[frames[0]]), int(pts_table[frames[-1]])
            self._container.seek(int(pts_table[keyframe]), stream=self._video, backward=True, any_frame=False)
            if not self._decode_until(targets, first_pts, last_pts, decoded, convert):
                # The seek landed after the first wanted frame (an inexact container index): decode from the start.
                self._container.seek(0, stream=self._video, backward=True, any_frame=False)
                self._decode_until(targets, None, last_pts, decoded, convert)
        return decoded

    def _decode_until(self, targets: dict[int, int], first_pts: Optional[int], last_pts: int,
                      decoded: dict[int, np.ndarray], convert) -> bool:
        """Decode forward from the current position, converting the frames whose timestamps are in `targets`,
        until `last_pts`. Returns False without decoding further if the first frame comes after `first_pts`."""
        for frame in self._container.decode(self._video):
            self.frames_decoded += 1
            if frame.pts is None:
                continue
            if first_pts is not None:
                if frame.pts > first_pts:
                    return False
                first_pts = None
            index = targets.get(frame.pts)
            if index is not None and not frame.is_corrupt:  # a concealed, damaged frame counts as not decoded
                decoded[index] = convert(frame)
            if frame.pts >= last_pts:
                break
        return True

    def _decode_counting(self, wanted: np.ndarray, convert) -> dict[int, np.ndarray]:
        """For streams without timestamps: decode front to back, numbering frames by counting."""
        wanted_set, last = set(wanted.tolist()), int(wanted[-1])
        decoded: dict[int, np.ndarray] = {}
        self._container.seek(0)
        for position, frame in enumerate(self._container.decode(self._video)):
            self.frames_decoded += 1
            if position in wanted_set and not frame.is_corrupt:
                decoded[position] = convert(frame)
            if position >= last:
                break
        return decoded


class _AudioTrack:
    """Decodes one audio stream, packet by packet, to mono float32 at `rate`; with `max_seconds`, only the
    central `max_seconds` of a longer track (packets outside it are not decoded; a margin absorbs decoder warm-up)."""

    MARGIN = 0.5  # seconds decoded beyond the window on each side, trimmed afterwards

    def __init__(self, stream, rate: int, max_seconds: Optional[float]):
        import av

        self.stream, self.rate = stream, rate
        stream.thread_type = "AUTO"
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self.chunks: list[np.ndarray] = []
        self.first_time: Optional[float] = None
        self.problem: Optional[str] = None
        self.window: Optional[tuple[float, float]] = None
        duration = _seconds(stream.duration, stream.time_base)
        if duration is None and stream.container.duration:
            duration = stream.container.duration / 1_000_000
        if max_seconds and duration and duration > max_seconds + 4 * self.MARGIN:
            begin = (_seconds(stream.start_time, stream.time_base) or 0.0) + (duration - max_seconds) / 2
            self.window = (begin, begin + max_seconds)

    def decode(self, packet) -> None:
        """Decode one demuxed packet (empty end-of-stream packets are left to `finish`)."""
        if self.problem is not None or packet.size == 0:
            return
        import av

        if self.window is not None and packet.pts is not None:
            start = float(packet.pts * packet.time_base)
            end = start + float((packet.duration or 0) * packet.time_base)
            if end < self.window[0] - self.MARGIN or start > self.window[1] + self.MARGIN:
                return
        try:
            self._collect(self.stream.decode(packet))
        except av.FFmpegError as error:
            self.problem = f"audio track cannot be decoded ({_reason(error)})"

    def _collect(self, frames) -> None:
        for frame in frames:
            if self.first_time is None:
                self.first_time = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            self.chunks.extend(out.to_ndarray()[0] for out in self.resampler.resample(frame))

    def flush(self) -> None:
        """At the end of the stream: collect what the decoder and the resampler still hold."""
        import av

        if self.problem is None:
            try:
                self._collect(self.stream.decode(None))  # flush the decoder
                self.chunks.extend(out.to_ndarray()[0] for out in self.resampler.resample(None))  # and the resampler
            except (av.FFmpegError, EOFError):
                pass

    def finish(self) -> tuple[Optional[np.ndarray], Optional[str]]:
        """`(waveform, None)`, or `(None, problem)` when the track could not be decoded (in full)."""
        self.flush()
        if self.problem is not None:
            return None, self.problem
        samples = np.concatenate(self.chunks).astype(np.float32, copy=False) if self.chunks else None
        if samples is not None and self.window is not None and self.first_time is not None:
            offset = max(0, round((self.window[0] - self.first_time) * self.rate))
            samples = samples[offset:offset + round((self.window[1] - self.window[0]) * self.rate)]
        if samples is None or samples.size == 0:
            return None, "audio stream holds no decodable samples"
        return samples, None


def _seconds(value, time_base) -> Optional[float]:
    return float(value * time_base) if value is not None and time_base else None


def _quarter_turns(frame: "av.VideoFrame") -> int:
    """Counter-clockwise quarter turns that make `frame` upright, from its display matrix (0 without one)."""
    try:
        angle = float(frame.rotation or 0)
    except (AttributeError, ValueError):
        angle = 0.0
    return int(round(angle / 90.0)) % 4


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.strip().rstrip(".") or type(error).__name__


def _short_list(values: list[int], limit: int = 8) -> str:
    head = ", ".join(str(v) for v in values[:limit])
    return head + (f", ... ({len(values)} in all)" if len(values) > limit else "")


__all__ = ["FRAME_FILE_PATTERN", "VIDEO_EXTENSIONS", "FrameFolderReader", "MediaError", "MediaInfo", "MediaReader",
           "MissingAudioWarning", "StreamingAudio", "VideoDecodingError", "describe_source", "frame_to_rgb",
           "is_frame_folder", "is_media_error", "load_audio", "open_video", "output_size", "probe_media"]
