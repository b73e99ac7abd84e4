"""The base of every dataset builder (`EmotionDatasetBuilder`, `EmotionDatasetConfig`) and what it relies on:
label/polarity handling, layout errors, split lists, clip probing and the cache hash.

Every builder yields the same core columns: ``video`` (absolute path of a video file or of a folder of
``%06d.jpg`` frames), ``audio`` (absolute path of a separate soundtrack, or ``""`` when the soundtrack is inside
the video file or absent), ``label`` (``ClassLabel`` in the dataset's official order), ``polarity``
(``ClassLabel`` positive / neutral / negative) and ``video_id``, plus the dataset's own metadata columns. Media stay
on disk: decoding is the processor's job, so preparing a dataset never holds a video in memory.
"""

from __future__ import annotations

import dataclasses
import difflib
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
from modeling_avcpnet.media_avcpnet import FRAME_FILE_PATTERN, VIDEO_EXTENSIONS, MediaError, probe_media

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SKIPPED_NOTE = "Skipped while preparing: "  # marks the skip report kept in DatasetInfo.description
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

    # ---- generation: one bad-media policy for every builder ----------------------------------------------------
    def plan_splits(self, dl_manager, splits: dict[str, list[dict]], skipped: dict[str, list[str]],
                    order: tuple = ("train", "validation", "test")) -> list[datasets.SplitGenerator]:
        """Split generators from complete rows, after the bad-media policy shared by every builder.

        ``skipped`` maps a reason ("listed clips not found", ...) to the entries already dropped for it. When
        preparing on disk, every row's media is probed here (``media_problem``: headers only, a few ms per file) and
        unusable rows are dropped; all drops are reported in ONE ``SkippedExamplesWarning`` whose text is also kept
        in the dataset's ``info.description``, so a warm cache re-emits it (``load.load_dataset``). When streaming,
        nothing is probed up front (the first example comes at once): ``_generate_examples`` probes each row as it
        goes and warns once at the end. A split left without any example is an error that says why and shows the
        expected layout (instead of datasets' "corresponds to no data").
        """
        streaming = isinstance(dl_manager, datasets.StreamingDownloadManager)
        unreadable = skipped.setdefault("unreadable or unusable media", [])
        if not streaming:
            for split, rows in splits.items():
                kept = []
                for row in rows:
                    problem = media_problem(row["video"])
                    if problem is None:
                        kept.append(row)
                    else:
                        unreadable.append(f"{row['video_id']} ({problem})")
                splits[split] = kept
        for split, rows in splits.items():
            if not rows:
                raise self.empty_split_error(split, skipped)
        self.report_skipped(skipped)
        names = [split for split in order if split in splits] + [split for split in splits if split not in order]
        return [datasets.SplitGenerator(name=datasets.Split(split),
                                        gen_kwargs={"rows": splits[split], "probe": streaming})
                for split in names]

    def _generate_examples(self, rows: list, probe: bool = False):
        """Rows are complete examples built in ``_split_generators`` (cheap metadata, no media), so that
        ``num_proc`` shards them across processes; the key is the unique ``video`` path. ``probe`` (streaming):
        check each row's media as it is reached and skip unusable ones, counted in one warning at the end."""
        dropped = []
        for row in rows:
            if probe:
                problem = media_problem(row["video"])
                if problem is not None:
                    dropped.append(f"{row['video_id']} ({problem})")
                    continue
            yield row["video"], row
        if dropped:
            self.warn_skipped(self.name, {"unreadable or unusable media": dropped})

    def empty_split_error(self, split: str, skipped: dict[str, list[str]]) -> "DataDirError":
        reasons = "; ".join(f"{len(items)} {reason} (e.g. {', '.join(items[:3])})"
                            for reason, items in skipped.items() if items)
        why = f"every listed example was skipped: {reasons}" if reasons else "nothing is listed for it"
        return self.layout_error(f"split {split!r} has no usable example ({why}).")

    def report_skipped(self, reasons: dict[str, list[str]]) -> Optional[str]:
        """Warn once about the skipped rows and keep the message in ``info.description`` for warm loads."""
        message = self.warn_skipped(self.name, reasons, stacklevel=4)
        if message:
            self.keep_note(message)
        return message

    def keep_note(self, message: str) -> None:
        """Append ``message`` to ``info.description`` (saved with the cache), where ``load_dataset`` finds it on a
        warm load and warns again."""
        self.info.description = f"{self.info.description or ''}\n\n{SKIPPED_NOTE}{message}".lstrip()

    @staticmethod
    def warn_skipped(dataset: str, reasons: dict[str, list[str]], stacklevel: int = 2) -> Optional[str]:
        """One warning counting all skipped rows, by reason, with a few examples of each; returns its text."""
        total = sum(len(items) for items in reasons.values())
        if not total:
            return None
        parts = [f"{len(items)} {reason} (e.g. {', '.join(items[:3])})" for reason, items in reasons.items() if items]
        message = f"{dataset}: skipped {total} listed example(s): " + "; ".join(parts)
        warnings.warn(message, SkippedExamplesWarning, stacklevel=stacklevel)
        return message

    def is_label(self, name: str) -> bool:
        key = normalise_label(name)
        return self.LABEL_ALIASES.get(key, key) in self.label_names()

    @staticmethod
    def missing_folder_hint(parent: str, wanted: str, exclude=lambda name: False) -> str:
        """A hint such as `` (found 'Suprise/': misspelled?)`` when ``parent`` holds a folder named like ``wanted``
        (folders for which ``exclude(name)`` is true are not candidates)."""
        if not os.path.isdir(parent):
            return ""
        folders = [entry.name for entry in os.scandir(parent) if entry.is_dir() and not exclude(entry.name)]
        close = difflib.get_close_matches(wanted, folders, n=3, cutoff=0.6)
        close += [name for name in folders if name.lower() == wanted.lower() and name not in close]
        return f" (found {', '.join(repr(name + '/') for name in close)}: misspelled?)" if close else ""


# ---- split lists ----------------------------------------------------------------------------------------------
def read_split_list(path: str) -> list[tuple[str, str, Optional[str], int]]:
    """Lines ``Class/video_id [label]`` -> ``(class_name, video_id, label_number_or_None, line_number)``.

    The id is taken verbatim: everything between the first ``/`` and the optional trailing label number (ids hold
    ``, ( ) [ ] . ; # @ ~ = ^``, inner dots and trailing dots in the real lists). Blank lines, a byte-order mark,
    CRLF endings and a missing final newline are fine.
    """
    entries = []
    with open(path, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, 1):
            text = line.strip()
            if not text:
                continue
            fields = text.rsplit(None, 1)
            number = None
            if len(fields) == 2 and fields[1].isdigit():
                text, number = fields
            relative = text.replace("\\", "/").lstrip("/")
            if "/" not in relative or relative.endswith("/"):
                raise ValueError(f"{path}:{line_number}: expected 'Class/video_id [label]', got {line.rstrip()!r}")
            class_name, name = relative.split("/", 1)
            entries.append((class_name, name, number, line_number))
    return entries


def read_class_index(path: str) -> dict[str, str]:
    """``classInd.txt`` lines ``<number> <Class>`` -> {number: Class}."""
    index = {}
    with open(path, encoding="utf-8-sig") as handle:
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
        self._cache: dict[str, dict[str, os.DirEntry]] = {}

    def entries(self, folder: str) -> dict[str, os.DirEntry]:
        if folder not in self._cache:
            names = {}
            if os.path.isdir(folder):
                with os.scandir(folder) as scan:
                    for entry in scan:
                        names[entry.name] = entry
            self._cache[folder] = names
        return self._cache[folder]

    def subfolder(self, parent: str, name: str) -> Optional[str]:
        """``parent/name`` when it is a folder, else a folder of ``parent`` whose name matches up to case."""
        entries = self.entries(parent)
        if name in entries and entries[name].is_dir():
            return entries[name].path
        folded = [entry.path for key, entry in entries.items() if key.lower() == name.lower() and entry.is_dir()]
        return folded[0] if len(folded) == 1 else None

    def find_video(self, folder: str, name: str) -> Optional[str]:
        """The video FILE of the id ``name``: ``name`` plus a video extension (the release's ids are file names with
        their last extension removed, so ``X.mp4`` is the file ``X.mp4.mp4``), else ``name`` itself when it is a
        file with a video extension; a folder is never a video. ``None`` when absent."""
        entries = self.entries(folder)
        for extension in VIDEO_EXTENSIONS + tuple(ext.upper() for ext in VIDEO_EXTENSIONS):
            entry = entries.get(name + extension)
            if entry is not None and entry.is_file():
                return entry.path
        entry = entries.get(name)
        if entry is not None and entry.is_file() and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
            return entry.path
        return None


# ---- media checks ---------------------------------------------------------------------------------------------
def first_frame(folder: str) -> Optional[str]:
    """The first ``%06d.jpg`` (or numbered .png) of a frames folder, or ``None``."""
    for name in ("000001.jpg", "000001.png", "000000.jpg"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    numbered = sorted((int(match.group(1)), name) for name in os.listdir(folder)
                      if (match := FRAME_FILE_PATTERN.match(name)))
    return os.path.join(folder, numbered[0][1]) if numbered else None


def frame_folder_problem(folder: str) -> Optional[str]:
    """The reference rule for extracted frames (VAANet ``tools/n_frames.py`` + ``datasets/ve8.py``): a folder whose
    ``n_frames`` file says 0 (fewer than 16 frames were extracted) is skipped; a folder without frames too."""
    counter = os.path.join(folder, "n_frames")
    if os.path.isfile(counter):
        try:
            with open(counter, encoding="utf-8") as handle:
                n_frames = int(float(handle.read().strip() or 0))
        except ValueError:
            return "n_frames file is not a number"
        if n_frames <= 0:
            return "fewer than 16 frames (n_frames is 0; the reference loader skips these)"
    if first_frame(folder) is None:
        return "frames folder without 000001.jpg ... frames"
    return None


def media_problem(path: str) -> Optional[str]:
    """THE bad-media check of every builder: ``None`` when ``path`` (a video or image file, or a frames folder) can
    be used, else the problem in words. The one place that calls the prober, so swapping it is a one-line edit."""
    if os.path.isdir(path):
        problem = frame_folder_problem(path)
        if problem is not None:
            return problem
        path = first_frame(path)
    elif not os.path.isfile(path):
        return "missing"
    problem = probe_clip(path)
    return problem and problem.replace(path, os.path.basename(path))  # the kept report holds no local path


def probe_clip(path: str) -> Optional[str]:
    """Cheap readability check (``media_avcpnet.probe_media``: the container's stream headers, no frame decoded).

    Returns ``None`` when the file opens and has a video stream with a frame size, else the problem in words.
    This catches missing moov atoms, truncated headers, empty and non-media files; a file whose header is intact
    but whose later packets are damaged passes and is left to the processor's own error handling.
    """
    try:
        probe_media(path, require_video=True)
    except MediaError as error:
        if error.problem.startswith(("has no video stream", "video stream without a frame size")):
            return error.problem  # a readable container that lacks what the model needs
        return f"unreadable ({error.problem})"
    return None


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
