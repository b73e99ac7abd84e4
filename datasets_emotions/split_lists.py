"""Base builder for the UCF-101-style layout: class folders of clips plus ``trainlist01.txt`` / ``testlist01.txt``
files of ``Class/name [label]`` lines and an optional ``classInd.txt`` of ``<number> <Class>`` lines.

Used by ``ekman6`` and ``videoemotion8``. Entries are resolved with one directory listing per class folder; a name
may omit its extension. Entries whose clip is missing are skipped and counted in one warning; a class or label
number outside the label set is an error naming the list file, the line and the label.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import datasets

from .common import (
    DirectoryIndex,
    EmotionDatasetBuilder,
    EmotionDatasetConfig,
    LabelError,
    read_class_index,
    read_split_list,
)


@dataclasses.dataclass
class SplitListConfig(EmotionDatasetConfig):
    """``split_number`` picks ``trainlist{NN}.txt`` / ``testlist{NN}.txt`` (01 by default)."""

    split_number: int = 1


class SplitListBuilder(EmotionDatasetBuilder):
    BUILDER_CONFIG_CLASS = SplitListConfig
    BUILDER_CONFIGS = [SplitListConfig(name="default")]
    DEFAULT_CONFIG_NAME = "default"
    SPLIT_FILES = {"train": "trainlist{:02d}.txt", "test": "testlist{:02d}.txt"}

    @classmethod
    def layout_text(cls, classes: str) -> str:
        return f"""\
<data_dir>/
  trainlist01.txt     lines 'Class/name [label]' (name with or without its extension)
  testlist01.txt      same format
  classInd.txt        optional: lines '<number> <Class>' (numbers used by the [label] field)
  <Class>/<name>.mp4  the clips, one folder per class ({classes});
                      the class folders may also sit in <data_dir>/videos/"""

    def list_path(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, self.SPLIT_FILES[split].format(self.config.split_number))

    def validate_layout(self, data_dir: str) -> None:
        missing = [os.path.basename(self.list_path(data_dir, split)) for split in self.SPLIT_FILES
                   if not os.path.isfile(self.list_path(data_dir, split))]
        if len(missing) == len(self.SPLIT_FILES):
            raise self.layout_error(f"{data_dir} has none of the split lists {missing}.")

    def media_root(self, data_dir: str) -> str:
        videos = os.path.join(data_dir, "videos")
        return videos if os.path.isdir(videos) else data_dir

    def find_media(self, index: DirectoryIndex, root: str, class_folder: str, name: str) -> Optional[dict]:
        """The ``video``/``audio`` of one list entry, or ``None`` when its clip is missing (overridable)."""
        path = index.find_video(os.path.join(root, class_folder), name)
        return {"video": path, "audio": ""} if path else None

    def check_label_number(self, number: Optional[str], label: str, class_index: dict, source: str) -> None:
        if number is None or not class_index:
            return
        if number not in class_index:
            raise LabelError(f"{source}: label number {number!r} is not in classInd.txt {sorted(class_index)}")
        if self.resolve_label(class_index[number], source) != label:
            raise LabelError(f"{source}: label number {number} means {class_index[number]!r} in classInd.txt but "
                             f"the entry is in class {label!r}")

    def video_id(self, class_folder: str, name: str) -> str:
        """The ``video_id`` column of a list entry (overridable)."""
        return f"{class_folder}/{os.path.splitext(name)[0]}"

    def read_split_lists(self, data_dir: str, root: str, list_paths: dict[str, str], missing: list) -> dict:
        """Rows per split from the split list files in ``list_paths`` (absent files are left out), checking classes
        and label numbers against ``classInd.txt`` when it ships; entries whose media are missing go to ``missing``."""
        class_index_path = os.path.join(data_dir, "classInd.txt")
        class_index = read_class_index(class_index_path) if os.path.isfile(class_index_path) else {}
        for class_name in class_index.values():
            self.resolve_label(class_name, class_index_path)
        index, splits = DirectoryIndex(), {}
        for split, path in list_paths.items():
            if not os.path.isfile(path):
                continue
            rows = []
            for class_folder, name, number, line in read_split_list(path):
                source = f"{path}:{line}"
                label = self.resolve_label(class_folder, source)
                self.check_label_number(number, label, class_index, source)
                media = self.find_media(index, root, class_folder, name)
                if media is None:
                    missing.append(f"{class_folder}/{name}")
                    continue
                rows.append(self.make_row(media["video"], label, self.video_id(class_folder, name), media["audio"]))
            splits[split] = rows
        return splits

    def _split_generators(self, dl_manager):
        data_dir = self.checked_data_dir()
        missing: list[str] = []
        list_paths = {split: self.list_path(data_dir, split) for split in self.SPLIT_FILES}
        splits = self.read_split_lists(data_dir, self.media_root(data_dir), list_paths, missing)
        self.warn_skipped(self.name, {"listed clips not found": missing})
        return [datasets.SplitGenerator(name=datasets.Split(split), gen_kwargs={"rows": rows})
                for split, rows in splits.items()]


__all__ = ["SplitListBuilder", "SplitListConfig"]
