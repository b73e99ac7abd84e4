"""MER 2023 (Lian et al., "MER 2023: Multi-label Learning, Modality Robustness, and Semi-Supervised Learning").

Layout: ``train-label.csv`` with columns ``name, discrete, valence`` and the clips ``<name>.<ext>`` beside it or in
one sub-folder of ``data_dir`` (the release keeps them in a folder next to the CSV). Further ``<split>-label.csv``
files with the same columns (``val-label.csv``, ``test-label.csv``, ``test1-label.csv`` ...) become further splits.
The challenge evaluates the labelled set by 5-fold cross-validation, so only ``train`` is required; cut a
validation split with ``Dataset.train_test_split`` or ``Dataset.shard``.

Columns: the core ``video``, ``audio`` (always ``""``: the soundtrack is in the clip), ``label`` (neutral, angry,
happy, sad, worried, surprise), ``polarity`` and ``video_id`` (the CSV ``name``), plus ``valence`` (float, the
challenge's dimensional label). Surprise has no fixed valence sign; its polarity defaults to neutral (override with
``label2polarity={"surprise": "positive"}``). Rows whose clip is missing or unreadable are skipped with one warning
that counts them (``EmotionDatasetBuilder.plan_splits``).
"""

from __future__ import annotations

import csv
import math
import os

import datasets

from modeling_avcpnet.labels import MER2023_LABELS, MER2023_POLARITY

from .builder_base import SPLIT_ALIASES, DirectoryIndex, EmotionDatasetBuilder, EmotionDatasetConfig

LABEL_FILE_SUFFIX = "-label.csv"
REQUIRED_COLUMNS = ("name", "discrete", "valence")


class Mer2023Builder(EmotionDatasetBuilder):
    BUILDER_CONFIGS = [EmotionDatasetConfig(name="default", description="MER 2023 labelled clips: emotion + valence")]
    DEFAULT_CONFIG_NAME = "default"
    LABELS = tuple(MER2023_LABELS)
    DEFAULT_POLARITY = MER2023_POLARITY
    LABEL_ALIASES = {"anger": "angry", "happiness": "happy", "joy": "happy", "sadness": "sad", "worry": "worried",
                     "surprised": "surprise"}
    LAYOUT = """\
data_dir/
  train-label.csv            columns: name,discrete,valence   (e.g. sample_00000001,happy,2.1)
  [val-label.csv, test-label.csv, test1-label.csv, ...]   optional further splits, same columns
  <name>.avi | .mp4 | ...    the clips, beside the CSV
  or video-labeled/<name>.avi  (clips in one sub-folder of data_dir)
"""

    def _info(self):
        return datasets.DatasetInfo(
            description="MER 2023 challenge: short Chinese video clips with a discrete emotion and a valence.",
            features=self.core_features(valence=datasets.Value("float32")),
            homepage="http://merchallenge.cn/",
            citation="Lian et al., MER 2023: Multi-label Learning, Modality Robustness, and Semi-Supervised "
                     "Learning, ACM MM 2023 (arXiv 2304.08981)",
        )

    # ---- layout -----------------------------------------------------------------------------------------------
    def label_files(self, data_dir: str) -> dict[str, str]:
        """{split name: csv path} for every ``<split>-label.csv`` in ``data_dir``."""
        files = {}
        for entry in sorted(os.listdir(data_dir)):
            if entry.lower().endswith(LABEL_FILE_SUFFIX) and os.path.isfile(os.path.join(data_dir, entry)):
                prefix = entry[: -len(LABEL_FILE_SUFFIX)].lower()
                files[SPLIT_ALIASES.get(prefix, prefix)] = os.path.join(data_dir, entry)
        return files

    def validate_layout(self, data_dir: str) -> None:
        if "train" not in self.label_files(data_dir):
            raise self.layout_error(f"no train-label.csv in {data_dir}.")

    def clip_folders(self, data_dir: str) -> list[str]:
        """Where clips are looked up: ``data_dir`` first, then its sub-folders in name order."""
        subfolders = sorted(entry.path for entry in os.scandir(data_dir) if entry.is_dir())
        return [data_dir] + subfolders

    def read_label_file(self, path: str) -> list[tuple[int, str, str, float]]:
        """``(line number, name, label, valence)`` per row; bad rows raise naming the file and line."""
        rows = []
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise self.layout_error(f"{path} lacks the columns {missing} (it has {reader.fieldnames}).")
            for line_number, raw in enumerate(reader, 2):
                row = {key.strip().lower(): (value or "").strip() for key, value in raw.items() if key is not None}
                source = f"{path}:{line_number}"
                if not row["name"]:
                    raise ValueError(f"{source}: empty name")
                label = self.resolve_label(row["discrete"], source)
                try:
                    valence = float(row["valence"])
                except ValueError:
                    raise ValueError(f"{source}: valence {row['valence']!r} is not a number") from None
                if not math.isfinite(valence):
                    raise ValueError(f"{source}: valence {row['valence']!r} is not finite")
                rows.append((line_number, row["name"], label, valence))
        return rows

    # ---- generation -------------------------------------------------------------------------------------------
    def _split_generators(self, dl_manager):
        data_dir = self.checked_data_dir()
        index = DirectoryIndex()
        folders = self.clip_folders(data_dir)
        splits, missing = {}, []
        for split, path in self.label_files(data_dir).items():
            rows = []
            for _, name, label, valence in self.read_label_file(path):
                video = next((found for folder in folders if (found := index.find_video(folder, name))), None)
                if video is None:
                    missing.append(name)
                    continue
                rows.append(self.make_row(video=video, label=label, video_id=name, valence=valence))
            splits[split] = rows
        return self.plan_splits(dl_manager, splits, {"missing clip": missing})


__all__ = ["Mer2023Builder"]
