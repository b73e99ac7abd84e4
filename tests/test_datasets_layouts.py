"""The layouts of the public releases and code bases (issue 12): VideoEmotion-8 / Ekman-6 split lists as VAANet,
CTEN and MART ship them (odd ids, no final newline, a test list without labels, one id in two classes), the
``ve8_01.json`` annotation file, extracted frames + mp3 and raw videos, CAER-S, the bad-media policy of every
builder on fresh and warm loads, the errors that name the folder or label at fault, and the light import."""

import json
import os
import shutil
import subprocess
import sys
import warnings

import datasets
import numpy as np
import pytest

from datasets_emotions import DataDirError, LabelError, SkippedExamplesWarning, load_dataset
from datasets_emotions.synthetic_media import tone, truncated_copy, write_clip
from tree_files import put, write

datasets.disable_progress_bars()

VE8_CLASSES = ["Anger", "Anticipation", "Disgust", "Fear", "Joy", "Sadness", "Surprise", "Trust"]
# (class, id) as in VAANet/CTEN's VideoEmotion-8 lists: ids are file names minus their last extension
VE8_TRAIN = [
    ("Fear", "11.01.09-SuspectApprehension,LehighRiver-Whitehall,PA"),
    ("Surprise", "EmilysBirthdaySurprise.mp4"),
    ("Anticipation", "BerguzarKorel-Feride^AnticipationofLove.wmv"),
    ("Anger", "10AnnoyingThingsCarPassengersDo[Part2]"),
    ("Anger", "OfficeRage3"),
    ("Disgust", "OfficeRage3"),  # the same id in two classes: two videos
    ("Joy", "Fun;Times#1@home~v2"),
    ("Sadness", "PixarsUpplusDeadIsland=EpicSadness-YouTube"),
    ("Trust", "5706584217_bb692f4c11_700"),
]
VE8_TEST = [
    ("Surprise", "LongDistanceSurprise."),
    ("Joy", "GREATSPIZZA."),
    ("Fear", "Double(SilentTerror)"),
    ("Anticipation", "Anticipation-2"),
]
SHORT = ("Joy", "TooShortToExtract")  # n_frames 0: fewer than 16 frames, skipped as VAANet's loader does
BROKEN = ("Trust", "BrokenFrames")  # its first frame is not an image


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A real tiny mp4 with sound, a truncated (unreadable) copy of it and one real JPEG frame."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("layout_media")
    frames = np.random.default_rng(0).integers(0, 255, size=(4, 16, 16, 3), dtype=np.uint8)
    clip = write_clip(folder / "clip.mp4", frames, fps=4, audio=np.zeros((1, 8000), np.float32), sample_rate=16000)
    corrupt = truncated_copy(clip, folder / "corrupt.mp4", keep_fraction=0.3)
    Image.new("RGB", (8, 8), (10, 200, 10)).save(folder / "frame.jpg")
    mp3 = write_clip(folder / "track.mp3", audio=tone(330.0, 1.0, 44100), sample_rate=44100, audio_codec="libmp3lame")
    return {"clip": str(clip), "corrupt": str(corrupt), "jpeg": str(folder / "frame.jpg"), "mp3": mp3}


def frames_folder(folder, jpeg, n_frames=16):
    os.makedirs(folder)
    for index in (1, 2):
        shutil.copyfile(jpeg, os.path.join(folder, f"{index:06d}.jpg"))
    write(os.path.join(folder, "n_frames"), str(n_frames))


def ve8_lists(root):
    """classInd + lists in annotations/ve8/ as the code bases keep them; no final newline, test list unlabelled."""
    number = {name: i + 1 for i, name in enumerate(VE8_CLASSES)}
    write(root / "classInd.txt", "\n".join(f"{number[c]} {c}" for c in VE8_CLASSES))
    lines = [f"{c}/{i} {number[c]}" for c, i in VE8_TRAIN + [SHORT, BROKEN]] + ["Anger/OfficeRage3 1"]  # listed twice
    write(root / "trainlist01.txt", "\r\n".join(lines))
    write(root / "testlist01.txt", "\n".join(f"{c}/{i}" for c, i in VE8_TEST) + "\n\n")


def make_ve8_extracted(data, media, imgs="VideoEmotion8--imgs", mp3="VideoEmotion8--mp3"):
    ve8_lists(data / "annotations" / "ve8")
    for class_name, video_id in VE8_TRAIN + VE8_TEST + [SHORT, BROKEN]:
        frames_folder(data / imgs / class_name / video_id, media["jpeg"], 0 if (class_name, video_id) == SHORT else 16)
        put(media["mp3"], data / mp3 / class_name / f"{video_id}.mp3")
    write(data / imgs / BROKEN[0] / BROKEN[1] / "000001.jpg", "not a jpeg")


def test_ve8_extracted_frames_and_mp3_verbatim_ids_fresh_and_warm(tmp_path, media):
    data, cache = tmp_path / "VideoEmotion8", str(tmp_path / "cache")
    make_ve8_extracted(data, media)
    with pytest.warns(SkippedExamplesWarning) as record:
        ds = load_dataset("videoemotion8", data_dir=str(data), cache_dir=cache)
    (message,) = [str(w.message) for w in record if w.category is SkippedExamplesWarning]
    assert "skipped 3 listed example(s): 1 duplicate entries in a split list (e.g. Anger/OfficeRage3); " \
           "2 unreadable or unusable media" in message
    assert "Joy/TooShortToExtract (fewer than 16 frames (n_frames is 0" in message
    assert "Trust/BrokenFrames (" in message and "video stream without a frame size" in message  # not an image
    assert {split: part.num_rows for split, part in ds.items()} == {"train": 9, "test": 4}
    assert sorted(ds["train"]["video_id"]) == sorted(f"{c}/{i}" for c, i in VE8_TRAIN)
    assert ds["test"]["video_id"] == [f"{c}/{i}" for c, i in VE8_TEST]  # list order, trailing dots kept
    rows = {row["video_id"]: row for split in ds.values() for row in split}
    surprise = rows["Surprise/EmilysBirthdaySurprise.mp4"]
    assert os.path.isdir(surprise["video"])  # a frames folder named *.mp4 is a folder, not a video
    assert surprise["video"] == str(data / "VideoEmotion8--imgs" / "Surprise" / "EmilysBirthdaySurprise.mp4")
    assert surprise["audio"] == str(data / "VideoEmotion8--mp3" / "Surprise" / "EmilysBirthdaySurprise.mp4.mp3")
    assert rows["Surprise/LongDistanceSurprise."]["audio"].endswith("/Surprise/LongDistanceSurprise..mp3")
    assert rows["Anger/OfficeRage3"]["video"] != rows["Disgust/OfficeRage3"]["video"]
    names = ds["train"].features["label"].names
    assert [names[rows[f"{c}/{i}"]["label"]] for c, i in VE8_TRAIN] == [c.lower() for c, _ in VE8_TRAIN]
    assert ds["train"].features["label"].names == [c.lower() for c in VE8_CLASSES]
    assert "Skipped while preparing" in ds["train"].info.description
    # warm cache: the same rows and the same counts, warned again
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 3 listed example.*when this cached copy was prepared"):
        warm = load_dataset("videoemotion8", data_dir=str(data), cache_dir=cache)
    assert warm["test"]["video_id"] == ds["test"]["video_id"] and warm["train"].num_rows == 9
    # what training does with such rows: frames from the folder, sound from the mp3
    from datasets_emotions import with_processor
    from modeling_avcpnet.configuration_avcpnet import AVCPNetConfig
    from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor

    config = AVCPNetConfig.tiny()
    batch = with_processor(ds["test"], AVCPNetProcessor.from_model_config(config), training=False)[:2]
    assert batch["pixel_values_videos"].shape[:3] == (2, config.num_segments, config.frames_per_segment)
    assert batch["audio_mask"].all() and batch["input_features"].abs().sum() > 0
    assert batch["labels"].tolist() == [VE8_CLASSES.index("Surprise"), VE8_CLASSES.index("Joy")]


def test_ve8_annotation_json_and_configurable_roots(tmp_path, media):
    """Only ``ve8_01.json`` (as VAANet's tools/ve8_json.py writes it) and media folders with other names."""
    data = tmp_path / "ve8"
    make_ve8_extracted(data, media, imgs="jpg_frames_here", mp3="sound_tracks")
    os.rename(data / "jpg_frames_here", data / "pictures")
    os.rename(data / "sound_tracks", data / "sound")
    lists = data / "annotations" / "ve8"
    database = {}
    for subset, name in (("training", "trainlist01.txt"), ("validation", "testlist01.txt")):
        for line in (lists / name).read_text().split("\n"):
            if line.strip():
                class_name, video_id = line.split()[0].split("/", 1)
                database[video_id] = {"subset": subset, "annotations": {"label": class_name}}
    shutil.rmtree(lists)
    write(data / "ve8_01.json", json.dumps({"labels": VE8_CLASSES, "database": database}))
    with pytest.raises(DataDirError, match=r"class folder 'Fear/' \(named by 2 entries, e.g. .*ve8_01.json database"):
        load_dataset("videoemotion8", data_dir=str(data), cache_dir=str(tmp_path / "c"))  # roots not found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedExamplesWarning)
        ds = load_dataset("videoemotion8", data_dir=str(data), cache_dir=str(tmp_path / "c"),
                          frames_dir="pictures", audio_dir=str(data / "sound"), annotation_path="ve8_01.json")
    # the JSON is keyed by bare id: OfficeRage3 survives once, in the class written last (the repeated Anger line)
    assert ds["train"].num_rows == 8 and ds["test"].num_rows == 4
    assert "Anger/OfficeRage3" in ds["train"]["video_id"] and "Disgust/OfficeRage3" not in ds["train"]["video_id"]
    assert ds["test"][0]["audio"] == str(data / "sound" / "Surprise" / "LongDistanceSurprise..mp3")


def test_ve8_raw_videos_and_misspelled_class_folder(tmp_path, media):
    data = tmp_path / "raw"
    ve8_lists(data)
    for class_name, video_id in VE8_TRAIN + VE8_TEST:  # the original files: id + its extension
        put(media["clip"], data / class_name / f"{video_id}.mp4")
    put(media["corrupt"], data / SHORT[0] / f"{SHORT[1]}.mp4")
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 3 listed example.*1 listed videos not found "
                                                    r"\(e.g. Trust/BrokenFrames\); 1 duplicate .*; 1 unreadable .*"
                                                    r"TooShortToExtract"):
        ds = load_dataset("videoemotion8", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    rows = {row["video_id"]: row for row in ds["train"]}
    assert rows["Surprise/EmilysBirthdaySurprise.mp4"]["video"] == str(data / "Surprise" /
                                                                         "EmilysBirthdaySurprise.mp4.mp4")
    assert rows["Fear/11.01.09-SuspectApprehension,LehighRiver-Whitehall,PA"]["audio"] == ""
    os.rename(data / "Surprise", data / "Suprise")
    with pytest.raises(DataDirError, match=r"class folder 'Surprise/' \(named by 2 entries, e.g. .*trainlist01.txt:2\)"
                                           r".*found 'Suprise/': misspelled\?"):
        load_dataset("videoemotion8", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    os.rename(data / "Suprise", data / "Surprise")
    with pytest.raises(ValueError, match=r"has the splits \['train', 'test'\], not 'validation'"), \
            pytest.warns(SkippedExamplesWarning, match="when this cached copy was prepared"):
        load_dataset("videoemotion8", data_dir=str(data), split="validation", cache_dir=str(tmp_path / "c"))


def test_ekman6_renamed_to_numbers_and_polarity(tmp_path, media):
    """CTEN's Ekman-6: lowercase classes, videos renamed to numbers, frames in Ekman6-jpg/."""
    data = tmp_path / "Ekman6"
    classes = ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
    write(data / "annotations" / "classInd.txt", "\n".join(f"{i + 1} {c}" for i, c in enumerate(classes)))
    write(data / "annotations" / "trainlist01.txt", "\n".join(f"{c}/{100 + i} {i + 1}" for i, c in enumerate(classes)))
    write(data / "annotations" / "testlist01.txt", "\n".join(f"{c}/{200 + i}" for i, c in enumerate(classes)))
    for i, class_name in enumerate(classes):
        for number in (100 + i, 200 + i):
            frames_folder(data / "Ekman6-jpg" / class_name.capitalize() / str(number), media["jpeg"])
    ds = load_dataset("ekman6", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    assert ds["test"]["video_id"] == [f"{c}/{200 + i}" for i, c in enumerate(classes)]
    polarity = dict(zip(ds["train"]["label"], ds["train"]["polarity"]))
    assert polarity == {0: 2, 1: 2, 2: 2, 3: 0, 4: 2, 5: 0}  # no neutral class: surprise positive (table 9 note)
    assert 1 not in ds["test"]["polarity"]
    override = load_dataset("ekman6", data_dir=str(data), split="train", cache_dir=str(tmp_path / "c"),
                            label2polarity={"surprise": "negative"})
    assert override["polarity"][5] == 2


def test_caer_static_unique_ids_and_wrong_kind(tmp_path, media):
    from PIL import Image

    data = tmp_path / "CAER-S"
    for split in ("train", "test"):
        for class_name in ("Angry", "Happy", "Surprise"):
            os.makedirs(data / split / class_name)
            Image.new("RGB", (12, 8), (1, 2, 3)).save(data / split / class_name / "0001.png")
    write(data / "test" / "Happy" / "0002.png", "not a png")
    with pytest.raises(DataDirError, match=r"hold images .*this is CAER-S; .*load_dataset\('caer', 'static'"):
        load_dataset("caer", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 1 .*test/Happy/0002 \(.*video stream without a frame"):
        ds = load_dataset("caer", "static", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    assert ds["train"]["video_id"] == ["train/Angry/0001", "train/Happy/0001", "train/Surprise/0001"]
    assert set(ds["train"]["video_id"]).isdisjoint(ds["test"]["video_id"])  # numbering restarts per split
    assert ds["test"][0]["video"].endswith("test/Angry/0001.png") and ds["test"][0]["audio"] == ""
    # the processor reads an image as a 1-frame clip (looped over every segment) without sound
    from datasets_emotions import with_processor
    from modeling_avcpnet.configuration_avcpnet import AVCPNetConfig
    from modeling_avcpnet.media_avcpnet import MissingAudioWarning
    from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor

    config = AVCPNetConfig.tiny()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transformed = with_processor(ds["train"], AVCPNetProcessor.from_model_config(config), training=False)
        batch = transformed[:2]
        assert not transformed[2]["audio_mask"]
    # three images without sound, two batches: one warning naming the first, not one per image
    missing = [str(w.message) for w in caught if issubclass(w.category, MissingAudioWarning)]
    assert len(missing) == 1 and "train/Angry/0001.png" in missing[0], missing
    assert "not reported one by one" in missing[0]
    pixels = batch["pixel_values_videos"]
    assert pixels.shape[:3] == (2, config.num_segments, config.frames_per_segment)
    assert bool((pixels[:, :, :1] == pixels).all()) and not batch["audio_mask"].any()


# ---- one bad-media policy for every builder ---------------------------------------------------------------------
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def make_meld(root, media, corrupt="dia0_utt1.mp4", rows=3):
    for csv_name, folder in (("train_sent_emo.csv", "train_splits"), ("test_sent_emo.csv",
                                                                        "output_repeated_splits_test")):
        lines = [MELD_HEADER] + [f'{k + 1},"Hi",Ross,joy,positive,0,{k},1,1,"0","1"\n' for k in range(rows)]
        write(root / csv_name, "".join(lines))
        for k in range(rows):
            name = f"dia0_utt{k}.mp4"
            put(media["corrupt"] if folder == "train_splits" and name == corrupt else media["clip"],
                 root / folder / name)


def make_tree(name, root, media):
    """The builder's tree with one corrupt (truncated) clip among good ones; returns (config, good row count)."""
    if name == "meld":
        make_meld(root, media)
        return None, 5
    if name == "mer2023":
        write(root / "train-label.csv", "name,discrete,valence\n" + "".join(f"s{k},happy,1.0\n" for k in range(3)))
        for k in range(3):
            put(media["corrupt"] if k == 1 else media["clip"], root / "video-labeled" / f"s{k}.mp4")
        return None, 2
    if name == "caer":
        for split in ("train", "test"):
            for k in range(2):
                put(media["clip"], root / split / "Happy" / f"{k:04d}.avi")
        put(media["corrupt"], root / "train" / "Sad" / "0002.avi")
        return None, 4
    if name == "emotions":
        lines = ["file_name,label,split"] + [f"v{k}.mp4,fear,{'train' if k < 2 else 'test'}" for k in range(3)]
        write(root / "metadata.csv", "\n".join(lines))
        for k in range(3):
            put(media["corrupt"] if k == 0 else media["clip"], root / f"v{k}.mp4")
        return None, 2
    # ekman6 / videoemotion8: raw videos next to the lists
    write(root / "trainlist01.txt", "Joy/a 4\nJoy/b 4\nFear/c 3")
    write(root / "testlist01.txt", "Fear/d")
    for class_name, video_id in (("Joy", "a"), ("Joy", "b"), ("Fear", "c"), ("Fear", "d")):
        put(media["corrupt"] if video_id == "b" else media["clip"], root / class_name / f"{video_id}.mp4")
    return None, 3


@pytest.mark.parametrize("name", ["meld", "mer2023", "caer", "emotions", "ekman6", "videoemotion8"])
def test_corrupt_clip_skipped_and_counted_fresh_and_warm(tmp_path, media, name):
    data, cache = tmp_path / "data", str(tmp_path / "cache")
    config, good = make_tree(name, data, media)
    for load in ("fresh", "warm"):
        with pytest.warns(SkippedExamplesWarning, match=r"skipped 1 listed example\(s\): 1 unreadable or unusable "
                                                        r"media \(e.g. .*\(unreadable \(") as record:
            ds = load_dataset(name, config, data_dir=str(data), cache_dir=cache)
        (message,) = [str(w.message) for w in record if w.category is SkippedExamplesWarning]
        assert ("when this cached copy was prepared" in message) == (load == "warm")
        assert sum(part.num_rows for part in ds.values()) == good, load


def test_sample_damaged_cached_clip_is_generated_again(tmp_path):
    small = dict(clips_per_class_train=1, noisy_train=0, clips_per_class_validation=0, noisy_validation=0,
                 clips_per_class_test=0, noisy_test=0, duration=0.5)
    cache = str(tmp_path / "cache")
    first = load_dataset("sample", split="train", cache_dir=cache, **small)
    damaged = first[2]["video"]
    truncated_copy(first[3]["video"], damaged, keep_fraction=0.3)
    with pytest.warns(SkippedExamplesWarning, match=r"1 damaged clip\(s\) in the media cache were removed"):
        again = load_dataset("sample", split="train", cache_dir=cache, download_mode="force_redownload", **small)
    from datasets_emotions.builder_base import media_problem

    assert again.num_rows == 6 and media_problem(damaged) is None
    with pytest.warns(SkippedExamplesWarning, match="when this cached copy was prepared"):
        load_dataset("sample", split="train", cache_dir=cache, **small)


# ---- errors that name the problem ------------------------------------------------------------------------------
def test_meld_misspelled_clip_folder_and_unknown_labels(tmp_path, media):
    data = tmp_path / "MELD"
    make_meld(data, media, corrupt=None)
    os.rename(data / "train_splits", data / "train_split")
    with pytest.raises(DataDirError, match=r"clip folder 'train_splits/' of train_sent_emo.csv is not in .*"
                                           r"found 'train_split/': misspelled\?"):
        load_dataset("meld", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    os.rename(data / "train_split", data / "train_splits")
    write(data / "test_sent_emo.csv", MELD_HEADER + '1,Hi,Joey,bored,neutral,0,0,1,1,"0","1"\n')
    with pytest.raises(LabelError, match=r"test_sent_emo.csv:2: emotion 'bored' is not one of the MELD labels"):
        load_dataset("meld", "sentiment", data_dir=str(data), cache_dir=str(tmp_path / "c"))
    write(data / "test_sent_emo.csv", MELD_HEADER + '1,Hi,Joey,joy,happyish,0,0,1,1,"0","1"\n')
    with pytest.raises(LabelError, match=r"test_sent_emo.csv:2: sentiment 'happyish' is not one of"):
        load_dataset("meld", data_dir=str(data), cache_dir=str(tmp_path / "c"))


def test_meld_streaming_probes_each_clip_only_when_reached(tmp_path, media):
    data = tmp_path / "MELD"
    make_meld(data, media, corrupt="dia0_utt2.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedExamplesWarning)  # nothing is probed up front
        stream = iter(load_dataset("meld", data_dir=str(data), split="train", streaming=True))
        assert next(stream)["video_id"] == "dia0_utt0"
    with pytest.warns(SkippedExamplesWarning, match=r"skipped 1 listed example.*dia0_utt2 \(unreadable"):
        assert [row["video_id"] for row in stream] == ["dia0_utt1"]
    # the last clip is repaired after the stream started: it was not probed before it was reached
    stream = iter(load_dataset("meld", data_dir=str(data), split="train", streaming=True))
    next(stream)
    put(media["clip"], data / "train_splits" / "dia0_utt2.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedExamplesWarning)
        assert [row["video_id"] for row in stream] == ["dia0_utt1", "dia0_utt2"]


@pytest.mark.smoke
def test_import_loads_neither_torch_nor_transformers(tmp_path):
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import datasets_emotions"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))})
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "datasets_emotions" in imported and "datasets" in imported
    assert not imported & {"torch", "transformers", "torchvision", "av"}, imported & {"torch", "transformers"}


def test_empty_split_says_why_and_shows_the_layout(tmp_path, media):
    data = tmp_path / "Ekman6"
    write(data / "trainlist01.txt", "joy/1 4\njoy/2 4")
    write(data / "testlist01.txt", "fear/3")
    put(media["corrupt"], data / "joy" / "1.mp4")
    put(media["clip"], data / "fear" / "3.mp4")
    with pytest.raises(DataDirError, match=r"(?s)split 'train' has no usable example \(every listed example was "
                                           r"skipped: 1 listed videos not found \(e.g. joy/2\); 1 unreadable .*"
                                           r"Expected layout under data_dir:.*trainlist01.txt"):
        load_dataset("ekman6", data_dir=str(data), cache_dir=str(tmp_path / "c"))
