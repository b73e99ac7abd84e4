"""CAER (Lee et al., ICCV 2019): TV-show clips in ``{train,validation,test}/<Emotion>/NNNN.avi``, 7 classes.

Columns: the core ``video``, ``audio`` (``""``: the soundtrack is in the clip), ``label``, ``polarity``,
``video_id`` (``<Emotion>/<name>``). Both spellings ``Anger`` and ``Angry`` map to ``anger``; a class folder with
another name is an error that names the folder. Surprise has no fixed valence; its polarity defaults to neutral
(override with ``label2polarity={"surprise": "positive"}``).
"""

from __future__ import annotations

import os

import datasets

from .common import SPLIT_ALIASES, VIDEO_EXTENSIONS, EmotionDatasetBuilder, EmotionDatasetConfig

SPLIT_NAMES = {"train": datasets.Split.TRAIN, "validation": datasets.Split.VALIDATION, "test": datasets.Split.TEST}


class CaerBuilder(EmotionDatasetBuilder):
    BUILDER_CONFIGS = [EmotionDatasetConfig(name="default", description="CAER video clips, 7 emotions")]
    DEFAULT_CONFIG_NAME = "default"
    LABELS = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    LABEL_ALIASES = {"angry": "anger"}
    DEFAULT_POLARITY = {"anger": "negative", "disgust": "negative", "fear": "negative", "happy": "positive",
                        "neutral": "neutral", "sad": "negative", "surprise": "neutral"}
    LAYOUT = """\
<data_dir>/
  train/                      (also: validation/ or val/, test/ — at least one split)
    Anger/ (or Angry/)  Disgust/  Fear/  Happy/  Neutral/  Sad/  Surprise/
      0001.avi  0002.avi ...   (any video container: .avi, .mp4, ...)
  validation/ ...
  test/ ..."""

    def _info(self):
        return datasets.DatasetInfo(description="CAER: context-aware emotion recognition clips from TV shows.",
                                    features=self.core_features())

    def _split_folders(self, data_dir: str) -> dict[str, str]:
        folders = {}
        for entry in sorted(os.listdir(data_dir)):
            split = SPLIT_ALIASES.get(entry.lower())
            if split and os.path.isdir(os.path.join(data_dir, entry)) and split not in folders:
                folders[split] = os.path.join(data_dir, entry)
        return folders

    def validate_layout(self, data_dir: str) -> None:
        if not self._split_folders(data_dir):
            raise self.layout_error(f"{data_dir} has no train/, validation/ or test/ folder.")

    def _split_generators(self, dl_manager):
        data_dir = self.checked_data_dir()
        generators = []
        for split, folder in self._split_folders(data_dir).items():
            rows = []
            for class_folder in sorted(os.listdir(folder)):
                class_path = os.path.join(folder, class_folder)
                if not os.path.isdir(class_path):
                    continue
                label = self.resolve_label(class_folder, class_path)
                for name in sorted(os.listdir(class_path)):
                    if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                        rows.append(self.make_row(os.path.join(class_path, name), label,
                                                  f"{class_folder}/{os.path.splitext(name)[0]}"))
            generators.append(datasets.SplitGenerator(name=SPLIT_NAMES[split], gen_kwargs={"rows": rows}))
        return generators
