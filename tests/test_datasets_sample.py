"""The generated sample set: structure, determinism, the modality design (checked with hand features and a
logistic regression on the decoded clips), and the processor transform on it, map-style and streaming."""

import filecmp
import os

import av
import datasets
import numpy as np
import pytest
import torch
import torchaudio
from matplotlib.colors import rgb_to_hsv
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from datasets_emotions import load_dataset, with_processor
from datasets_emotions.sample_clips import CLASS_CUES, plan_split, write_sample_clip
from modeling_avcpnet.configuration_avcpnet import EMOTIONS_LABELS, AVCPNetConfig
from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor

datasets.disable_progress_bars()

# The default test split (12 per class, 2 noisy) with a smaller train split, to keep the suite fast; a clip
# depends only on (seed, split, index), so this test split is exactly the default set's test split.
SMALL = dict(clips_per_class_train=16, noisy_train=4, clips_per_class_validation=2, noisy_validation=0)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return load_dataset("sample", cache_dir=str(tmp_path_factory.mktemp("sample_cache")), num_proc=2, **SMALL)


def test_structure_and_determinism(sample, tmp_path):
    assert {split: part.num_rows for split, part in sample.items()} == {"train": 96, "validation": 12, "test": 72}
    test = sample["test"]
    assert test.features["label"].names == EMOTIONS_LABELS
    assert np.bincount(test["label"]).tolist() == [12] * 6
    assert sorted(test["noise"]) == ["audio_cue_swapped"] + ["none"] * 70 + ["visual_cue_swapped"]
    assert sorted(sample["train"]["noise"]).count("none") == 92
    for row in test:
        label = EMOTIONS_LABELS[row["label"]]
        cues = (row["visual_cue"], row["audio_cue"])
        if row["noise"] == "none":
            assert cues == CLASS_CUES[label]
        else:  # exactly one cue contradicts the label
            assert sum(a != b for a, b in zip(cues, CLASS_CUES[label])) == 1
        assert row["polarity"] == ["positive", "neutral", "negative"].index(
            {"excitation": "positive", "relaxation": "positive", "neutral": "neutral"}.get(label, "negative"))
    default_plan = plan_split("test", EMOTIONS_LABELS, 12, 2, seed=0)
    assert test["video_id"] == [spec.video_id for spec in default_plan]
    assert test["label"] == [EMOTIONS_LABELS.index(spec.label) for spec in default_plan]
    # the same spec gives the same file, byte for byte, in another process/folder
    again = write_sample_clip(default_plan[5], str(tmp_path / "again.mp4"))
    assert filecmp.cmp(again, test[5]["video"], shallow=False)
    with av.open(test[5]["video"]) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height, video.codec_context.name) == (64, 48, "h264")
        assert (audio.rate, audio.codec_context.name, audio.channels) == (16000, "aac", 1)


def visual_features(path):
    """Saturation-weighted mean hue (as cos, sin) of the centre square of every fourth frame."""
    with av.open(path) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)][::4])
    height, width = frames.shape[1:3]
    side = min(height, width)
    crop = frames[:, (height - side) // 2:(height + side) // 2, (width - side) // 2:(width + side) // 2]
    hsv = rgb_to_hsv(crop / 255.0)
    weight = hsv[..., 1] * (hsv[..., 1] > 0.35)
    angle = 2 * np.pi * hsv[..., 0]
    return np.array([(weight * np.cos(angle)).sum(), (weight * np.sin(angle)).sum()]) / weight.sum()


MFCC = torchaudio.transforms.MFCC(sample_rate=16000, n_mfcc=20, melkwargs=dict(n_fft=512, hop_length=256, n_mels=40))


def audio_features(paths):
    """Mean MFCC of the centre 0.74 s (the tiny model's audio crop) of each clip, as one (N, 20) array."""
    crops = []
    for path in paths:
        with av.open(path) as container:
            assert container.streams.audio[0].rate == 16000
            wave = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
        length = int(0.74 * 16000)
        start = (len(wave) - length) // 2
        crops.append(wave[start:start + length])
    return MFCC(torch.from_numpy(np.stack(crops)).float()).mean(-1).numpy()


def test_modalities_are_complementary(sample):
    """Hand features + logistic regression: picture alone ~50 %, sound alone ~33 %, both >= 95 % on the test
    split (its ceiling is 70/72: two clips carry a conflicting cue)."""
    features = {}
    for split in ("train", "test"):
        paths = sample[split]["video"]
        features[split] = (np.stack([visual_features(p) for p in paths]), audio_features(paths),
                           np.array(sample[split]["label"]))
    scores = {}
    for name, pick in (("visual", lambda v, a: v), ("audio", lambda v, a: a),
                       ("both", lambda v, a: np.hstack([v, a]))):
        v, a, y = features["train"]
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(pick(v, a), y)
        v, a, y = features["test"]
        scores[name] = model.score(pick(v, a), y)
    print(scores)
    assert 0.40 <= scores["visual"] <= 0.56, scores
    assert 0.22 <= scores["audio"] <= 0.42, scores
    assert scores["both"] >= 0.95, scores


@pytest.fixture(scope="module")
def processor():
    return AVCPNetProcessor.from_model_config(AVCPNetConfig.tiny())


def test_with_processor_map_style(sample, processor):
    config = AVCPNetConfig.tiny()
    evaluation = with_processor(sample["validation"], processor, training=False)
    batch = evaluation[0:3]
    assert batch["pixel_values_videos"].shape == (3, 2, 4, 3, 32, 32)
    assert batch["input_features"].shape == (3, config.audio_segments, config.audio_length // config.audio_segments,
                                             config.num_mfcc)
    assert batch["audio_mask"].tolist() == [True, True, True]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == sample["validation"]["label"][:3]
    direct = processor(videos=sample["validation"]["video"][:3], training=False)
    torch.testing.assert_close(batch["pixel_values_videos"], direct["pixel_values_videos"])
    torch.testing.assert_close(batch["input_features"], direct["input_features"])
    row = evaluation[1]  # one row: same values as in the batch
    torch.testing.assert_close(row["pixel_values_videos"], batch["pixel_values_videos"][1])
    # DataLoader path (__getitems__) with training randomness: two epochs differ, a re-seed repeats
    training = with_processor(sample["validation"], processor, training=True)
    loader = torch.utils.data.DataLoader(training, batch_size=4, collate_fn=torch.utils.data.default_collate)
    torch.manual_seed(1)
    first = next(iter(loader))
    second = next(iter(loader))
    torch.manual_seed(1)
    repeat = next(iter(loader))
    assert set(first) == {"pixel_values_videos", "input_features", "audio_mask", "labels"}
    assert first["pixel_values_videos"].shape == (4, 2, 4, 3, 32, 32)
    torch.testing.assert_close(first["pixel_values_videos"], repeat["pixel_values_videos"])
    assert not torch.equal(first["pixel_values_videos"], second["pixel_values_videos"])


def test_with_processor_streaming(sample, processor, tmp_path):
    stream = load_dataset("sample", split="validation", streaming=True, cache_dir=str(tmp_path), **SMALL)
    assert isinstance(stream, datasets.IterableDataset)
    rows = list(stream)
    assert [r["video_id"] for r in rows] == sample["validation"]["video_id"]
    assert all(os.path.isfile(r["video"]) for r in rows)  # streaming generated the clips lazily
    examples = list(with_processor(stream, processor, training=False, batch_size=5))
    assert len(examples) == 12
    assert set(examples[0]) == {"pixel_values_videos", "input_features", "audio_mask", "labels"}
    pixels = torch.stack([torch.as_tensor(e["pixel_values_videos"]) for e in examples])
    expected = processor(videos=list(sample["validation"]["video"]), training=False)["pixel_values_videos"]
    torch.testing.assert_close(pixels, expected)
    assert [int(e["labels"]) for e in examples] == sample["validation"]["label"]
