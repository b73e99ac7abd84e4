"""Base builder for the layouts of the public VideoEmotion-8 / Ekman-6 / eMotions code bases (VAANet, CTEN, MART,
the eMotions code): split lists ``trainlist01.txt`` / ``testlist01.txt`` of ``Class/video_id [label]`` lines with
``classInd.txt`` (``<number> <Class>``), or the ``ve8_01.json``-style annotation file generated from them, and
either pre-extracted media or raw videos.

* Annotations are looked up in ``data_dir``, then ``data_dir/annotations/`` and its sub-folders (the code bases keep
  them in ``tools/annotations/ve8/``), or taken from ``annotation_path``. Lists win over a JSON file: the JSON is
  keyed by bare id, so two videos with the same id in two classes collapse there (VAANet ``tools/ve8_json.py``).
  JSON subsets: ``training`` -> train; ``validation`` -> test (it is made from ``testlist01.txt``), unless the
  file also has ``testing``.
* Pre-extracted media (VAANet ``tools/video2jpg.py``, ``n_frames.py``, ``video2mp3.py``): frames in
  ``<frames_dir>/<Class>/<video_id>/000001.jpg ...`` with an ``n_frames`` file (``0`` when fewer than 16 frames
  were extracted: such videos are skipped, as ``datasets/ve8.py`` does) and the soundtrack in
  ``<audio_dir>/<Class>/<video_id>.mp3``. The roots default to the one sub-folder of ``data_dir`` whose name ends
  in ``imgs``/``jpg``/``frames``/``images`` (e.g. ``VideoEmotion8--imgs``, ``Ekman6-jpg``, ``eMotions_imgs``) and
  in ``mp3``/``audio``; set ``frames_dir`` / ``audio_dir`` otherwise.
* Raw videos: ``<videos_dir>/<Class>/<video_id>.<ext>`` (default roots ``data_dir/videos`` and ``data_dir``).

Ids are verbatim: the lists' ids are the file names with their last extension removed, so ``Joy/X.mp4`` is the
frames folder ``X.mp4/``, the soundtrack ``X.mp4.mp3`` and the video ``X.mp4.mp4``, and ``LongDistanceSurprise.``
keeps its dot. Class folders match up to case (CTEN's Ekman-6 lists say ``anger/1000``; the renamed-to-numbers
release). A listed class without any folder is an error naming it (and a near-miss folder such as ``Suprise/``);
listed videos that are missing, unusable or listed twice in a split are skipped and counted in one warning.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import NamedTuple, Optional

from .builder_base import (
    DirectoryIndex,
    EmotionDatasetBuilder,
    EmotionDatasetConfig,
    LabelError,
    read_class_index,
    read_split_list,
)

FRAMES_SUFFIXES = ("imgs", "jpg", "jpgs", "frames", "images")
AUDIO_SUFFIXES = ("mp3", "audio", "audios")
VIDEOS_SUFFIXES = ("videos", "video", "mp4")
JSON_SUBSETS = {"training": "train", "train": "train", "validation": "validation", "val": "validation",
                "testing": "test", "test": "test"}


@dataclasses.dataclass
class SplitListConfig(EmotionDatasetConfig):
    """Where the annotations and media are (paths absolute or relative to ``data_dir``; ``None``: found).

    Args:
        split_number: picks ``trainlist{NN}.txt`` / ``testlist{NN}.txt`` or ``*_{NN}.json`` (01 by default).
        annotation_path: folder holding the split lists, or a ``ve8_01.json``-style file.
        frames_dir: root of extracted frames ``<frames_dir>/<Class>/<video_id>/000001.jpg``.
        audio_dir: root of soundtracks ``<audio_dir>/<Class>/<video_id>.mp3``.
        videos_dir: root of raw videos ``<videos_dir>/<Class>/<video_id>.mp4``.
    """

    split_number: int = 1
    annotation_path: Optional[str] = None
    frames_dir: Optional[str] = None
    audio_dir: Optional[str] = None
    videos_dir: Optional[str] = None


class MediaRoots(NamedTuple):
    videos: list  # roots holding <Class>/ folders of frames folders or video files, in lookup order
    audio: Optional[str]


class Annotations(NamedTuple):
    entries: dict  # split -> [(class_folder, video_id, label number or None, source)]
    class_index: dict  # classInd.txt: number -> Class
    source: str


class SplitListBuilder(EmotionDatasetBuilder):
    BUILDER_CONFIG_CLASS = SplitListConfig
    BUILDER_CONFIGS = [SplitListConfig(name="default")]
    DEFAULT_CONFIG_NAME = "default"
    SPLIT_FILES = {"train": "trainlist{:02d}.txt", "test": "testlist{:02d}.txt"}

    @classmethod
    def layout_text(cls, classes: str) -> str:
        return f"""\
<data_dir>/
  annotations/ (optional, or its sub-folder, or annotation_path=...)
    classInd.txt        lines '<number> <Class>' ({classes})
    trainlist01.txt     lines '<Class>/<video_id> [label]'
    testlist01.txt      same format, label optional
    (or instead of the lists: ve8_01.json  {{"labels": [...], "database": {{id: {{"subset": ..., "annotations":
                        {{"label": Class}}}}}}}})
  pre-extracted media (frames_dir=..., audio_dir=... when named otherwise):
    <Name>--imgs/<Class>/<video_id>/000001.jpg ... n_frames
    <Name>--mp3/<Class>/<video_id>.mp3
  or raw videos:
    <Class>/<video_id>.mp4   (or videos/<Class>/..., or videos_dir=...)"""

    # ---- annotations ------------------------------------------------------------------------------------------
    def resolve_path(self, data_dir: str, path: str) -> str:
        return os.path.abspath(os.path.join(data_dir, os.path.expanduser(str(path))))

    def annotation_dirs(self, data_dir: str) -> list[str]:
        configured = self.config.annotation_path
        if configured:
            path = self.resolve_path(data_dir, configured)
            if not os.path.exists(path):
                raise self.layout_error(f"annotation_path {path} does not exist.")
            return [path]
        dirs = [data_dir]
        annotations = os.path.join(data_dir, "annotations")
        if os.path.isdir(annotations):
            dirs.append(annotations)
            dirs += sorted(entry.path for entry in os.scandir(annotations) if entry.is_dir())
        return dirs

    def list_names(self, variant: str = "default") -> dict[str, str]:
        suffix = "" if variant == "default" else f"_{variant}"
        return {split: name.format(self.config.split_number).replace(".txt", f"{suffix}.txt")
                for split, name in self.SPLIT_FILES.items()}

    def find_annotations(self, data_dir: str, variant: str = "default") -> Optional[Annotations]:
        """The split lists (first folder that has one) or else the annotation JSON; ``None`` when neither."""
        dirs = self.annotation_dirs(data_dir)
        if len(dirs) == 1 and os.path.isfile(dirs[0]):
            return self.read_annotation_json(dirs[0])
        for folder in dirs:
            lists = {split: os.path.join(folder, name) for split, name in self.list_names(variant).items()}
            lists = {split: path for split, path in lists.items() if os.path.isfile(path)}
            if lists:
                class_index_path = os.path.join(folder, "classInd.txt")
                class_index = read_class_index(class_index_path) if os.path.isfile(class_index_path) else {}
                for class_name in class_index.values():
                    self.resolve_label(class_name, class_index_path)
                entries = {split: [(c, n, number, f"{path}:{line}") for c, n, number, line in read_split_list(path)]
                           for split, path in lists.items()}
                return Annotations(entries, class_index, os.path.dirname(next(iter(lists.values()))))
        if variant != "default":
            return None
        suffix = f"_{self.config.split_number:02d}.json"
        for folder in dirs:
            for name in sorted(os.listdir(folder)):
                if name.endswith(suffix) and os.path.isfile(os.path.join(folder, name)):
                    return self.read_annotation_json(os.path.join(folder, name))
        return None

    def read_annotation_json(self, path: str) -> Annotations:
        """VAANet's ``ve8_01.json`` (from ``tools/ve8_json.py``): ``labels`` and ``database`` keyed by video id."""
        try:
            with open(path, encoding="utf-8-sig") as handle:
                data = json.load(handle)
            labels, database = data["labels"], data["database"]
        except (ValueError, KeyError, TypeError) as error:
            raise self.layout_error(f"{path} is not a VAANet-style annotation file with 'labels' and 'database' "
                                    f"({type(error).__name__}: {error}).") from None
        for label in labels:
            self.resolve_label(label, f"{path} 'labels'")
        subsets = {str(value.get("subset")) for value in database.values()}
        mapping = dict(JSON_SUBSETS, validation="test" if "testing" not in subsets else "validation")
        entries: dict[str, list] = {}
        for video_id, value in database.items():
            source = f"{path} database[{video_id!r}]"
            split = mapping.get(str(value.get("subset")))
            if split is None:
                raise LabelError(f"{source}: subset {value.get('subset')!r} is not one of {sorted(JSON_SUBSETS)}")
            entries.setdefault(split, []).append((value["annotations"]["label"], video_id, None, source))
        return Annotations(entries, {}, path)

    def validate_layout(self, data_dir: str) -> None:
        if self.find_annotations(data_dir) is None:
            names = list(self.list_names().values())
            raise self.layout_error(f"{data_dir} has none of the split lists {names} (nor in annotations/) and no "
                                    f"*_{self.config.split_number:02d}.json annotation file.")

    # ---- media ------------------------------------------------------------------------------------------------
    def media_root(self, data_dir: str, configured: Optional[str], suffixes: tuple, what: str) -> Optional[str]:
        if configured:
            path = self.resolve_path(data_dir, configured)
            if not os.path.isdir(path):
                raise self.layout_error(f"{what} {path} is not a folder.")
            return path
        found = sorted(entry.path for entry in os.scandir(data_dir) if entry.is_dir()
                       and entry.name.lower().endswith(suffixes) and entry.name.lower() != "annotations")
        if len(found) > 1:
            raise self.layout_error(f"several folders could be the {what}: {found}; pass {what}=... to choose.")
        return found[0] if found else None

    def media_roots(self, data_dir: str) -> MediaRoots:
        config = self.config
        frames = self.media_root(data_dir, config.frames_dir, FRAMES_SUFFIXES, "frames_dir")
        audio = self.media_root(data_dir, config.audio_dir, AUDIO_SUFFIXES, "audio_dir")
        videos = self.media_root(data_dir, config.videos_dir, VIDEOS_SUFFIXES, "videos_dir")
        roots = [root for root in (frames, videos) if root]
        if not config.videos_dir:
            roots.append(data_dir)
        return MediaRoots(list(dict.fromkeys(roots)), audio)

    def find_media(self, index: DirectoryIndex, roots: MediaRoots, class_folder: str, name: str) -> Optional[dict]:
        """``video`` (frames folder or video file) and ``audio`` (mp3 or ``""``) of one entry; ``None`` if absent."""
        for root in roots.videos:
            folder = index.subfolder(root, class_folder)
            if folder is None:
                continue
            entry = index.entries(folder).get(name)
            if entry is not None and entry.is_dir():  # a frames folder, even when its name ends in .mp4
                return {"video": entry.path, "audio": self.find_mp3(index, roots, class_folder, name)}
            video = index.find_video(folder, name)
            if video:
                return {"video": video, "audio": ""}
        return None

    @staticmethod
    def find_mp3(index: DirectoryIndex, roots: MediaRoots, class_folder: str, name: str) -> str:
        folder = index.subfolder(roots.audio, class_folder) if roots.audio else None
        entry = index.entries(folder).get(name + ".mp3") if folder else None
        return entry.path if entry is not None and entry.is_file() else ""

    # ---- rows -------------------------------------------------------------------------------------------------
    def check_label_number(self, number: Optional[str], label: str, class_index: dict, source: str) -> None:
        if number is None or not class_index:
            return
        if number not in class_index:
            raise LabelError(f"{source}: label number {number!r} is not in classInd.txt {sorted(class_index)}")
        if self.resolve_label(class_index[number], source) != label:
            raise LabelError(f"{source}: label number {number} means {class_index[number]!r} in classInd.txt but "
                             f"the entry is in class {label!r}")

    def video_id(self, class_folder: str, name: str) -> str:
        """The ``video_id`` column: ``Class/video_id`` exactly as listed (overridable)."""
        return f"{class_folder}/{name}"

    def resolve_rows(self, data_dir: str, annotations: Annotations) -> tuple[dict, dict]:
        """Rows per split and the skipped entries by reason; a listed class without any folder raises."""
        roots = self.media_roots(data_dir)
        index = DirectoryIndex()
        skipped: dict[str, list[str]] = {"listed videos not found": [], "duplicate entries in a split list": []}
        absent_classes: dict[str, list[str]] = {}
        splits = {}
        for split, entries in annotations.entries.items():
            rows, seen = [], set()
            for class_folder, name, number, source in entries:
                label = self.resolve_label(class_folder, source)
                self.check_label_number(number, label, annotations.class_index, source)
                if (class_folder, name) in seen:
                    skipped["duplicate entries in a split list"].append(f"{class_folder}/{name}")
                    continue
                seen.add((class_folder, name))
                media = self.find_media(index, roots, class_folder, name)
                if media is None:
                    if not any(index.subfolder(root, class_folder) for root in roots.videos):
                        absent_classes.setdefault(class_folder, []).append(source)
                    skipped["listed videos not found"].append(f"{class_folder}/{name}")
                    continue
                rows.append(self.make_row(media["video"], label, self.video_id(class_folder, name), media["audio"]))
            splits[split] = rows
        if absent_classes:
            problems = [f"class folder {folder + '/'!r} (named by {len(sources)} entries, e.g. {sources[0]}) is in "
                        f"none of {roots.videos}" + "".join(self.missing_folder_hint(root, folder, self.is_label)
                                                            for root in roots.videos)
                        for folder, sources in absent_classes.items()]
            raise self.layout_error("; ".join(problems) + ".")
        return splits, skipped

    def _split_generators(self, dl_manager):
        data_dir = self.checked_data_dir()
        splits, skipped = self.resolve_rows(data_dir, self.find_annotations(data_dir))
        return self.plan_splits(dl_manager, splits, skipped)


__all__ = ["SplitListBuilder", "SplitListConfig"]
