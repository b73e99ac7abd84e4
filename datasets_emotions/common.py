"""Pieces shared by the dataset builders: the base builder, label/polarity handling, layout errors, split lists,
clip probing and the cache hash.

Every builder yields the same core columns: ``video`` (absolute path of a video file or of a folder of
``%06d.jpg`` frames), ``audio`` (absolute path of a separate soundtrack, or ``""`` when the soundtrack is inside
the video file or absent), ``label`` (``ClassLabel`` in the dataset's official order), ``polarity``
(``ClassLabel`` positive / neutral / negative) and ``video_id``, plus the dataset's own metadata columns. Media stay
on disk: decoding is the processor's job, so preparing a dataset never holds a video in memory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import inspect
import os
import sys
import warnings
from typing import Iterable, Optional

import datasets

from modeling_avcpnet.labels import POLARITIES
from modeling_avcpnet.media_avcpnet import VIDEO_EXTENSIONS, MediaError, probe_media

SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "val": "validation",
                 "valid": "validation", "dev": "validation", "test": "test", "testing": "test"}


class DataDirError(FileNotFoundError):
    """``data_dir`` is missing or does not have the layout the builder reads; the message shows the layout."""


class LabelError(ValueError):
    """A file names a label outside the dataset's label set; the message names the file and the label."""


class SkippedExamplesWarning(UserWarning):
    """Some listed examples were skipped (missing or unreadable media); the message counts them."""


def package_version() -> str:
    try:
        return importlib.metadata.version("avcpnet")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


def normalise_label(name: str) -> str:
    """``"Sad "`` -> ``"sad"``: case, surrounding blanks, spaces and dashes do not matter in label names."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


@dataclasses.dataclass
class EmotionDatasetConfig(datasets.BuilderConfig):
    """Builder config of every dataset here.

    Args:
        label2polarity: overrides of the dataset's default label -> polarity map, e.g.
            ``{"surprise": "negative"}``; polarities are ``positive``, ``neutral``, ``negative``.
    """

    label2polarity: Optional[dict] = None


class EmotionDatasetBuilder(datasets.GeneratorBasedBuilder):
    """Base class: subclasses set ``LABELS`` (official order), ``DEFAULT_POLARITY``, ``LABEL_ALIASES`` and
    ``LAYOUT`` (a text drawing of the expected ``data_dir`` tree, shown in layout errors)."""

    BUILDER_CONFIG_CLASS = EmotionDatasetConfig
    VERSION = datasets.Version("1.0.0")
    LABELS: tuple = ()
    DEFAULT_POLARITY: dict = {}
    LABEL_ALIASES: dict = {}
    LAYOUT: str = ""
    NEEDS_DATA_DIR: bool = True
    #: modules besides the builder's own whose source goes into the cache hash
    EXTRA_HASH_MODULES: tuple = ()

    # ---- labels -----------------------------------------------------------------------------------------------
    def label_names(self) -> list[str]:
        return list(self.LABELS)

    def polarity_map(self) -> dict[str, str]:
        mapping = dict(self.DEFAULT_POLARITY)
        mapping.update(self.config.label2polarity or {})
        names = self.label_names()
        unknown = sorted(set(mapping) - set(names))
        bad = {label: p for label, p in mapping.items() if p not in POLARITIES}
        missing = sorted(set(names) - set(mapping))
        if unknown or bad or missing:
            raise ValueError(f"{self.name}: invalid label2polarity: unknown labels {unknown}, invalid polarities "
                             f"{bad}, labels without polarity {missing}; labels are {names}, polarities {POLARITIES}")
        return mapping

    def resolve_label(self, name: str, source: str) -> str:
        """Map a label as written in a file or folder name to the official name, or raise naming ``source``."""
        key = normalise_label(str(name))
        key = self.LABEL_ALIASES.get(key, key)
        if key not in self.label_names():
            raise LabelError(f"{source}: label {name!r} is not one of the {self.name} labels {self.label_names()}")
        return key

    def core_features(self, **extra: datasets.features.FeatureType) -> datasets.Features:
        return datasets.Features({
            "video": datasets.Value("string"),
            "audio": datasets.Value("string"),
            "label": datasets.ClassLabel(names=self.label_names()),
            "polarity": datasets.ClassLabel(names=list(POLARITIES)),
            "video_id": datasets.Value("string"),
            **extra,
        })

    def make_row(self, video: str, label: str, video_id: str, audio: str = "", **metadata) -> dict:
        return {"video": video, "audio": audio, "label": label, "polarity": self.polarity_map()[label],
                "video_id": video_id, **metadata}

    # ---- data_dir ---------------------------------------------------------------------------------------------
    def layout_error(self, problem: str) -> DataDirError:
        return DataDirError(f"{self.name}: {problem}\nExpected layout under data_dir:\n{self.LAYOUT.rstrip()}\n"
                            f"Load with datasets_emotions.load_dataset({self.name!r}, data_dir=...).")

    def checked_data_dir(self) -> str:
        """The configured ``data_dir`` as an absolute path, or a layout error when it is missing."""
        data_dir = self.config.data_dir
        if not data_dir:
            raise self.layout_error("no data_dir given.")
        data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
        if not os.path.isdir(data_dir):
            raise self.layout_error(f"data_dir {data_dir} does not exist or is not a directory.")
        self.validate_layout(data_dir)
        return data_dir

    def validate_layout(self, data_dir: str) -> None:
        """Raise ``self.layout_error(...)`` when ``data_dir`` lacks what the builder reads (overridden)."""

    # ---- generation -------------------------------------------------------------------------------------------
    def _generate_examples(self, rows: list):
        """Rows are complete examples built in ``_split_generators`` (cheap metadata, no media), so that
        ``num_proc`` shards them across processes; the key is the unique ``video`` path."""
        for row in rows:
            yield row["video"], row

    @staticmethod
    def warn_skipped(dataset: str, reasons: dict[str, list[str]]) -> None:
        """One warning counting all skipped rows, by reason, with a few examples of each."""
        total = sum(len(items) for items in reasons.values())
        if not total:
            return
        parts = [f"{len(items)} {reason} (e.g. {', '.join(items[:3])})" for reason, items in reasons.items() if items]
        warnings.warn(f"{dataset}: skipped {total} listed example(s): " + "; ".join(parts),
                      SkippedExamplesWarning, stacklevel=2)


# ---- split lists ----------------------------------------------------------------------------------------------
def read_split_list(path: str) -> list[tuple[str, str, Optional[str], int]]:
    """Lines ``Class/name [label]`` -> ``(class_name, name, label_number_or_None, line_number)``."""
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            relative = fields[0].replace("\\", "/").strip("/")
            if "/" not in relative:
                raise ValueError(f"{path}:{line_number}: expected 'Class/name [label]', got {line.rstrip()!r}")
            class_name, name = relative.split("/", 1)
            entries.append((class_name, name, fields[1] if len(fields) > 1 else None, line_number))
    return entries


def read_class_index(path: str) -> dict[str, str]:
    """``classInd.txt`` lines ``<number> <Class>`` -> {number: Class}."""
    index = {}
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{path}:{line_number}: expected '<number> <Class>', got {line.rstrip()!r}")
            index[fields[0]] = fields[1]
    return index


class DirectoryIndex:
    """Lists each folder once, so resolving thousands of list entries costs one ``scandir`` per folder."""

    def __init__(self):
        self._cache: dict[str, dict[str, str]] = {}

    def entries(self, folder: str) -> dict[str, str]:
        if folder not in self._cache:
            names = {}
            if os.path.isdir(folder):
                with os.scandir(folder) as scan:
                    for entry in scan:
                        names[entry.name] = entry.path
            self._cache[folder] = names
        return self._cache[folder]

    def find_video(self, folder: str, name: str) -> Optional[str]:
        """``name`` as given, or ``name`` plus a video extension; ``None`` when absent."""
        entries = self.entries(folder)
        if name in entries and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
            return entries[name]
        for extension in VIDEO_EXTENSIONS:
            if name + extension in entries:
                return entries[name + extension]
        return entries.get(name) if name in entries and os.path.isfile(entries[name]) else None


def probe_clip(path: str) -> Optional[str]:
    """Cheap readability check (``media_avcpnet.probe_media``: the container's stream headers, no frame decoded).

    Returns ``None`` when the file opens and has a video stream with a frame size, else the problem in words.
    This catches missing moov atoms, truncated headers, empty and non-media files; a file whose header is intact
    but whose later packets are damaged passes and is left to the processor's own error handling.
    """
    try:
        probe_media(path, require_video=True)
    except MediaError as error:
        return f"unreadable ({error.problem})"
    return None


def probe_clips(paths: list[str], workers: int = 1) -> list[Optional[str]]:
    """``probe_clip`` over many files, serially (``workers=1``) or on a few threads (FFmpeg releases the GIL while
    it reads headers). On the shared 2-core benchmark machine threads gave no reliable gain and a few MB more peak
    memory, so the builders probe serially."""
    if workers <= 1 or len(paths) < 2 * workers:
        return [probe_clip(path) for path in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(probe_clip, paths, chunksize=32))


# ---- cache hash -----------------------------------------------------------------------------------------------
def _module_sources(builder_cls) -> Iterable[bytes]:
    seen = set()
    # every module of the class hierarchy except the datasets library itself (a user's subclass counts too)
    modules = [cls.__module__ for cls in inspect.getmro(builder_cls)
               if cls.__module__ not in ("builtins", "abc") and not cls.__module__.startswith("datasets.")]
    modules += list(builder_cls.EXTRA_HASH_MODULES)
    for name in modules:
        if name in seen:
            continue
        seen.add(name)
        module = sys.modules.get(name) or importlib.import_module(name)
        with open(module.__file__, "rb") as handle:  # the file as it is on disk now
            yield handle.read()


def data_dir_fingerprint(data_dir: str, depth: int = 2, max_entries: int = 200_000) -> str:
    """Names, sizes and modification times of the entries of ``data_dir`` down to ``depth`` levels.

    Adding, removing or editing a list/CSV file or a clip in the first two levels, or adding a file anywhere in a
    second-level folder (which changes that folder's mtime), gives a new fingerprint, hence a new cache folder.
    """
    digest = hashlib.sha256()
    stack = [(os.path.abspath(data_dir), 0)]
    count = 0
    while stack:
        folder, level = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            try:
                stat = entry.stat()
            except OSError:
                continue
            digest.update(f"{os.path.relpath(entry.path, data_dir)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            count += 1
            if entry.is_dir() and level + 1 < depth:
                stack.append((entry.path, level + 1))
        if count > max_entries:
            break
    return digest.hexdigest()


def builder_hash(builder_cls, data_dir: Optional[str] = None) -> str:
    """Cache key: the package version, the source of the builder's modules and a fingerprint of ``data_dir``.

    An edited builder, a new package version or changed data give a new cache folder instead of a stale one.
    """
    digest = hashlib.sha256(package_version().encode())
    for source in _module_sources(builder_cls):
        digest.update(source)
    if data_dir and os.path.isdir(data_dir):
        digest.update(data_dir_fingerprint(data_dir).encode())
    return digest.hexdigest()[:16]
