"""CAER (Lee et al., ICCV 2019): TV-show clips in ``{train,validation,test}/<Emotion>/NNNN.avi``, 7 classes; and
CAER-S, its static-image version (``{train,test}/<Emotion>/NNNN.png``), as the config ``static``.

Columns: the core ``video`` (the clip, or for ``static`` the image, which the processor reads as a 1-frame clip
without sound), ``audio`` (``""``: the soundtrack is in the clip; an image has none, so the processor uses zero
audio features with ``audio_mask`` False), ``label``, ``polarity``, ``video_id`` (``<split folder>/<Emotion>/<name>``:
the numbering restarts in each split, so the split is part of the id). Both spellings ``Anger`` and ``Angry`` map
to ``anger``; a class folder with another name is an error that names the folder. Polarity:
``modeling_avcpnet.labels.CAER_POLARITY`` (surprise neutral by default; override with
``label2polarity={"surprise": "positive"}``).
"""

from __future__ import annotations

import dataclasses
import os

import datasets

from modeling_avcpnet.labels import CAER_LABELS, CAER_POLARITY

from .builder_base import IMAGE_EXTENSIONS, SPLIT_ALIASES, VIDEO_EXTENSIONS, EmotionDatasetBuilder, EmotionDatasetConfig


@dataclasses.dataclass
class CaerConfig(EmotionDatasetConfig):
    static: bool = False


class CaerBuilder(EmotionDatasetBuilder):
    BUILDER_CONFIG_CLASS = CaerConfig
    BUILDER_CONFIGS = [
        CaerConfig(name="default", description="CAER video clips, 7 emotions"),
        CaerConfig(name="static", static=True, description="CAER-S still images, 7 emotions (1-frame clips)"),
    ]
    DEFAULT_CONFIG_NAME = "default"
    LABELS = tuple(CAER_LABELS)
    LABEL_ALIASES = {"angry": "anger"}
    DEFAULT_POLARITY = CAER_POLARITY
    LAYOUT = """\
<data_dir>/
  train/                      (also: validation/ or val/, test/ — at least one split)
    Anger/ (or Angry/)  Disgust/  Fear/  Happy/  Neutral/  Sad/  Surprise/
      0001.avi  0002.avi ...   (any video container: .avi, .mp4, ...)
  validation/ ...
  test/ ...
CAER-S (config 'static'): the same tree with images 0001.png ... (.png, .jpg)"""

    def _info(self):
        kind = "still images (CAER-S)" if self.config.static else "clips"
        return datasets.DatasetInfo(description=f"CAER: context-aware emotion recognition {kind} from TV shows.",
                                    features=self.core_features())

    def media_extensions(self) -> tuple:
        return IMAGE_EXTENSIONS if self.config.static else VIDEO_EXTENSIONS

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
        extensions, splits, other_files = self.media_extensions(), {}, []
        for split, folder in self._split_folders(data_dir).items():
            rows = []
            for class_folder in sorted(os.listdir(folder)):
                class_path = os.path.join(folder, class_folder)
                if not os.path.isdir(class_path):
                    continue
                label = self.resolve_label(class_folder, class_path)
                for name in sorted(os.listdir(class_path)):
                    stem, extension = os.path.splitext(name)
                    if extension.lower() in extensions:
                        video_id = f"{os.path.basename(folder)}/{class_folder}/{stem}"
                        rows.append(self.make_row(os.path.join(class_path, name), label, video_id))
                    else:
                        other_files.append(os.path.join(class_path, name))
            splits[split] = rows
        if not any(splits.values()) and other_files:
            raise self.layout_error(self.wrong_kind_message(other_files))
        return self.plan_splits(dl_manager, splits, {})

    def wrong_kind_message(self, files: list[str]) -> str:
        images = [path for path in files if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS]
        if images and not self.config.static:
            return (f"the class folders hold images (e.g. {images[0]}), not video clips: this is CAER-S; load it "
                    f"with datasets_emotions.load_dataset('caer', 'static', data_dir=...).")
        kind = "images (.png, .jpg)" if self.config.static else f"video clips ({', '.join(VIDEO_EXTENSIONS)})"
        return f"the class folders hold no {kind}; found e.g. {files[0]}."
