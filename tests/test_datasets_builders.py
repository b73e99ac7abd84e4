"""Builders on tiny trees in each real layout, made from generated clips: counts, label ids, splits, metadata,
warnings, errors, streaming and num_proc preparation."""

import os
import shutil
import warnings

import datasets
import numpy as np
import pytest

from datasets_emotions import DataDirError, LabelError, SkippedExamplesWarning, load_dataset
from datasets_emotions.synthetic_media import write_clip
from tree_files import put, write
from modeling_avcpnet.configuration_avcpnet import EMOTIONS_LABELS

datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """One real tiny mp4 (H.264 + AAC); the trees hold copies of it."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    frames = np.random.default_rng(0).integers(0, 255, size=(4, 16, 16, 3), dtype=np.uint8)
    return write_clip(path, frames, fps=4, audio=np.zeros((1, 8000), np.float32), sample_rate=16000)


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory):
    """One real 8x8 JPEG that frames folders copy (the builders probe the first frame)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("frame") / "frame.jpg"
    Image.new("RGB", (8, 8), (200, 40, 40)).save(path)
    return str(path)


def split_counts(dataset_dict):
    return {split: part.num_rows for split, part in dataset_dict.items()}


# ---- eMotions, release layout -----------------------------------------------------------------------------------
RELEASE_CLASSES = ["Excitation", "Fear", "Neutral", "Relaxation", "Sad", "Tension"]  # the release's own spelling


def make_release_tree(root, clip, jpeg, per_class=(3, 1)):
    """Frames folders + mp3 for each listed video; the train list names one video that is absent."""
    write(root / "classInd.txt", "".join(f"{i + 1} {name}\n" for i, name in enumerate(RELEASE_CLASSES)))
    lines = {"train": [], "test": []}
    for number, name in enumerate(RELEASE_CLASSES, 1):
        for split, count in zip(("train", "test"), per_class):
            for k in range(count + number - 1):  # unbalanced: class i has count + i - 1 videos
                video_id = f"{split}_{name.lower()}_{k}"
                frames = root / "eMotions_imgs" / name / video_id
                os.makedirs(frames)
                for f in range(1, 3):
                    shutil.copyfile(jpeg, frames / f"{f:06d}.jpg")
                if k % 2 == 0:  # half of them ship an mp3
                    put(clip, root / "eMotions_mp3" / name / f"{video_id}.mp3")
                lines[split].append(f"{name}/{video_id} {number}" if split == "train" else f"{name}/{video_id}")
    lines["train"].append("Fear/not_extracted 2")
    write(root / "trainlist01.txt", "\n".join(lines["train"]) + "\n")
    write(root / "testlist01.txt", "\n".join(lines["test"]) + "\n")
    return lines


def test_emotions_release_layout(tmp_path, clip, jpeg):
    make_release_tree(tmp_path / "data", clip, jpeg)
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 1 listed example.*Fear/not_extracted"):
        ds = load_dataset("emotions", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    # class i (1-based) has 3 + i - 1 train and 1 + i - 1 test videos
    assert split_counts(ds) == {"train": sum(3 + i for i in range(6)), "test": sum(1 + i for i in range(6))}
    train = ds["train"]
    assert train.features["label"].names == EMOTIONS_LABELS
    assert train.features["polarity"].names == ["positive", "neutral", "negative"]
    row = next(r for r in train if r["video_id"] == "train_sad_0")
    assert row["label"] == EMOTIONS_LABELS.index("sadness")
    assert row["polarity"] == 2  # negative
    assert os.path.isdir(row["video"]) and row["video"].endswith("eMotions_imgs/Sad/train_sad_0")
    assert row["audio"].endswith("eMotions_mp3/Sad/train_sad_0.mp3")
    assert next(r for r in train if r["video_id"] == "train_sad_1")["audio"] == ""
    counts = np.bincount(train["label"], minlength=6).tolist()
    assert counts == [3, 4, 5, 6, 7, 8]
    relaxation = [r["polarity"] for r in train if r["label"] == EMOTIONS_LABELS.index("relaxation")]
    assert set(relaxation) == {0}  # positive


def test_emotions_variants_sampled_and_shipped(tmp_path, clip, jpeg):
    data = tmp_path / "data"
    make_release_tree(data, clip, jpeg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedExamplesWarning)
        balanced = load_dataset("emotions", "balanced", data_dir=str(data), cache_dir=str(tmp_path / "c"))
        test_variant = load_dataset("emotions", "test", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    assert np.bincount(balanced["train"]["label"]).tolist() == [3] * 6  # smallest train class has 3
    assert np.bincount(balanced["test"]["label"]).tolist() == [1] * 6
    assert test_variant["train"].num_rows == 33 and np.bincount(test_variant["test"]["label"]).tolist() == [1] * 6
    # deterministic: the kept members are the smallest SHA-1 of the video ids, whatever the file order
    with pytest.warns(SkippedExamplesWarning):
        again = load_dataset("emotions", "balanced", data_dir=str(data), split="train",
                             cache_dir=str(tmp_path / "c2"))
    assert sorted(again["video_id"]) == sorted(balanced["train"]["video_id"])
    # shipped lists win over sampling
    write(data / "trainlist01_balanced.txt", "Fear/train_fear_0 2\nTension/train_tension_3")  # no final newline
    write(data / "testlist01_balanced.txt", "Neutral/test_neutral_0\n")
    shipped = load_dataset("emotions", "balanced", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    assert sorted(shipped["train"]["video_id"]) == ["train_fear_0", "train_tension_3"]
    assert shipped["test"]["label"] == [EMOTIONS_LABELS.index("neutral")]


def test_emotions_raw_layout_streaming_and_num_proc(tmp_path, clip):
    data = tmp_path / "raw"
    rows = ["file_name,label,split,platform"]
    for i in range(12):
        label = EMOTIONS_LABELS[i % 6]
        split = ["train", "train", "val", "test"][i % 4]
        put(clip, data / "videos" / f"v{i}.mp4")
        rows.append(f"videos/v{i}.mp4,{label.capitalize()},{split},douyin")
    rows.append("videos/gone.mp4,fear,train,douyin")
    write(data / "metadata.csv", "\n".join(rows) + "\n")
    with pytest.warns(SkippedExamplesWarning, match="skipped 1 "):
        ds = load_dataset("emotions", data_dir=str(data), cache_dir=str(tmp_path / "c"), num_proc=2)
    assert split_counts(ds) == {"train": 6, "validation": 3, "test": 3}
    first = ds["train"][0]
    assert first["video"] == str(data / "videos" / "v0.mp4")
    assert first["label"] == 0 and first["video_id"] == "videos/v0"
    with pytest.warns(SkippedExamplesWarning, match="skipped 1 "):  # streaming plans the splits the same way
        stream = load_dataset("emotions", data_dir=str(data), split="validation", streaming=True,
                              cache_dir=str(tmp_path / "c"))
    assert isinstance(stream, datasets.IterableDataset)
    assert [r["video_id"] for r in stream] == ds["validation"]["video_id"]
    assert [r["label"] for r in stream] == ds["validation"]["label"]


def test_emotions_bad_inputs(tmp_path, clip):
    with pytest.raises(DataDirError, match=r"(?s)does not exist.*trainlist01.txt.*metadata.csv"):
        load_dataset("emotions", data_dir=str(tmp_path / "nowhere"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataDirError, match="neither metadata.csv"):
        load_dataset("emotions", data_dir=str(tmp_path / "empty"))
    with pytest.raises(DataDirError, match="no data_dir"):
        load_dataset("emotions")
    bad = tmp_path / "bad"
    put(clip, bad / "a.mp4")
    write(bad / "metadata.csv", "file_name,label,split\na.mp4,happy,train\n")
    with pytest.raises(LabelError, match=r"metadata.csv:2: label 'happy' is not one of"):
        load_dataset("emotions", data_dir=str(bad), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match=r"Unknown dataset 'emotion'. Valid names: caer, ekman6, emotions"):
        load_dataset("emotion")
    with pytest.raises(ValueError, match=r"Unknown config 'full'.*Valid configs: default, balanced, test"):
        load_dataset("emotions", "full", data_dir=str(bad))


# ---- CAER ---------------------------------------------------------------------------------------------------------
def test_caer_layout_both_anger_spellings(tmp_path, clip):
    data = tmp_path / "CAER"
    classes = ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
    for split, count in (("train", 2), ("validation", 1), ("test", 1)):
        for name in classes:
            for k in range(count):
                put(clip, data / split / name / f"{k:04d}.avi")
    put(clip, data / "test" / "Anger" / "0009.avi")  # the other spelling in the same tree
    ds = load_dataset("caer", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    assert split_counts(ds) == {"train": 14, "validation": 7, "test": 8}
    assert ds["train"].features["label"].names == ["anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert ds["test"]["label"].count(0) == 2 and np.bincount(ds["train"]["label"]).tolist() == [2] * 7
    assert sorted(r["video_id"] for r in ds["test"] if r["label"] == 0) == ["test/Anger/0009", "test/Angry/0000"]
    assert ds["train"][0]["audio"] == "" and ds["train"][0]["video"].endswith(".avi")
    surprise = load_dataset("caer", data_dir=str(data), split="test", cache_dir=str(tmp_path / "c"),
                            label2polarity={"surprise": "negative"})
    assert {r["polarity"] for r in surprise if r["label"] == 6} == {2}
    put(clip, data / "train" / "Contempt" / "0000.avi")
    with pytest.raises(LabelError, match=r"train/Contempt: label 'Contempt' is not one of"):
        load_dataset("caer", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataDirError, match=r"(?s)no train/.*Anger/ \(or Angry/\)"):
        load_dataset("caer", data_dir=str(data / "train" / "Fear"))


# ---- MELD ---------------------------------------------------------------------------------------------------------
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def make_meld_tree(root, clip):
    emotions = [("joy", "positive"), ("neutral", "neutral"), ("anger", "negative"), ("surprise", "positive"),
                ("sadness", "negative"), ("fear", "negative"), ("disgust", "negative")]
    for split, (csv_name, folder) in {"train": ("train_sent_emo.csv", "train_splits"),
                                      "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
                                      "test": ("test_sent_emo.csv", "output_repeated_splits_test")}.items():
        lines = [MELD_HEADER]
        for k, (emotion, sentiment) in enumerate(emotions):
            lines.append(f'{k + 1},"Oh, {split} line {k}!",Ross,{emotion},{sentiment},{k // 3},{k % 3},3,{k + 1},'
                         f'"00:14:38,127","00:14:40,378"\n')
            name = f"dia{k // 3}_utt{k % 3}.mp4"
            if split == "dev" and k == 4:
                continue  # the missing dev clip
            if split == "train" and k == 1:
                write(root / folder / name, "not a video")  # the corrupt train clip
                continue
            put(clip, root / folder / name)
        write(root / csv_name, "".join(lines))


def test_meld_configs_metadata_and_bad_clips(tmp_path, clip):
    make_meld_tree(tmp_path / "MELD", clip)
    with pytest.warns(SkippedExamplesWarning) as record:
        ds = load_dataset("meld", data_dir=str(tmp_path / "MELD"), cache_dir=str(tmp_path / "c"))
    messages = [str(w.message) for w in record if issubclass(w.category, SkippedExamplesWarning)]
    assert len(messages) == 1
    assert "skipped 2 listed example(s)" in messages[0]
    assert "1 rows whose clip is missing (e.g. dev_splits_complete/dia1_utt1.mp4)" in messages[0]
    assert "1 unreadable or unusable media (e.g. dia0_utt1 (unreadable (" in messages[0]
    assert split_counts(ds) == {"train": 6, "validation": 6, "test": 7}
    train = ds["train"]
    assert train.features["label"].names == ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
    row = train[0]
    assert row["utterance"] == "Oh, train line 0!" and row["speaker"] == "Ross"
    assert (row["dialogue_id"], row["utterance_id"], row["season"], row["episode"]) == (0, 0, 3, 1)
    assert (row["start_time"], row["end_time"], row["sr_no"]) == ("00:14:38,127", "00:14:40,378", 1)
    assert row["label"] == 1 and row["polarity"] == 0 and row["sentiment"] == "positive"
    surprise = next(r for r in ds["test"] if r["emotion"] == "surprise")
    assert surprise["polarity"] == 1  # neutral by default
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedExamplesWarning)
        sentiment = load_dataset("meld", "sentiment", data_dir=str(tmp_path / "MELD"), split="test",
                                 cache_dir=str(tmp_path / "c"))
    assert sentiment.features["label"].names == ["positive", "neutral", "negative"]
    assert sentiment["label"] == [0, 1, 2, 0, 2, 2, 2] and sentiment["polarity"] == sentiment["label"]
    write(tmp_path / "MELD" / "test_sent_emo.csv", MELD_HEADER + '1,Hi,Joey,bored,neutral,0,0,1,1,"0","1"\n')
    with pytest.raises(LabelError, match=r"test_sent_emo.csv:2: emotion 'bored' is not one of"):
        load_dataset("meld", data_dir=str(tmp_path / "MELD"), cache_dir=str(tmp_path / "c"))
    write(tmp_path / "MELD" / "test_sent_emo.csv", MELD_HEADER + '1,Hi,Joey,joy,positive,x1,0,1,1,"0","1"\n')
    with pytest.raises(ValueError, match=r"test_sent_emo.csv:2: expected integer ids"):
        load_dataset("meld", data_dir=str(tmp_path / "MELD"), cache_dir=str(tmp_path / "c"))


# ---- Ekman-6 and VideoEmotion-8 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,classes", [
    ("ekman6", ["Anger", "Disgust", "Fear", "Joy", "Sadness", "Surprise"]),
    ("videoemotion8", ["Anger", "Anticipation", "Disgust", "Fear", "Joy", "Sadness", "Surprise", "Trust"]),
])
def test_split_list_layouts(tmp_path, clip, name, classes):
    data = tmp_path / name
    write(data / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train, test = [], []
    for i, c in enumerate(classes):
        for k in range(2):
            put(clip, data / c / f"{c.lower()}_{k}.mp4")
        train.append(f"{c}/{c.lower()}_0.mp4 {i + 1}")
        test.append(f"{c}/{c.lower()}_1")  # without extension
    train.append(f"{classes[0]}/deleted_video.mp4 1")
    write(data / "trainlist01.txt", "\n".join(train) + "\n")
    write(data / "testlist01.txt", "\n".join(test) + "\n")
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 1 listed example\(s\): 1 listed videos not found"):
        ds = load_dataset(name, data_dir=str(data), cache_dir=str(tmp_path / "c"))
    assert split_counts(ds) == {"train": len(classes), "test": len(classes)}
    assert ds["train"]["label"] == list(range(len(classes)))
    assert ds["train"].features["label"].names == [c.lower() for c in classes]
    assert ds["test"][0]["video"] == str(data / classes[0] / f"{classes[0].lower()}_1.mp4")
    write(data / "trainlist01.txt", f"{classes[1]}/{classes[1].lower()}_0.mp4 1\n")
    with pytest.raises(LabelError, match=r"trainlist01.txt:1: label number 1 means 'Anger'"):
        load_dataset(name, data_dir=str(data), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataDirError, match=r"(?s)none of the split lists.*trainlist01.txt.*_01.json"):
        load_dataset(name, data_dir=str(data / classes[0]))


# ---- cache hash ---------------------------------------------------------------------------------------------------
def test_cache_hash_follows_builder_source_version_and_data(tmp_path, monkeypatch, clip):
    """An edited builder, another package version or changed data never reuse an old cache folder."""
    import importlib
    import sys

    from datasets_emotions import builder_base

    module_path = tmp_path / "edited_builder.py"
    module_path.write_text("from datasets_emotions.caer import CaerBuilder\n\nclass EditedBuilder(CaerBuilder):\n"
                           "    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("edited_builder")
    data = tmp_path / "CAER"
    put(clip, data / "train" / "Happy" / "0001.avi")
    first = builder_base.builder_hash(module.EditedBuilder, str(data))
    assert builder_base.builder_hash(module.EditedBuilder, str(data)) == first  # stable
    module_path.write_text(module_path.read_text() + "    LABEL_ALIASES = {'angry': 'anger', 'mad': 'anger'}\n")
    importlib.reload(module)
    edited = builder_base.builder_hash(module.EditedBuilder, str(data))
    assert edited != first
    put(clip, data / "train" / "Happy" / "0002.avi")  # new clip in a second-level folder
    assert builder_base.builder_hash(module.EditedBuilder, str(data)) != edited
    monkeypatch.setattr(builder_base, "package_version", lambda: "99.0")
    assert builder_base.builder_hash(module.EditedBuilder, str(data)) not in (first, edited)
    sys.modules.pop("edited_builder", None)
    # the hash is the cache folder: a new clip gives a new, complete dataset instead of the stale one
    before = load_dataset("caer", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    put(clip, data / "train" / "Happy" / "0003.avi")
    after = load_dataset("caer", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    assert (before["train"].num_rows, after["train"].num_rows) == (2, 3)
