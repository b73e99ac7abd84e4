"""The training media cache (`modeling_avcpnet.training.media_cache`): clips re-encoded at the model's frame size
give the processor the same inputs as the source files (pixels and MFCC identical: lossless RGB, copied audio; the
same random snippets and crops for the same generator), bad clips keep their path and their error, a second
preparation rewrites nothing, and `train_hf.py --media_cache_dir` trains from the copies."""

from __future__ import annotations

import json
import os

import datasets
import numpy as np
import pytest
import torch

from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip
from modeling_avcpnet import AVCPNetConfig, AVCPNetProcessor
from modeling_avcpnet.training.media_cache import cache_split_media
from test_train_hf import sample_cache, tiny_run_args  # noqa: F401 - the session's generated sample set

def textured(num_frames, height, width, seed=0):
    """Moving square plus noise: hard for a lossy encoder, so any loss would show."""
    noise = np.random.default_rng(seed).integers(-40, 40, (num_frames, height, width, 3))
    return np.clip(moving_square_frames(num_frames, height, width).astype(np.int16) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return {
        "landscape": write_clip(folder / "landscape.mp4", textured(40, 72, 128), fps=20,
                                audio=tone(440, 2.0, 44100), sample_rate=44100),
        "portrait_rotated": write_clip(folder / "rotated.mp4", textured(30, 64, 96, seed=1), fps=15, rotation=90,
                                       audio=tone(300, 2.0, 48000, tempo_hz=2), sample_rate=48000),
        "odd_short": write_clip(folder / "odd.mp4", textured(7, 45, 61, seed=2), fps=10,
                                audio=tone(900, 0.7, 22050), sample_rate=22050),
        "silent": write_clip(folder / "silent.mp4", textured(24, 48, 64, seed=3), fps=12),
        "corrupt": str(corrupt),
    }


@pytest.fixture(scope="module")
def processor():
    config = AVCPNetConfig.tiny()
    return AVCPNetProcessor.from_model_config(config)


def test_cached_clips_give_the_processor_the_same_inputs(clips, processor, tmp_path):
    names = list(clips)
    split = datasets.Dataset.from_dict({"video": [clips[name] for name in names], "label": list(range(len(names)))})
    cached = cache_split_media(split, processor, str(tmp_path / "cache"), num_proc=1)
    paths = dict(zip(names, cached["video"]))
    mfcc = dict(zip(names, cached.with_format("numpy", columns=["mfcc"])["mfcc"]))
    # The soundtrack's MFCC is precomputed where there is one; silent and uncached clips are left to the processor.
    assert {name: len(mfcc[name]) > 0 for name in names} == {name: name not in ("silent", "corrupt") for name in names}
    assert paths["corrupt"] == clips["corrupt"]  # not cacheable: keeps its path, so training reports it as before
    assert len(os.listdir(tmp_path / "cache")) == len(names) - 1  # no partial file left by the failed one
    for name in names[:-1]:
        assert paths[name].startswith(str(tmp_path / "cache")) and paths[name].endswith(".mp4"), name
        for training in (False, True):
            kwargs = {"training": training, "return_tensors": "pt"}
            if training:
                kwargs["generator"] = torch.Generator().manual_seed(5)
            reference = processor(videos=[clips[name]], **kwargs)
            if training:
                kwargs["generator"] = torch.Generator().manual_seed(5)
            copy = processor(videos=[paths[name]], mfcc=[mfcc[name]], **kwargs)  # as the training transform calls it
            assert torch.equal(reference["pixel_values_videos"], copy["pixel_values_videos"]), (name, training)
            assert torch.equal(reference["input_features"], copy["input_features"]), name  # same audio samples
            assert torch.equal(reference["audio_mask"], copy["audio_mask"]), name
    assert not processor(videos=[paths["silent"]], return_tensors="pt")["audio_mask"].item()
    with pytest.raises(ValueError, match=r"landscape.mp4: precomputed MFCC must be \(frames > 0, 32\), got \(5, 3\)"):
        processor(videos=[clips["landscape"]], mfcc=[np.zeros((5, 3))], return_tensors="pt")
    with pytest.raises(ValueError, match="corrupt.mp4"):
        processor(videos=[paths["corrupt"]], return_tensors="pt")

    # A second preparation (another process, or a resumed run) finds every file and rewrites none.
    stamps = {path: os.stat(path).st_mtime_ns for path in cached["video"] if path != clips["corrupt"]}
    again = cache_split_media(split.map(lambda row: row), processor, str(tmp_path / "cache"), num_proc=2)
    assert again["video"] == cached["video"]
    assert all(np.array_equal(first, second) for first, second in zip(again.with_format("numpy")["mfcc"],
                                                                       cached.with_format("numpy")["mfcc"]))
    assert {path: os.stat(path).st_mtime_ns for path in stamps} == stamps


def test_train_hf_trains_from_the_media_cache(tmp_path, sample_cache):
    import train_hf

    cache = tmp_path / "media"
    train_hf.main(tiny_run_args(tmp_path / "run", sample_cache, "--do_train", "--do_eval", "--max_steps",
                                          "2", "--media_cache_dir", str(cache), "--media_cache_num_proc", "2"))
    cached = sorted(os.listdir(cache))
    assert cached and all(name.endswith(".mp4") for name in cached)
    assert np.isfinite(json.loads((tmp_path / "run" / "eval_results.json").read_text())["eval_loss"])
    assert json.loads((tmp_path / "run" / "train_results.json").read_text())["train_skipped_clips"] == 0
