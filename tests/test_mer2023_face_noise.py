"""MER 2023 visual face-crop stage and MER-NOISE augmentation (a `datasets` transform), on real mp4 files."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from transformers import ResNetConfig, ResNetModel

from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip
from modeling_avcpnet.mer2023.augmentation import CORRUPTIONS, MERNoiseAugmentation, add_noise_at_snr, corrupt_frames
from modeling_avcpnet.mer2023.face_crop import FaceCropper, center_face_box
from modeling_avcpnet.feature_extraction_mer2023 import MER2023DeepFeatureExtractor, load_waveform


def gradient_frames(num_frames=3, height=100, width=160):
    y, x = np.mgrid[:height, :width]
    frame = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    return np.stack([frame] * num_frames)


def test_default_crop_is_the_centre_square_with_its_margin():
    frames = gradient_frames()
    assert center_face_box(frames[0]) == pytest.approx((50.0, 20.0, 110.0, 80.0))  # side 0.6 * 100
    # Grown by 20% of the side on each side: 84 px around the centre (80, 50) -> rows 8:92, columns 38:122.
    crops = FaceCropper(size=84)(frames)
    assert crops.shape == (3, 84, 84, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[0], frames[0, 8:92, 38:122])
    assert FaceCropper(size=32)(frames).shape == (3, 32, 32, 3)


def test_a_plugged_detector_finds_the_face_and_gaps_reuse_the_last_box():
    frames = np.zeros((4, 60, 80, 3), dtype=np.uint8)
    for t, left in enumerate((10, 20, 30, 40)):
        frames[t, 20:40, left:left + 20] = 255  # the "face": a white square moving right

    def bright_square(frame):
        if frame[..., 0].mean() > 1000:  # never: exercised by the gap below instead
            return None
        ys, xs = np.nonzero(frame[..., 0] > 128)
        return (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else None

    frames[2] = 0  # the detector finds nothing on frame 2: it reuses frame 1's box
    crops = FaceCropper(bright_square, size=20, margin=0.0)(frames)
    for t in (0, 1, 3):
        assert crops[t].min() == 255  # exactly the square
    np.testing.assert_array_equal(crops[2], 0)
    assert FaceCropper(bright_square).boxes(frames)[2] == FaceCropper(bright_square).boxes(frames)[1]
    # Near the border the square crop leaves the frame: the outside is zeros, not a shifted crop.
    edge = FaceCropper(lambda frame: (0, 0, 10, 10), size=20, margin=0.5)(frames[:1])
    assert edge[0, :5, :5].max() == 0
    with pytest.raises(ValueError, match="empty box"):
        FaceCropper(lambda frame: (5, 5, 5, 9))(frames[:1])
    # Nothing found in the whole clip: the centre crop.
    np.testing.assert_array_equal(FaceCropper(lambda frame: None, size=24)(frames), FaceCropper(size=24)(frames))


def test_mer_feature_extractor_feeds_the_cropped_faces_to_the_backbone(tmp_path):
    torch.manual_seed(0)
    vision = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"))
    frames = gradient_frames(2)
    cropper = FaceCropper(size=32)
    plain = MER2023DeepFeatureExtractor(vision_model=vision)
    cropped = MER2023DeepFeatureExtractor(vision_model=vision, face_cropper=cropper)
    expected = plain.extract_visual([cropper(frames)])["resnet"]
    np.testing.assert_allclose(cropped({"video": [frames]})["input_features"], expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain({"video": [frames]})["input_features"], expected)
    assert cropped.fingerprint != plain.fingerprint  # the cache of uncropped features is not reused


def test_noise_is_added_at_the_drawn_snr_and_frames_are_corrupted_alike():
    rng = np.random.default_rng(0)
    signal = tone(220, 1.0, 16000)[0]
    noise = rng.standard_normal(5000).astype(np.float32)
    noisy = add_noise_at_snr(signal, noise, 7.0)
    added = noisy - signal
    assert 10 * np.log10(np.mean(signal**2) / np.mean(added**2)) == pytest.approx(7.0, abs=1e-3)
    np.testing.assert_allclose(added / added[:5000].std(), np.resize(noise, len(signal)) / noise.std(), atol=1e-3)

    frames = gradient_frames(3, 120, 240)  # values up to 255, so that solarize has pixels to invert
    for name in CORRUPTIONS:
        out = corrupt_frames(frames, name, np.random.default_rng(1))
        assert out.shape == frames.shape and out.dtype == np.uint8
        assert not np.array_equal(out, frames), name
        assert all(np.array_equal(out[0], out[t]) for t in range(3)), name  # one draw per clip
    with pytest.raises(ValueError, match="corruptions"):
        MERNoiseAugmentation(corruptions=["fog"])


def test_mer_noise_as_a_datasets_transform_on_real_clips(tmp_path):
    paths = []
    for i in range(2):
        frames = np.stack(list(moving_square_frames(6, 32, 32)))
        paths.append(str(write_clip(tmp_path / f"clip{i}.mp4", frames=frames, fps=6,
                                    audio=tone(300.0 * (i + 1), 0.8, 16000), sample_rate=16000)))
    dataset = datasets.Dataset.from_dict({"video": paths, "audio": ["", ""], "label": [0, 1]})
    musan_like = [np.random.default_rng(5).standard_normal(8000).astype(np.float32)]
    augment = MERNoiseAugmentation(noise_waveforms=musan_like, num_frames=4, seed=0)
    noisy = dataset.with_transform(augment)
    rows = noisy[0:2]
    assert rows["label"] == [0, 1]
    for row, path in zip(range(2), paths):
        clean = load_waveform(path, 16000)
        audio = rows["audio"][row]
        assert audio["sampling_rate"] == 16000 and len(audio["array"]) == len(clean)
        snr = 10 * np.log10(np.mean(clean**2) / np.mean((audio["array"] - clean) ** 2))
        assert min(abs(snr - s) for s in range(5, 12)) < 1e-2, snr  # one of the paper's 5..11 dB
        assert rows["video"][row].shape == (4, 32, 32, 3)
    # Reproducible with a seed; a new draw on every access otherwise.
    again = dataset.with_transform(MERNoiseAugmentation(noise_waveforms=musan_like, num_frames=4, seed=0))[0:2]
    np.testing.assert_array_equal(again["audio"][0]["array"], rows["audio"][0]["array"])
    assert not np.array_equal(noisy[0:2]["audio"][0]["array"], rows["audio"][0]["array"])
