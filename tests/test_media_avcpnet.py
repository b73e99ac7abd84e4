"""The media layer. MediaReader: the frames it decodes for given indices equal a full front-to-back decode, on every
kind of file. Also the audio loader, the probe, frame folders, and the light import.

The references decode every frame (transformers' own `load_video(..., backend="pyav")`, or PyAV front to back with
our single conversion function `frame_to_rgb`) and then index; MediaReader seeks and decodes only what it needs.
"""

import pickle
import subprocess
import sys
import tracemalloc

import av
import numpy as np
import pytest
from transformers.video_utils import load_video

from datasets_emotions.synthetic_media import (
    moving_square_frames,
    tone,
    truncated_copy,
    write_clip,
    write_frame_folder,
)
from modeling_avcpnet.media_avcpnet import (
    FrameFolderReader,
    MediaError,
    MediaReader,
    StreamingAudio,
    VideoDecodingError,
    frame_to_rgb,
    load_audio,
    open_video,
    probe_media,
)

# Indices that cross keyframes (every 10 frames), hit the first and last frames, repeat and come unsorted.
TRICKY_INDICES = [74, 0, 9, 10, 11, 10, 73, 74, 5, 5, 40, 19, 20, 1]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoding")
    frames = moving_square_frames(75, 48, 64)
    times = np.concatenate([[0.0], np.cumsum(np.random.default_rng(0).uniform(0.01, 0.09, 74))])
    return {
        "frames": frames,
        "plain": write_clip(root / "plain.mp4", frames, fps=30, audio=tone(440, 2.5), gop_size=10),
        # B-frames: decode order differs from presentation order.
        "bframes": write_clip(root / "bframes.mp4", frames, fps=30, gop_size=10, preset="fast",
                              codec_options={"bf": "2"}),
        "vfr": write_clip(root / "vfr.mp4", frames, fps=30, gop_size=10, frame_times=times),
        "rotated": write_clip(root / "rotated.mp4", frames, fps=30, gop_size=10, rotation=-90),
        "mkv": write_clip(root / "clip.mkv", frames, fps=30, gop_size=10),
        "root": root,
    }


def full_decode(path, shortest_edge=None):
    """Every frame, front to back, through the same conversion function as MediaReader."""
    with av.open(str(path)) as container:
        return np.stack([frame_to_rgb(frame, shortest_edge) for frame in container.decode(video=0)])


@pytest.mark.parametrize("kind", ["plain", "bframes", "vfr"])
def test_frames_equal_load_video_reference(media, kind):
    reference, _ = load_video(media[kind], backend="pyav")
    with MediaReader(media[kind]) as reader:
        assert reader.num_frames == len(reference) == 75
        np.testing.assert_array_equal(reader.read_frames(TRICKY_INDICES), reference[TRICKY_INDICES])
        # All frames in one call (one front-to-back run) as well.
        np.testing.assert_array_equal(reader.read_frames(range(75)), reference)


def test_matroska_frames_equal_full_decode(media):
    # load_video cannot read .mkv (no frame count in the header); MediaReader counts the packets.
    reference = full_decode(media["mkv"])
    with MediaReader(media["mkv"]) as reader:
        assert reader.num_frames == 75
        np.testing.assert_array_equal(reader.read_frames(TRICKY_INDICES), reference[TRICKY_INDICES])


@pytest.mark.parametrize("kind", ["plain", "bframes", "vfr"])
def test_resized_frames_equal_full_decode(media, kind):
    reference = full_decode(media[kind], shortest_edge=32)
    with MediaReader(media[kind]) as reader:
        frames = reader.read_frames(TRICKY_INDICES, shortest_edge=32)
    assert frames.shape == (len(TRICKY_INDICES), 32, 43, 3)
    np.testing.assert_array_equal(frames, reference[TRICKY_INDICES])


def test_frames_resized_in_scaler_match_a_resize_of_the_rgb_frame(media):
    # The in-scaler resize is a resize of the same picture: close to resizing the full RGB frame afterwards.
    import torch
    import torchvision.transforms.v2.functional as tvF

    full, _ = load_video(media["plain"], backend="pyav")
    with MediaReader(media["plain"]) as reader:
        small = reader.read_frames([3, 50], shortest_edge=32).astype(np.float32)
    resized = tvF.resize(torch.from_numpy(full[[3, 50]]).permute(0, 3, 1, 2), [32, 43], antialias=True)
    assert np.abs(small - resized.permute(0, 2, 3, 1).float().numpy()).mean() < 6


def test_rotation_comes_out_upright(media):
    reference, _ = load_video(media["rotated"], backend="pyav")  # stored (landscape) orientation
    with MediaReader(media["rotated"]) as reader:
        assert reader.rotation == 270 and reader.size == (64, 48)
        frames = reader.read_frames(TRICKY_INDICES)
        small = reader.read_frames([0], shortest_edge=32)
    upright = np.stack([np.rot90(frame, k=-1) for frame in reference])  # display matrix: 90 degrees clockwise
    assert frames.shape[1:3] == (64, 48)
    np.testing.assert_array_equal(frames, upright[TRICKY_INDICES])
    assert small.shape == (1, 43, 32, 3)
    # The moving square starts on the left of the stored frame, so at the top of the upright one.
    red = (frames[1, :, :, 0] > 200) & (frames[1, :, :, 1] < 100)
    assert red[:20].sum() > 0 and red[40:].sum() == 0


def test_odd_size_frames(tmp_path):
    frames = moving_square_frames(12, 301, 97)
    path = write_clip(tmp_path / "odd.mp4", frames, fps=30, gop_size=5)
    reference, _ = load_video(path, backend="pyav")
    with MediaReader(path) as reader:
        np.testing.assert_array_equal(reader.read_frames([11, 0, 6, 6]), reference[[11, 0, 6, 6]])
        small = reader.read_frames([11, 0], shortest_edge=32)
    assert small.shape == (2, 99, 32, 3)
    np.testing.assert_array_equal(small, full_decode(path, 32)[[11, 0]])


def test_4k_frames_keep_memory_bounded(tmp_path):
    path = write_clip(tmp_path / "uhd.mp4", moving_square_frames(6, 2160, 3840), fps=30, gop_size=3)
    with MediaReader(path) as reader:
        tracemalloc.start()
        frames = reader.read_frames([5, 1, 4], shortest_edge=112)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert frames.shape == (3, 112, 199, 3)
    # One full-size RGB frame would be 3840 * 2160 * 3 = 24.9 MB; only small frames are ever made.
    assert peak < 2_000_000, peak


def test_long_video_cost_is_bounded_by_seeking(tmp_path):
    def ten_minutes_at_15_fps():
        for index in range(600 * 15):
            frame = np.zeros((32, 32, 3), np.uint8)
            frame[:, :16], frame[:, 16:] = 7 * (index // 256), index % 256  # the frame number, in grey levels
            yield frame

    path = write_clip(tmp_path / "long.mp4", ten_minutes_at_15_fps(), fps=15, gop_size=30)
    wanted = [8990, 30, 4500, 4501, 8999, 0]
    with MediaReader(path) as reader:
        assert reader.num_frames == 9000
        frames = reader.read_frames(wanted)
        # Each wanted frame costs at most one GOP (30 frames) of decoding, never the 9000-frame file.
        assert reader.frames_decoded <= 5 * 30 + 5
    # The frame number is painted into the pixels (H.264 is lossy: a few grey levels off at most).
    painted = 256 * np.round(frames[:, 16, 4, 0] / 7).astype(int) + frames[:, 16, 24, 0].astype(int)
    np.testing.assert_allclose(painted, wanted, atol=3)


def test_audio_track_is_decoded_to_mono_at_the_requested_rate(media):
    with MediaReader(media["plain"], audio_sample_rate=22050) as reader:
        audio = reader.audio
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 2.5 * 22050) < 2048  # AAC adds up to a frame of padding
    spectrum = np.abs(np.fft.rfft(audio[4096:4096 + 16384]))
    peak_hz = np.argmax(spectrum) * 22050 / 16384
    assert abs(peak_hz - 440) < 5


def test_missing_audio_stream_is_reported_not_raised(media):
    with MediaReader(media["vfr"], audio_sample_rate=44100) as reader:
        assert reader.audio is None and reader.audio_problem == "has no audio stream"


# -- bad media: each raises VideoDecodingError (a ValueError) naming the file and the problem ---------------------


def _bad_file(tmp_path, kind, media):
    if kind == "empty":
        path = tmp_path / "empty.mp4"
        path.write_bytes(b"")
        return path, "empty"
    if kind == "truncated":
        return truncated_copy(media["plain"], tmp_path / "truncated.mp4", 0.5), "not a readable media file"
    if kind == "text":
        path = tmp_path / "notes.mp4"
        path.write_text("These are my holiday notes, not a video.\n" * 20)
        return path, "not a readable media file"
    if kind == "no_video_stream":
        path = tmp_path / "captions.mp4"  # FFmpeg reads it as SubRip: a media file with a subtitle stream only
        path.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,500 --> 00:00:02,000\nworld\n")
        return path, "has no video stream (no audio stream either)"
    if kind == "audio_only":
        return write_clip(tmp_path / "song.m4a", audio=tone(440, 1.0)), "has no video stream (an audio-only file)"
    if kind == "missing":
        return tmp_path / "does_not_exist.mp4", "file not found"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "no_video_stream", "audio_only", "missing"])
def test_bad_media_raise_naming_file_and_problem(tmp_path, media, kind):
    path, problem = _bad_file(tmp_path, kind, media)
    with pytest.raises(VideoDecodingError) as caught:
        with MediaReader(path) as reader:
            reader.read_frames([0])
    assert isinstance(caught.value, ValueError)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_truncated_file_with_index_up_front_raises(tmp_path):
    # A "fast start" mp4 (index before the data) cut short opens fine and its first frames decode, but sampling
    # from the readable part only would give the wrong frames for the clip: it must raise.
    frames = moving_square_frames(60, 48, 64)
    source = tmp_path / "faststart.mp4"
    with av.open(str(source), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "10", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    path = truncated_copy(source, tmp_path / "cut.mp4", 0.6)
    with av.open(path) as container:
        assert container.streams.video[0].frames == 60  # the header survived the cut
    with pytest.raises(VideoDecodingError, match=r"cut.mp4: truncated or corrupt: the header declares 60 video frames"):
        MediaReader(path)


def test_avi_declaring_one_frame_more_than_it_stores_is_read(tmp_path):
    # FFmpeg's AVI muxer (as in real .avi releases such as CAER) declares one more frame than the file stores.
    path = write_clip(tmp_path / "clip.avi", moving_square_frames(12, 48, 64), fps=12, video_codec="mpeg4",
                      audio=tone(300, 1.0), audio_codec="mp3")
    with av.open(path) as container:
        assert container.streams.video[0].frames == 13
    with MediaReader(path) as reader:
        assert reader.num_frames == 12
        frames = reader.read_frames(list(range(12)))
    assert len(frames) == 12


def test_out_of_range_indices_raise(media):
    with MediaReader(media["plain"]) as reader, pytest.raises(VideoDecodingError, match=r"plain.mp4: frame indices"):
        reader.read_frames([75])


def test_bytes_and_file_objects(media):
    data = open(media["plain"], "rb").read()
    reference, _ = load_video(media["plain"], backend="pyav")
    with MediaReader(data) as reader:
        np.testing.assert_array_equal(reader.read_frames([3, 60]), reference[[3, 60]])
    with open(media["plain"], "rb") as handle, MediaReader(handle) as reader:
        assert "plain.mp4" in reader.name
        np.testing.assert_array_equal(reader.read_frames([60, 3]), reference[[60, 3]])
    with pytest.raises(VideoDecodingError, match="bytes in memory>: no data"):
        MediaReader(b"")


@pytest.mark.parametrize("extension", ["m4a", "mp3"])
def test_long_soundtrack_decodes_only_its_central_window(tmp_path, extension):
    seconds = np.arange(20 * 44100) / 44100
    chirp = (0.3 * np.sin(2 * np.pi * (200 * seconds + 45 * seconds**2))).astype(np.float32)[None]
    path = write_clip(tmp_path / f"long.{extension}", audio=chirp)
    with MediaReader(path, require_video=False, audio_sample_rate=44100) as reader:
        full = reader.audio
    with MediaReader(path, require_video=False, audio_sample_rate=44100, audio_max_seconds=5.0) as reader:
        window = reader.audio
    # Seconds 7.5 to 12.5 of the track, sample for sample the same as in the full decode.
    assert len(window) == 5 * 44100
    np.testing.assert_allclose(window, full[int(7.5 * 44100):int(12.5 * 44100)], atol=1e-5)


def test_streaming_audio_equals_the_whole_soundtrack_and_holds_only_a_window(tmp_path):
    """The timeline's audio: overlapping windows read forward equal slices of the soundtrack decoded whole, and the
    reader never holds more than about a window (memory flat in the video's length)."""
    rate, seconds = 16000, 20
    t = np.arange(seconds * 44100) / 44100
    chirp = (0.3 * np.sin(2 * np.pi * (200 * t + 45 * t**2))).astype(np.float32)[None]
    path = write_clip(tmp_path / "long.mp4", moving_square_frames(seconds * 5, 32, 32), fps=5, audio=chirp)
    with MediaReader(path, audio_sample_rate=rate) as reader:
        whole = reader.audio
    window, stride = 4 * rate, rate // 2
    starts = list(range(0, len(whole) + stride, stride))  # the last windows run past the end of the track
    with open(path, "rb") as handle:
        data = handle.read()
    for source in (path, data):
        with StreamingAudio(source, rate) as streaming:
            held = []
            for begin in starts:
                piece = streaming.read(begin, begin + window)
                np.testing.assert_array_equal(piece, whole[begin:begin + window])
                held.append(len(streaming._buffer))
            assert streaming.problem is None and len(piece) == 0
            with pytest.raises(ValueError, match=r"(long\.mp4|bytes in memory>): audio is read forward only"):
                streaming.read(0, window)
        assert max(held) < window + rate, max(held)  # about one window, not the 20-s track
    with StreamingAudio(write_clip(tmp_path / "silent.mp4", moving_square_frames(5, 32, 32)), rate) as silent:
        assert silent.read(0, window) is None and silent.problem == "has no audio stream"
    with open(path, "rb") as handle, pytest.raises(TypeError, match="path or bytes"):
        StreamingAudio(handle, rate)


def test_damaged_bytes_raise_for_the_damaged_frames_only(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", moving_square_frames(60, 96, 128), fps=30, gop_size=30)
    data = bytearray(open(path, "rb").read())
    start = int(len(data) * 0.3)  # inside the first GOP's packets
    data[start:start + 400] = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    reference, _ = load_video(path, backend="pyav")
    with MediaReader(damaged) as reader:
        np.testing.assert_array_equal(reader.read_frames([45, 59]), reference[[45, 59]])  # the intact GOP
        with pytest.raises(VideoDecodingError, match="damaged.mp4: .*(cannot be decoded|corrupt)"):
            reader.read_frames(range(30))


# -- the rest of the media layer ------------------------------------------------------------------------------------


def test_one_error_type_under_both_names_survives_pickling():
    assert VideoDecodingError is MediaError and issubclass(MediaError, ValueError)
    error = pickle.loads(pickle.dumps(MediaError("clip.mp4", "file is empty (0 bytes)")))  # DataLoader workers
    assert (error.name, error.problem, str(error)) == ("clip.mp4", "file is empty (0 bytes)",
                                                       "clip.mp4: file is empty (0 bytes)")


def test_load_audio_matches_the_reader_and_raises_without_audio(media, tmp_path):
    with MediaReader(media["plain"], audio_sample_rate=16000) as reader:
        expected = reader.audio
    np.testing.assert_array_equal(load_audio(media["plain"], 16000), expected)
    data = open(media["plain"], "rb").read()
    np.testing.assert_array_equal(load_audio({"path": "named.mp4", "bytes": data}, 16000), expected)
    with pytest.raises(MediaError, match="vfr.mp4: has no audio stream"):
        load_audio(media["vfr"], 16000)
    with pytest.raises(MediaError, match="nothing.wav: file not found"):
        load_audio(tmp_path / "nothing.wav", 16000)


def test_probe_reads_headers_and_names_bad_files(media, tmp_path):
    info = probe_media(media["plain"], require_video=True)
    assert (info.has_video, info.has_audio, info.width, info.height) == (True, True, 64, 48)
    assert info.declared_frames == 75 and abs(info.fps - 30) < 1e-6 and info.audio_sample_rate == 44100
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    with pytest.raises(MediaError, match="notes.mp4: not a readable media file"):
        probe_media(text)
    song = write_clip(tmp_path / "song.m4a", audio=tone(440, 0.5))
    assert not probe_media(song).has_video
    with pytest.raises(MediaError, match=r"song.m4a: has no video stream \(an audio-only file\)"):
        probe_media(song, require_video=True)


def test_frame_folder_reader_gives_the_jpeg_frames_in_number_order(media, tmp_path):
    folder = write_frame_folder(tmp_path / "clip_0001", media["frames"][:12])
    with open_video(folder) as reader:
        assert isinstance(reader, FrameFolderReader) and reader.num_frames == 12
        frames = reader.read_frames([11, 0, 0])
    assert frames.shape == (3, 48, 64, 3)
    assert np.abs(frames[1].astype(int) - media["frames"][0]).mean() < 3  # JPEG
    np.testing.assert_array_equal(frames[1], frames[2])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="empty: folder holds no frame images"):
        open_video(tmp_path / "empty")


@pytest.mark.smoke
def test_importing_the_media_layer_loads_neither_torch_nor_pyav():
    code = ("import sys, modeling_avcpnet.media_avcpnet; "
            "print(sorted(m for m in ('torch', 'transformers', 'av') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
