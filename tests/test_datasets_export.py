"""Parquet export with embedded media: loads back through plain ``datasets.load_dataset`` with identical rows, no
local path in the files, frames folders packed losslessly, the command line and the push wiring."""

import io
import os
import shutil

import av
import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from datasets_emotions import load_dataset, with_processor
from datasets_emotions.export import export_to_parquet, main, pack_frames_folder, push_to_hub
from datasets_emotions.synthetic_media import write_clip
from modeling_avcpnet.configuration_avcpnet import EMOTIONS_LABELS, AVCPNetConfig
from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor

datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three distinct tiny clips with sound, and one soundtrack file."""
    folder = tmp_path_factory.mktemp("export_media")
    rng = np.random.default_rng(0)
    paths = [write_clip(folder / f"c{i}.mp4", rng.integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8), fps=8,
                        audio=rng.uniform(-0.3, 0.3, size=(1, 16000)).astype(np.float32), sample_rate=16000)
             for i in range(3)]
    track = write_clip(folder / "track.m4a", audio=rng.uniform(-0.3, 0.3, size=(1, 16000)).astype(np.float32),
                       sample_rate=16000)
    return paths, track


def make_raw_tree(root, clips):
    paths, track = clips
    lines = ["file_name,label,split,audio"]
    for i in range(9):
        target = root / "videos" / f"v{i}.mp4"
        os.makedirs(target.parent, exist_ok=True)
        shutil.copyfile(paths[i % 3], target)
        audio = ""
        if i % 4 == 0:
            os.makedirs(root / "sound", exist_ok=True)
            shutil.copyfile(track, root / "sound" / f"v{i}.m4a")
            audio = f"sound/v{i}.m4a"
        lines.append(f"videos/v{i}.mp4,{EMOTIONS_LABELS[i % 6]},{'train' if i < 6 else 'test'},{audio}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")


def test_export_round_trip_without_path_leaks(tmp_path, clips):
    data = tmp_path / "eMotions"
    make_raw_tree(data, clips)
    original = load_dataset("emotions", data_dir=str(data), cache_dir=str(tmp_path / "cache"))
    out = export_to_parquet(original, str(tmp_path / "export"), name="emotions")
    back = datasets.load_dataset(out, cache_dir=str(tmp_path / "plain_cache"))  # plain datasets, no builder
    assert set(back) == {"train", "test"}
    for split in original:
        assert back[split].features["label"] == original[split].features["label"]
        assert back[split].num_rows == original[split].num_rows
        for before, after in zip(original[split], back[split]):
            for column in before:
                if column in ("video", "audio"):
                    if not before[column]:
                        assert after[column] is None
                        continue
                    assert after[column]["path"] == os.path.relpath(before[column], str(data))
                    with open(before[column], "rb") as handle:
                        assert after[column]["bytes"] == handle.read()
                else:
                    assert after[column] == before[column], column
    assert back["train"][0]["video"]["path"] == "videos/v0.mp4" and back["train"][0]["audio"]["path"] == "sound/v0.m4a"
    # nothing of the local machine's paths in any exported file
    for folder, _, files in os.walk(out):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                assert str(tmp_path).encode() not in handle.read(), name
    readme = open(os.path.join(out, "README.md")).read()
    assert "# eMotions" in readme and "path: data/train-*" in readme and "license: other" in readme
    assert sorted(os.listdir(os.path.join(out, "data"))) == ["test-00000-of-00001.parquet",
                                                            "train-00000-of-00001.parquet"]
    # the exported copy feeds the processor directly (bytes instead of paths)
    processor = AVCPNetProcessor.from_model_config(AVCPNetConfig.tiny())
    from_bytes = with_processor(back["train"], processor, training=False)[0:2]
    from_paths = with_processor(original["train"], processor, training=False)[0:2]
    torch.testing.assert_close(from_bytes["pixel_values_videos"], from_paths["pixel_values_videos"])
    torch.testing.assert_close(from_bytes["input_features"], from_paths["input_features"])
    assert from_bytes["labels"].tolist() == from_paths["labels"].tolist()


def test_frames_folder_packed_losslessly(tmp_path):
    folder = tmp_path / "Fear" / "vid"
    os.makedirs(folder)
    rng = np.random.default_rng(1)
    for index in range(1, 5):
        Image.fromarray(rng.integers(0, 255, size=(24, 40, 3), dtype=np.uint8)).save(folder / f"{index:06d}.jpg")
    packed = pack_frames_folder(str(folder), fps=10)
    with av.open(io.BytesIO(packed)) as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"
        packets = [bytes(p) for p in container.demux(video=0) if p.size]
    originals = [(folder / f"{index:06d}.jpg").read_bytes() for index in range(1, 5)]
    assert packets == originals  # the JPEG files themselves, not a re-encoding
    with av.open(io.BytesIO(packed)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (24, 40, 3)
    with pytest.raises(ValueError, match="frames folder has no .jpg files"):
        pack_frames_folder(str(tmp_path / "Fear"))


def test_command_line_and_push(tmp_path, clips):
    data = tmp_path / "CAER"
    for split in ("train", "test"):
        for name in ("Happy", "Sad"):
            os.makedirs(data / split / name)
            shutil.copyfile(clips[0][0], data / split / name / "0001.avi")
    # both spellings (issue 22.5): `--data_dir` as train_hf.py takes it, `--cache-dir` as CLIs do
    main(["caer", "--data_dir", str(data), "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    back = datasets.load_dataset(str(tmp_path / "out"), split="test", cache_dir=str(tmp_path / "plain"))
    assert back.num_rows == 2 and back.features["label"].names[3] == "happy"
    assert sorted(row["video"]["path"] for row in back) == ["test/Happy/0001.avi", "test/Sad/0001.avi"]

    class RecordingApi:  # the Hub is out of reach here: check what would be sent
        def __init__(self):
            self.calls = []

        def create_repo(self, repo_id, **kwargs):
            self.calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            self.calls.append(("upload_folder", kwargs))
            return "commit"

    api = RecordingApi()
    assert push_to_hub(str(tmp_path / "out"), "me/caer-export", private=True, api=api) == "commit"
    assert api.calls[0] == ("create_repo", "me/caer-export", {"repo_type": "dataset", "private": True,
                                                              "exist_ok": True})
    assert api.calls[1][1]["folder_path"] == str(tmp_path / "out") and api.calls[1][1]["repo_type"] == "dataset"
