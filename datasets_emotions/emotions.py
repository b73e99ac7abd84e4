"""eMotions (Wu et al., arXiv 2311.17335): 27,996 short videos in 6 emotion classes.

Configs: ``default`` (all videos), ``balanced`` (category-balanced variant), ``test`` (test-oriented variant).

Two layouts are read (``LAYOUT`` below):

* release layout of the public code: ``classInd.txt``, ``trainlist01.txt`` / ``testlist01.txt`` of
  ``Class/video_id [label]`` lines, frames in ``eMotions_imgs/<Class>/<video_id>/%06d.jpg`` and the soundtrack in
  ``eMotions_mp3/<Class>/<video_id>.mp3`` (``video`` is then the frames folder and ``audio`` the mp3, or ``""``
  when no mp3 ships); clips ``<Class>/<video_id>.mp4`` (or under ``videos/``) are accepted instead of frames.
* raw-video layout: ``metadata.csv`` with at least ``file_name,label,split`` (paths relative to ``data_dir``;
  optional ``audio`` and ``video_id`` columns).

Variants: when their membership ships as lists (``trainlist01_<variant>.txt`` / ``testlist01_<variant>.txt``, or
``metadata_<variant>.csv``) those are used. Otherwise they are rebuilt by deterministic sampling (a
reconstruction, not the authors' membership; the dataset card says so):

* ``balanced``: in every split, each class keeps as many videos as the split's smallest class has;
* ``test``: the train split is kept whole and the test split is made category-balanced the same way;

where "keeps n videos" means the n with the smallest SHA-1 of their ``video_id``, so membership depends neither
on file order nor on a random seed.

Columns: the core ``video``, ``audio``, ``label`` (excitation, fear, neutral, relaxation, sadness, tension),
``polarity`` (the paper's map) and ``video_id``. Listed videos whose media are missing are skipped and counted in
one warning; labels outside the six (``Sad`` is read as ``sadness``) are errors naming the file and the label.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import os
from collections import defaultdict

import datasets

from modeling_avcpnet.labels import EMOTIONS_LABELS, EMOTIONS_POLARITY

from .builder_base import SPLIT_ALIASES, LabelError
from .split_lists import SplitListBuilder, SplitListConfig

logger = logging.getLogger(__name__)
VARIANTS = ("default", "balanced", "test")


@dataclasses.dataclass
class EmotionsConfig(SplitListConfig):
    variant: str = "default"


def balanced_subset(rows: list[dict]) -> list[dict]:
    """Each class cut to the size of the smallest class present, keeping the smallest SHA-1(video_id) first."""
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    if not by_label:
        return []
    size = min(len(group) for group in by_label.values())
    kept = set()
    for group in by_label.values():
        group.sort(key=lambda row: hashlib.sha1(row["video_id"].encode()).hexdigest())
        kept.update(id(row) for row in group[:size])
    return [row for row in rows if id(row) in kept]


class EmotionsBuilder(SplitListBuilder):
    BUILDER_CONFIG_CLASS = EmotionsConfig
    BUILDER_CONFIGS = [
        EmotionsConfig(name="default", variant="default", description="All 27,996 eMotions videos"),
        EmotionsConfig(name="balanced", variant="balanced", description="Category-balanced variant"),
        EmotionsConfig(name="test", variant="test", description="Test-oriented variant"),
    ]
    DEFAULT_CONFIG_NAME = "default"
    LABELS = tuple(EMOTIONS_LABELS)
    LABEL_ALIASES = {"sad": "sadness", "excited": "excitation", "relaxed": "relaxation", "tense": "tension"}
    DEFAULT_POLARITY = EMOTIONS_POLARITY
    LAYOUT = """\
Release layout (public code; the lists may also sit in annotations/):
<data_dir>/
  classInd.txt            lines '<number> <Class>' (Excitation, Fear, Neutral, Relaxation, Sadness/Sad, Tension)
  trainlist01.txt         lines '<Class>/<video_id> [label]'
  testlist01.txt          same format, label optional
  trainlist01_balanced.txt, testlist01_balanced.txt, trainlist01_test.txt, testlist01_test.txt   (optional)
  eMotions_imgs/<Class>/<video_id>/000001.jpg ... n_frames   frames (or clips <Class>/<video_id>.mp4, or
                                                              videos/<Class>/...; frames_dir=... to rename)
  eMotions_mp3/<Class>/<video_id>.mp3               soundtracks (optional; audio_dir=... to rename)
Raw-video layout:
<data_dir>/
  metadata.csv            columns file_name,label,split[,audio][,video_id]; paths relative to data_dir;
                          split is train, validation or test
  metadata_balanced.csv, metadata_test.csv          (optional, same columns)
  <the video files named in file_name>"""

    def _info(self):
        return datasets.DatasetInfo(
            description="eMotions: emotion recognition in short videos (Douyin, Kuaishou, TikTok), 6 classes.",
            features=self.core_features(),
            citation=CITATION,
            homepage="https://arxiv.org/abs/2311.17335",
        )

    # ---- layout -----------------------------------------------------------------------------------------------
    def is_raw_layout(self, data_dir: str) -> bool:
        return os.path.isfile(os.path.join(data_dir, "metadata.csv"))

    def validate_layout(self, data_dir: str) -> None:
        if self.is_raw_layout(data_dir):
            return
        if self.find_annotations(data_dir) is None:
            raise self.layout_error(f"{data_dir} has neither metadata.csv (raw-video layout) nor "
                                    "trainlist01.txt / testlist01.txt (release layout).")

    def video_id(self, class_folder: str, name: str) -> str:
        return name  # the release's ids are unique without their class

    # ---- readers ----------------------------------------------------------------------------------------------
    def read_metadata(self, data_dir: str, path: str, missing: list) -> dict[str, list[dict]]:
        splits: dict[str, list[dict]] = defaultdict(list)
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            absent = [column for column in ("file_name", "label", "split") if column not in (reader.fieldnames or [])]
            if absent:
                raise self.layout_error(f"{path} lacks the column(s) {absent}; it has {reader.fieldnames}.")
            for line, record in enumerate(reader, 2):
                source = f"{path}:{line}"
                label = self.resolve_label(record["label"], source)
                split = SPLIT_ALIASES.get(record["split"].strip().lower())
                if split is None:
                    raise LabelError(f"{source}: split {record['split']!r} is not one of train, validation, test")
                video = os.path.join(data_dir, record["file_name"].strip())
                if not os.path.exists(video):
                    missing.append(record["file_name"])
                    continue
                audio = (record.get("audio") or "").strip()
                video_id = (record.get("video_id") or "").strip() or os.path.splitext(record["file_name"].strip())[0]
                splits[split].append(self.make_row(video, label, video_id, os.path.join(data_dir, audio) if audio
                                                   else ""))
        return dict(splits)

    def _split_generators(self, dl_manager):
        data_dir = self.checked_data_dir()
        variant = self.config.variant
        if self.is_raw_layout(data_dir):
            listed = os.path.join(data_dir, f"metadata_{variant}.csv")
            shipped = variant != "default" and os.path.isfile(listed)
            missing: list[str] = []
            splits = self.read_metadata(data_dir, listed if shipped else os.path.join(data_dir, "metadata.csv"),
                                        missing)
            skipped = {"listed videos not found": missing}
        else:
            annotations = self.find_annotations(data_dir, variant) if variant != "default" else None
            shipped = annotations is not None
            splits, skipped = self.resolve_rows(data_dir, annotations or self.find_annotations(data_dir))
        if variant != "default" and not shipped:
            logger.info("eMotions %s variant: no membership list ships in %s; sampling it deterministically",
                        variant, data_dir)
            splits = {split: balanced_subset(rows) if variant == "balanced" or split == "test" else rows
                      for split, rows in splits.items()}
        return self.plan_splits(dl_manager, splits, skipped)


CITATION = """\
@article{wu2023emotions,
  title   = {eMotions: A Large-Scale Dataset for Emotion Recognition in Short Videos},
  author  = {Wu, Xuecheng and Sun, Heli and Xue, Junxiao and Zhai, Ruofan and Kong, Xiangyan and Nie, Jiayu and
             He, Liang},
  journal = {arXiv preprint arXiv:2311.17335},
  year    = {2023}
}"""
