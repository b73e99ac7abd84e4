"""Emotion timeline: each window equals the processor + model on that window cut out as its own clip; times,
segments, files, one decode per frame, the command line."""

import csv
import json

import numpy as np
import pytest
import torch

from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip
from modeling_avcpnet import AVCPNetConfig
from modeling_avcpnet.apps.cli import main as cli_main
from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification
from modeling_avcpnet.inference.timeline import change_segments, emotion_timeline, smooth_track, window_starts
from modeling_avcpnet.media_avcpnet import MediaError, MediaReader

FPS, SECONDS = 12, 14


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Small CPU ops run many times slower with two threads than one when the two cores are shared with other work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("timeline")
    folder, model, processor = tiny_checkpoint["folder"], tiny_checkpoint["model"], tiny_checkpoint["processor"]
    # Short side 32 = the model's image size: the file path (FFmpeg's scaler) and the array path (torchvision) of
    # the processor then both leave frames unresized, so a window and its cut-out clip see the same pixels.
    # The picture and the pitch change half way.
    frames = np.concatenate([np.stack(list(moving_square_frames(FPS * SECONDS // 2, 32, 48))),
                             np.stack(list(moving_square_frames(FPS * SECONDS // 2, 32, 48, color=(40, 80, 250))))])
    audio = np.concatenate([tone(220, SECONDS / 2, 16000), tone(1800, SECONDS / 2, 16000)], axis=-1)
    clip = write_clip(root / "two_moods.mp4", frames, fps=FPS, audio=audio, sample_rate=16000, gop_size=FPS)
    return {"root": root, "folder": str(folder), "model": model, "processor": processor, "clip": clip}


def reference_probabilities(model, processor, clip, start, end):
    """Cut [start, end) out of the clip (all its frames, its waveform) and run processor + model on it."""
    rate = processor.feature_extractor.sampling_rate
    with MediaReader(clip, audio_sample_rate=rate) as reader:
        times = np.arange(reader.num_frames) / reader.fps
        frames = reader.read_frames(np.flatnonzero((times >= start - 1e-6) & (times < end - 1e-6)))
        waveform = reader.audio[round(start * rate):round(end * rate)]
    inputs = processor(videos=[frames], audio=[waveform], sampling_rate=rate, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    return [None if logits is None else logits.softmax(-1)[0].numpy()
            for logits in (outputs.logits, outputs.visual_logits, outputs.audio_logits)]


def test_windows_equal_processor_and_model_on_the_cut_clip(setup):
    timeline = emotion_timeline(setup["model"], setup["clip"], window=4.0, stride=1.5, batch_size=3,
                                processor=setup["processor"])
    # 14 s, windows of 4 s every 1.5 s: starts 0 ... 9, then one ending at the end of the video.
    np.testing.assert_allclose(timeline.starts, [0, 1.5, 3, 4.5, 6, 7.5, 9, 10], atol=1e-9)
    np.testing.assert_allclose(timeline.ends, timeline.starts + 4.0, atol=1e-9)
    assert timeline.duration == pytest.approx(SECONDS)
    assert timeline.probabilities.shape == (8, 6)
    np.testing.assert_allclose(timeline.probabilities.sum(-1), 1, atol=1e-5)
    for k in (0, 3, 7):
        fused, visual, audio = reference_probabilities(setup["model"], setup["processor"], setup["clip"],
                                                       timeline.starts[k], timeline.ends[k])
        np.testing.assert_allclose(timeline.probabilities[k], fused, atol=2e-5)
        np.testing.assert_allclose(timeline.visual_probabilities[k], visual, atol=2e-5)
        np.testing.assert_allclose(timeline.audio_probabilities[k], audio, atol=2e-5)
    # The two halves differ in picture and sound, and the model sees it.
    assert np.abs(timeline.probabilities[0] - timeline.probabilities[-1]).max() > 1e-3
    # Every frame decoded at most once, however much the windows overlap, and never the whole video in memory.
    assert timeline.frames_decoded <= timeline.num_frames == FPS * SECONDS
    assert timeline.peak_buffered_frames < timeline.num_frames


def test_batch_size_and_pipeline_give_the_same_timeline(setup):
    from transformers import pipeline

    from modeling_avcpnet.pipeline_avcpnet import TASK

    pipe = pipeline(TASK, model=setup["folder"], trust_remote_code=True, device="cpu")
    one = emotion_timeline(pipe, setup["clip"], window=3.0, stride=1.0, batch_size=1)
    many = emotion_timeline(setup["folder"], setup["clip"], window=3.0, stride=1.0, batch_size=16)
    # A folder's pipeline takes the GPU where there is one (TF32 convolutions), `one` runs on the CPU.
    np.testing.assert_allclose(one.probabilities, many.probabilities, atol=2e-4 if torch.cuda.is_available() else 2e-5)
    assert len(one.starts) == 12 and one.ends[-1] == pytest.approx(SECONDS)


def test_a_silent_video_is_classified_from_the_picture(setup):
    silent = write_clip(setup["root"] / "silent.mp4", moving_square_frames(FPS * 6, 32, 48), fps=FPS)
    timeline = emotion_timeline(setup["model"], silent, window=4.0, stride=1.0, processor=setup["processor"])
    assert not timeline.has_audio and len(timeline.starts) == 3
    np.testing.assert_allclose(timeline.probabilities, timeline.visual_probabilities, atol=1e-6)
    assert "audio" not in timeline.to_dict()["windows"][0]
    with pytest.raises(ValueError, match="does not exist"):
        emotion_timeline(str(setup["root"] / "no_such_model"), silent)


def test_window_starts_cover_the_video():
    np.testing.assert_allclose(window_starts(10.0, 4.0, 1.0), [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(window_starts(10.5, 4.0, 2.0), [0, 2, 4, 6, 6.5])  # a last window ends at the end
    np.testing.assert_allclose(window_starts(3.0, 4.0, 1.0), [0])  # shorter than a window: one window
    with pytest.raises(ValueError, match="positive"):
        window_starts(10.0, 4.0, 0.0)


def test_smoothing_and_segments_on_a_known_track():
    track = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7]], dtype=np.float32)
    smoothed = smooth_track(track, 3)
    np.testing.assert_allclose(smoothed[0], track[:2].mean(0), atol=1e-6)  # the ends average what exists
    np.testing.assert_allclose(smoothed[2], track[1:4].mean(0), atol=1e-6)
    np.testing.assert_allclose(smoothed.sum(-1), 1, atol=1e-6)
    centres = np.arange(6) + 2.0  # windows of 4 s every 1 s over 9 s
    segments = change_segments(centres, track, ["calm", "angry"], duration=9.0)
    assert [(s["start"], s["end"], s["label"], s["windows"]) for s in segments] == [
        (0.0, 4.5, "calm", 3), (4.5, 9.0, "angry", 3)]
    assert segments[0]["score"] == pytest.approx(0.8)


def test_timeline_command_writes_csv_json_and_plots(setup, capsys):
    output = setup["root"] / "out"
    code = cli_main(["timeline", setup["clip"], "--model", setup["folder"], "--window", "4", "--stride", "2",
                     "--output-dir", str(output), "--branches", "--quiet", "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "x real time" in printed and "6 windows of 4 s every 2 s over 14.0 s" in printed
    with open(output / "timeline.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["start"]) for row in rows] == [0, 2, 4, 6, 8, 10]
    assert {"prob_fear", "smoothed_fear", "visual_fear", "audio_fear", "polarity"} <= set(rows[0])
    data = json.loads((output / "timeline.json").read_text())
    assert len(data["windows"]) == 6 and data["labels"][0] == "excitation" and data["has_audio"]
    assert data["segments"][0]["start"] == 0 and data["segments"][-1]["end"] == pytest.approx(SECONDS)
    assert all(a["end"] == b["start"] for a, b in zip(data["segments"], data["segments"][1:]))
    assert data["speed"]["x_real_time"] > 0
    assert (output / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (output / "timeline.svg").read_bytes()[:400]


def test_unreadable_video_is_a_clear_error(setup, capsys):
    fake = setup["root"] / "notes.mp4"
    fake.write_text("these are meeting notes, not a video\n")
    with pytest.raises(MediaError, match="notes.mp4"):
        emotion_timeline(setup["folder"], fake)
    assert cli_main(["timeline", str(fake), "--model", setup["folder"], "--quiet"]) == 1
    assert "notes.mp4: not a readable media file" in capsys.readouterr().err


def train_cue_model(processor, steps: int = 30):
    """A tiny model trained in seconds to tell the clip's two halves apart: a red square with a 220 Hz tone is
    class 0, a blue square with an 1800 Hz tone class 1."""
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(AVCPNetConfig.tiny())
    videos, audio, labels = [], [], []
    for offset in range(3):
        for label, colour, pitch in ((0, (255, 64, 64), 220), (1, (40, 80, 250), 1800)):
            videos.append(moving_square_frames(48 + 5 * offset, 32, 48, color=colour)[5 * offset:])
            audio.append(tone(pitch, 4.0, 16000, amplitude=0.1 + 0.05 * offset)[0])
            labels.append(label)
    inputs = processor(videos=videos, audio=audio, sampling_rate=16000, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        model(**inputs, labels=torch.tensor(labels)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def test_a_known_emotion_change_is_found_half_way(setup):
    model = train_cue_model(setup["processor"])
    timeline = emotion_timeline(model, setup["clip"], window=2.0, stride=0.5, processor=setup["processor"])
    first, second = model.config.id2label[0], model.config.id2label[1]
    assert [segment["label"] for segment in timeline.segments] == [first, second]
    assert abs(timeline.segments[0]["end"] - SECONDS / 2) <= 1.0  # the cues switch at 7 s
    assert timeline.top_labels[0] == first and timeline.top_labels[-1] == second
