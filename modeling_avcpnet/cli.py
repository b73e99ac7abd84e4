"""The ``avcpnet`` command line.

``avcpnet predict --model CHECKPOINT --output predictions.csv videos/ more/*.mp4 one.mov`` labels every video it
finds and writes one row per file (scores rounded to 4 decimals):

- ``label``, ``score``: the most likely emotion (fused audio-visual head) and its probability; ``prob_<label>``: the
  probability of every emotion.
- ``polarity_of_label``: the polarity (positive / neutral / negative) of ``label`` in the model's label map;
  ``polarity_prob_<polarity>``: the polarity distribution, each polarity's emotion probabilities summed. The two can
  disagree (``label`` excitation at 0.40 is positive while fear + sadness + tension may sum to 0.54 negative).
- ``visual_label``/``visual_score`` and ``audio_label``/``audio_score``: what each branch's own head predicts
  (audio empty for a clip without an audio stream, which the fused head then labels from vision alone).
- ``valence`` (MER 2023 models only, which have no per-branch heads): the model's valence estimate.
- ``has_audio``; ``warning`` (e.g. a clip whose sampled frames are all one image); ``model_id`` (fingerprint of the
  weights and config) and ``precision`` of the run that wrote the row; ``error`` (empty, or why the file could not
  be read).

The output is written batch by batch, so an interrupted run resumes where it stopped when run again with the same
output (finished files, including failed ones unless ``--retry_errors``, are skipped); resuming with a different
model (another ``model_id``) is refused. Unreadable files never stop the run; the command exits non-zero only when
no file at all could be labelled. ``--dtype bfloat16`` is the fast mode (see ``modeling_avcpnet.inference``).

Many processes (``torchrun --nproc_per_node N -m modeling_avcpnet.cli predict ...``, on one node or many with a
shared file system): each process labels every N-th file into ``<output>.part<RANK>`` (resumable like the output),
then rank 0 merges the parts into ``<output>``, one row per file. Without ``--device``, process ``LOCAL_RANK`` uses
``cuda:LOCAL_RANK`` where there are GPUs, else the CPU.
"""

# Why one file of ~650 lines: the `predict` command (discovery, resumable output, sharding over processes, merge)
# is one flow; `timeline` and `demo` keep their code in their own modules.

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import re
import sys
import time
import warnings as warnings_module
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, Dataset

from .labels import POLARITIES
from .media_avcpnet import VIDEO_EXTENSIONS

FORMATS = ("csv", "jsonl")
GLOB_CHARACTERS = set("*?[")


# --------------------------------------------------------------------------------------------------- input files
def find_videos(inputs: Iterable[str], extensions: Iterable[str] = VIDEO_EXTENSIONS,
                other_files: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Expand files, folders (searched recursively for `extensions`) and glob patterns into absolute file paths,
    in the order given (folder contents sorted), without duplicates. Files named explicitly or matched by a pattern
    are kept whatever their extension, and a named file that does not exist is kept too (it gets an error row);
    a missing name that ends with a separator or has no extension is a missing folder (a warning).
    Files of other extensions met in scanned folders (not hidden ones) are appended to `other_files` when given.

    Returns `(paths, warnings)`, the warnings naming patterns and folders that matched nothing."""
    extensions = tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions)
    paths: dict[str, None] = {}
    warnings = []

    def add_folder(folder: str) -> int:
        found = 0
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.startswith("."):
                    continue
                if name.lower().endswith(extensions):
                    paths[os.path.abspath(os.path.join(root, name))] = None
                    found += 1
                elif other_files is not None:
                    other_files.append(os.path.abspath(os.path.join(root, name)))
        return found

    for item in inputs:
        if os.path.isdir(item):
            if not add_folder(item):
                warnings.append(f"no video files ({', '.join(extensions)}) under {item}")
        elif not os.path.exists(item) and not GLOB_CHARACTERS & set(item) and (
                item.endswith(("/", os.sep)) or not os.path.splitext(item)[1]):  # a missing folder: not a file row
            warnings.append(f"{item}: no such file or folder")
        elif os.path.exists(item) or not GLOB_CHARACTERS & set(item):
            paths[os.path.abspath(item)] = None
        else:
            matches = sorted(glob.glob(item, recursive=True))
            for match in matches:
                if os.path.isdir(match):
                    add_folder(match)
                else:
                    paths[os.path.abspath(match)] = None
            if not matches:
                warnings.append(f"no files match {item}")
    return list(paths), warnings


# --------------------------------------------------------------------------------------------------- output file
SCORE_DECIMALS = 4


def output_columns(labels: list[str], valence: bool = False) -> list[str]:
    """The columns of a run; `valence`: a MER 2023 model (its valence estimate, and no per-branch heads)."""
    branches = [] if valence else ["visual_label", "visual_score", "audio_label", "audio_score"]
    return ["path", "label", "score", "polarity_of_label", *(f"polarity_prob_{name}" for name in POLARITIES),
            *(["valence"] if valence else []), *branches, "has_audio",
            *(f"prob_{label}" for label in labels), "warning", "model_id", "precision", "error"]


def infer_format(output: str, requested: str | None) -> str:
    if requested:
        return requested
    return "jsonl" if output.lower().endswith((".jsonl", ".json", ".ndjson")) else "csv"


def drop_partial_last_line(path: str) -> None:
    """Cut a last line that an interrupted run left unfinished (rows are written whole, each ending in a newline)."""
    with open(path, "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def read_rows(path: str, fmt: str) -> tuple[list[str] | None, list[dict[str, Any]]]:
    """The columns (CSV header, or the keys of the first JSON row) and the complete rows of an existing output file;
    an unfinished last line (a run interrupted mid-write, or another process writing) is ignored."""
    with open(path, "rb") as handle:
        data = handle.read()
    text = data[: data.rfind(b"\n") + 1].decode("utf-8")
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        return reader.fieldnames, list(reader)
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return (list(rows[0]) if rows else None), rows


class RowWriter:
    """Appends rows to a CSV or JSON Lines file, flushing after each batch so that an interrupted run loses at
    most the batch in flight."""

    def __init__(self, path: str, fmt: str, columns: list[str], rows: list[dict[str, Any]] | None = None):
        self.fmt, self.columns = fmt, columns
        fresh = rows is not None or not os.path.exists(path) or os.path.getsize(path) == 0
        if not fresh:
            drop_partial_last_line(path)
        self.handle = open(path, "w" if fresh else "a", newline="", encoding="utf-8")
        if fmt == "csv":
            self.csv = csv.DictWriter(self.handle, fieldnames=columns, lineterminator="\n")
            if fresh:
                self.csv.writeheader()
        self.write(rows or [])

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if self.fmt == "csv":
                self.csv.writerow({key: "" if row.get(key) is None else row[key] for key in self.columns})
            else:
                self.handle.write(json.dumps({key: row.get(key) for key in self.columns}) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def error_row(path: str, error: str, run: dict[str, Any]) -> dict[str, Any]:
    return {"path": path, "error": error, **run}


def is_error(row: dict[str, Any]) -> bool:
    return bool(row.get("error"))


def part_path(output: str, rank: int) -> str:
    """The file where process `rank` of a multi-process run writes its rows."""
    return f"{output}.part{rank}"


def existing_parts(output: str) -> list[str]:
    pattern = re.compile(re.escape(os.path.basename(output)) + r"\.part\d+$")
    folder = os.path.dirname(os.path.abspath(output))
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if pattern.fullmatch(name))


# --------------------------------------------------------------------------------------------------- decoding
class ClipDataset(Dataset):
    """Runs the processor (eval mode) on one file per item, in DataLoader workers when `num_workers > 0`; a file
    that cannot be read becomes an item with its error message instead of an exception."""

    def __init__(self, processor, paths: list[str]):
        self.processor, self.paths = processor, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from .pipeline_avcpnet import preprocess_clip

        path = self.paths[index]
        start = time.perf_counter()
        inputs, error, warning = None, None, None
        try:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: no such file")
            inputs = preprocess_clip(self.processor, path)
            frames = inputs.get("pixel_values_videos")
            # Loop padding repeats the only frame of a 1-frame clip into every slot: the model sees one still image.
            if frames is not None and bool((frames == frames[:, :1, :1]).all()):
                warning = "all sampled frames are the same image (a 1-frame clip or a still): no motion to go by"
        except Exception as exception:  # one bad file must never stop the run
            error = f"{type(exception).__name__}: {exception}".replace("\n", " ")
        return {"path": path, "inputs": inputs, "error": error, "warning": warning,
                "seconds": time.perf_counter() - start}


def keep_as_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


# --------------------------------------------------------------------------------------------------- the model
@dataclass
class Predictor:
    """A model in its inference mode, its processor and what the output records about them."""

    model: Any
    processor: Any
    config: Any
    device: str
    model_id: str
    precision: str

    @property
    def labels(self) -> list[str]:
        return [self.config.id2label[i] for i in range(len(self.config.id2label))]

    def run(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "precision": self.precision}


def check_model_folder(model: str) -> None:
    """Exit with a clear message when `model` is a local path that is not a complete checkpoint folder."""
    from .pipeline_avcpnet import missing_processor_message

    if model.startswith((os.sep, ".", "~")) and not os.path.exists(model):
        raise SystemExit(f"error: model folder {model} does not exist")
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "config.json")):
        raise SystemExit(f"error: {model} is not a model folder: it has no config.json")
    message = missing_processor_message(model)
    if message:
        raise SystemExit(f"error: {message}")


def load_predictor(model: str, device: str = "cpu", dtype: str = "float32", quantize: str | None = None,
                   compile: bool = False, trust_remote_code: bool = False) -> Predictor:
    """The model of a checkpoint folder or Hub id in the requested inference mode, with a clear error when a part
    is missing."""
    from .inference import load_for_inference

    check_model_folder(model)
    try:
        classifier, processor, identity = load_for_inference(model, dtype=dtype, quantize=quantize, compile=compile,
                                                             device=device, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: could not load a model and processor from {model}: {error}") from None
    precision = quantize or dtype
    return Predictor(classifier, processor, classifier.config, device, identity, precision + ("+compile" * compile))


def load_pipeline(model: str, device: str | None = None, trust_remote_code: bool = False, dtype: str = "float32"):
    """The pipeline of a checkpoint folder or Hub id (AV-CPNet, or MER 2023 with emotion scores and valence), with a
    clear error when a part is missing."""
    from .pipeline_avcpnet import TASK, AVCPNetPipeline
    from .pipeline_mer2023 import MER2023Pipeline

    predictor = load_predictor(model, device=device or "cpu", dtype=dtype, trust_remote_code=trust_remote_code)
    pipeline_class = MER2023Pipeline if predictor.config.model_type == "mer2023" else AVCPNetPipeline
    return pipeline_class(model=predictor.model, processor=predictor.processor, task=TASK, device=device)


def _top(probabilities: torch.Tensor, labels: list[str]) -> tuple[str, float]:
    index = int(probabilities.argmax())
    return labels[index], round(float(probabilities[index]), SCORE_DECIMALS)


def result_rows(predictor: Predictor, items: list[dict[str, Any]], outputs, audio_mask: torch.Tensor) -> list[dict]:
    """One output row per item from the model outputs of their batch."""
    config, labels = predictor.config, predictor.labels
    probabilities = outputs.logits.float().softmax(-1).cpu()
    polarity_ids = torch.tensor(config.polarity_ids)
    polarity_probabilities = torch.zeros(len(items), len(POLARITIES)).index_add_(1, polarity_ids, probabilities)
    branches = {name: None if logits is None else logits.float().softmax(-1).cpu()
                for name, logits in (("visual", getattr(outputs, "visual_logits", None)),
                                     ("audio", getattr(outputs, "audio_logits", None)))}
    valence = getattr(outputs, "valence", None)  # MER 2023 models
    rows = []
    for position, item in enumerate(items):
        label, score = _top(probabilities[position], labels)
        label_polarity = POLARITIES[int(polarity_ids[labels.index(label)])]
        has_audio = bool(audio_mask[position])
        row = {"path": item["path"], "label": label, "score": score,
               "polarity_of_label": label_polarity, "has_audio": has_audio,
               "warning": item.get("warning"), "error": None, **predictor.run()}
        row.update({f"polarity_prob_{name}": round(float(value), SCORE_DECIMALS)
                    for name, value in zip(POLARITIES, polarity_probabilities[position])})
        row.update({f"prob_{name}": round(float(value), SCORE_DECIMALS)
                    for name, value in zip(labels, probabilities[position])})
        if valence is not None:
            row["valence"] = round(float(valence.reshape(len(items))[position]), SCORE_DECIMALS)
        for name, branch in branches.items():
            if branch is not None and (name != "audio" or has_audio):
                row[f"{name}_label"], row[f"{name}_score"] = _top(branch[position], labels)
        rows.append(row)
    return rows


def classify_batch(predictor: Predictor, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a batch of decoded items, in their order. If the batched forward fails, each clip is retried on
    its own so that the failure is attributed to the file that caused it."""
    from .pipeline_avcpnet import collate_model_inputs

    rows: dict[int, dict[str, Any]] = {}
    good = [index for index, item in enumerate(items) if item["error"] is None]
    for index, item in enumerate(items):
        if item["error"] is not None:
            rows[index] = error_row(item["path"], item["error"], predictor.run())

    def run(indices: list[int]) -> None:
        inputs = collate_model_inputs([items[i]["inputs"] for i in indices])
        audio_mask = inputs.get("audio_mask")
        audio_mask = torch.ones(len(indices), dtype=torch.bool) if audio_mask is None else audio_mask
        tensors = {key: inputs[key].to(predictor.device) for key in ("pixel_values_videos", "input_features")
                   if key in inputs}
        with torch.inference_mode():
            if predictor.config.model_type == "mer2023":  # features of the whole clip: no separate audio mask
                outputs = predictor.model(**tensors)
            else:
                outputs = predictor.model(**tensors, audio_mask=audio_mask.to(predictor.device))
        for index, row in zip(indices, result_rows(predictor, [items[i] for i in indices], outputs, audio_mask)):
            rows[index] = row

    if good:
        try:
            run(good)
        except Exception:
            for index in good:
                try:
                    run([index])
                except Exception as exception:
                    rows[index] = error_row(items[index]["path"], f"model failed: {type(exception).__name__}: "
                                            f"{exception}".replace("\n", " "), predictor.run())
    return [rows[index] for index in range(len(items))]


# --------------------------------------------------------------------------------------------------- the run
@dataclass
class PredictSummary:
    found: int = 0
    skipped: int = 0
    labelled: int = 0
    without_audio: int = 0  # labelled clips that had no audio stream (classified from vision alone)
    warned: list[str] = field(default_factory=list)  # labelled clips with a warning (e.g. a single frame)
    failed: list[str] = field(default_factory=list)
    not_videos: list[str] = field(default_factory=list)  # files in scanned folders without a video extension
    labelled_before: int = 0
    decode_seconds: float = 0.0  # processor time summed over clips (in workers when num_workers > 0)
    wait_seconds: float = 0.0  # time the main process waited for decoded batches
    model_seconds: float = 0.0  # model forward + postprocessing in the main process
    wall_seconds: float = 0.0

    def add(self, other: "PredictSummary") -> None:
        """Fold in the work of another process of the same run (the file counts are the same in every process)."""
        self.labelled += other.labelled
        self.without_audio += other.without_audio
        self.warned += other.warned
        self.failed += other.failed
        for name in ("decode_seconds", "wait_seconds", "model_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.wall_seconds = max(self.wall_seconds, other.wall_seconds)

    def line(self, output: str) -> str:
        done = self.labelled + len(self.failed)
        labelled = f"{self.labelled} labelled"
        details = [f"{self.without_audio} without audio"] * bool(self.without_audio)
        details += [f"{len(self.warned)} with a warning: see the warning column"] * bool(self.warned)
        if details:
            labelled += f" ({', '.join(details)})"
        unreadable = f"{len(self.failed)} unreadable"
        if self.failed:
            unreadable += f" ({_names(self.failed)}: see the error column)"
        parts = [f"{self.found} files", labelled, unreadable]
        if self.skipped:
            parts.append(f"{self.skipped} already in the output (skipped)")
        if self.not_videos:
            parts.append(f"{len(self.not_videos)} non-video files in the folders not labelled ({_names(self.not_videos)}"
                         "; --extensions chooses what counts as a video)")
        text = "avcpnet predict: " + ", ".join(parts)
        if done:
            text += (f"; {done / max(self.wall_seconds, 1e-9):.2f} clips/s (decode {self.decode_seconds:.1f} s, "
                     f"waiting for data {self.wait_seconds:.1f} s, model {self.model_seconds:.1f} s)")
        return f"{text} -> {output}"


def _names(paths: list[str], limit: int = 3) -> str:
    return ", ".join(os.path.basename(path) for path in paths[:limit]) + (", ..." if len(paths) > limit else "")


def predict_files(predictor: Predictor, paths: list[str], writer: RowWriter, batch_size: int = 8,
                  num_workers: int = 0, progress: bool = True,
                  summary: PredictSummary | None = None) -> PredictSummary:
    """Label `paths` with `predictor` and append one row per path to `writer`."""
    from tqdm.auto import tqdm

    summary = summary or PredictSummary(found=len(paths))
    if not paths:
        return summary
    loader = DataLoader(ClipDataset(predictor.processor, paths), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=keep_as_list, persistent_workers=False)
    start = time.perf_counter()
    try:
        _label_batches(predictor, loader, writer, summary, tqdm(total=len(paths), unit="clip", desc="predict",
                                                                disable=not progress))
    finally:
        summary.wall_seconds += time.perf_counter() - start
    return summary


def _label_batches(predictor: Predictor, loader, writer: RowWriter, summary: PredictSummary, bar) -> None:
    with bar:
        iterator = iter(loader)
        while True:
            waited = time.perf_counter()
            try:
                items = next(iterator)
            except StopIteration:
                break
            summary.wait_seconds += time.perf_counter() - waited
            summary.decode_seconds += sum(item["seconds"] for item in items)
            computed = time.perf_counter()
            rows = classify_batch(predictor, items)
            summary.model_seconds += time.perf_counter() - computed
            writer.write(rows)
            for row in rows:
                if is_error(row):
                    summary.failed.append(row["path"])
                else:
                    summary.labelled += 1
                    summary.without_audio += not row["has_audio"]
                    if row.get("warning"):
                        summary.warned.append(row["path"])
                        bar.write(f"warning: {row['path']}: {row['warning']}", file=sys.stderr)
            bar.update(len(items))


class OutputMismatch(Exception):
    """An existing output (or part) file was written for other columns or by another model."""


def read_existing(files: list[str], fmt: str, columns: list[str], model_id: str) -> dict[str, list[dict]]:
    """Rows of each existing output/part file, checked: same columns, same model."""
    found = {}
    for path in files:
        if not os.path.exists(path) or not os.path.getsize(path):
            continue
        existing_columns, rows = read_rows(path, fmt)
        if existing_columns is not None and list(existing_columns) != columns:
            raise OutputMismatch(f"{path} has columns {existing_columns}, not those of this model ({columns})")
        others = sorted({row.get("model_id") for row in rows} - {model_id})
        if others:
            raise OutputMismatch(f"{path} holds predictions of another model (model_id {', '.join(map(str, others))}"
                                 f"); this model's model_id is {model_id}")
        found[path] = rows
    return found


def merge_outputs(output: str, fmt: str, columns: list[str], existing: dict[str, list[dict]], order: list[str]) -> int:
    """Write `output` from the rows of the output and part files (re-read, as the parts have grown since `existing`
    was read): one row per file, the labelled row where there is one (a retried file's new row), else the latest.
    Rows of the output come first in their order, then the files of `order`. Removes the parts; returns the rows."""
    best: dict[str, dict] = {}
    previous = [row["path"] for row in existing.get(output, [])]
    for path in [output, *existing_parts(output)]:
        if not os.path.exists(path) or not os.path.getsize(path):
            continue
        for row in read_rows(path, fmt)[1]:
            old = best.get(row["path"])
            if old is None or is_error(old) or not is_error(row):
                best[row["path"]] = row
    ordered = list(dict.fromkeys([*previous, *order, *best]))
    temporary = f"{output}.merging"
    RowWriter(temporary, fmt, columns, rows=[best[path] for path in ordered if path in best]).close()
    os.replace(temporary, output)
    for path in existing_parts(output):
        os.remove(path)
    return len(best)


def predict(args: argparse.Namespace) -> tuple[int, PredictSummary]:
    from .inference import ProcessShard

    shard = ProcessShard.from_environment()
    say = print if shard.rank == 0 else (lambda *a, **k: None)  # one voice for what every process knows alike
    fmt = infer_format(args.output, args.format)
    not_videos: list[str] = []
    paths, warnings = find_videos(args.inputs, args.extensions.split(","), other_files=not_videos)
    for warning in warnings:
        say(f"warning: {warning}", file=sys.stderr)
    if not paths:
        say("error: no input files found", file=sys.stderr)
        return 2, PredictSummary()
    if shard.distributed:
        from datetime import timedelta

        import torch.distributed as dist

        # gloo only synchronises the processes around the files (the model runs on each process's own device);
        # the long timeout lets a process wait for the slowest shard.
        dist.init_process_group("gloo", timeout=timedelta(hours=24))
    try:
        return _predict(args, shard, say, fmt, paths, not_videos)
    finally:
        if shard.distributed:
            torch.distributed.destroy_process_group()


def _barrier(shard) -> None:
    if shard.distributed:
        torch.distributed.barrier()


def _predict(args, shard, say, fmt: str, paths: list[str], not_videos: list[str]) -> tuple[int, PredictSummary]:
    # Decoding workers run single-threaded (DataLoader's default); give the main process the remaining cores, since
    # oversubscribed intra-op threads slow small CPU ops down several times over.
    torch.set_num_threads(args.threads or max(1, torch.get_num_threads() - args.num_workers))
    predictor = load_predictor(args.model, device=shard.device(args.device), dtype=args.dtype,
                               compile=args.compile, trust_remote_code=args.trust_remote_code)
    # Clips without sound are expected here and reported in the has_audio column, not as one warning per file.
    from .processing_avcpnet import MissingAudioWarning

    warnings_module.filterwarnings("ignore", category=MissingAudioWarning)
    columns = output_columns(predictor.labels, valence=predictor.config.model_type == "mer2023")
    summary = PredictSummary(found=len(paths), not_videos=not_videos)

    if args.overwrite and shard.rank == 0:
        for path in [args.output, *existing_parts(args.output)]:
            if os.path.exists(path):
                os.remove(path)
    _barrier(shard)
    try:
        existing = read_existing([args.output, *existing_parts(args.output)], fmt, columns, predictor.model_id)
    except OutputMismatch as mismatch:
        say(f"error: {mismatch}; choose another --output or pass --overwrite", file=sys.stderr)
        return 2, summary
    _barrier(shard)  # every process has read the same files before any writes: they all compute the same shards
    rows = [row for file_rows in existing.values() for row in file_rows]
    finished = {row["path"] for row in rows if not (args.retry_errors and is_error(row))}
    summary.labelled_before = len({row["path"] for row in rows if not is_error(row)})
    remaining = [path for path in paths if path not in finished]
    summary.skipped = len(paths) - len(remaining)

    target, kept_rows = args.output, None
    if shard.distributed:
        target = part_path(args.output, shard.rank)
    elif args.retry_errors and existing.get(args.output):
        kept_rows = [row for row in existing[args.output] if not is_error(row)]  # rewritten without failed rows
    writer = RowWriter(target, fmt, columns, rows=kept_rows)
    try:
        predict_files(predictor, shard.select(remaining), writer, batch_size=args.batch_size,
                      num_workers=args.num_workers, progress=not args.quiet and shard.rank == 0, summary=summary)
    except KeyboardInterrupt:
        print(f"interrupted; {summary.line(target)}; run the same command again to resume", file=sys.stderr)
        return 130, summary
    finally:
        writer.close()

    if shard.distributed:
        gathered = [None] * shard.world_size
        torch.distributed.all_gather_object(gathered, summary)  # also waits until every process has written
        summary = gathered[0]
        for other in gathered[1:]:
            summary.add(other)
    if shard.rank == 0 and (shard.distributed or len(existing) > 1 or existing_parts(args.output)):
        merge_outputs(args.output, fmt, columns, existing, paths)
    say(summary.line(args.output))
    nothing_labelled = summary.labelled == 0 and summary.labelled_before == 0
    return (1 if nothing_labelled else 0), summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avcpnet", description="AV-CPNet audio-visual emotion recognition.")
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one-line message (anywhere in the line)")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "predict", help="label video files with an AV-CPNet or MER 2023 checkpoint",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", help="video files, folders (searched recursively) or glob patterns")
    p.add_argument("-m", "--model", required=True, help="checkpoint folder or Hub id (model + processor files)")
    p.add_argument("-o", "--output", required=True, help="output file, .csv or .jsonl")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from the extension, else csv)")
    p.add_argument("--batch_size", "--batch-size", type=int, default=8, help="clips per model forward")
    p.add_argument("--num_workers", "--num-workers", type=int, default=0,
                   help="DataLoader worker processes that decode videos (0: decode in the main process)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads of the main process (default: the cores minus --num_workers, at least 1); "
                        "1 is fastest on a busy shared machine")
    p.add_argument("--device", default=None,
                   help="e.g. cpu, cuda, cuda:1 (default: cuda:LOCAL_RANK where there are GPUs, else cpu)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="model precision; bfloat16 is about 2x faster on CPUs with AMX / AVX512-BF16 (and on GPUs), "
                        "within 0.02 of float32's probabilities")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (inductor); pays a compilation of minutes on the first batch")
    p.add_argument("--extensions", default=",".join(VIDEO_EXTENSIONS),
                   help="comma-separated extensions looked for in folders")
    p.add_argument("--overwrite", action="store_true", help="start the output file afresh instead of resuming")
    p.add_argument("--retry_errors", "--retry-errors", action="store_true",
                   help="when resuming, try again the files whose rows have an error")
    p.add_argument("--trust_remote_code", "--trust-remote-code", action="store_true",
                   help="allow loading a checkpoint's own code (not needed for avcpnet checkpoints)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_extra_commands(commands)
    return parser


def add_extra_commands(commands) -> None:
    """`timeline` and `demo`: their arguments and code live in their own modules."""
    from .timeline import add_timeline_arguments

    add_timeline_arguments(commands.add_parser(
        "timeline", help="emotion probabilities over sliding windows of a long video (CSV, JSON, plot)"))
    from .demo import add_demo_arguments

    add_demo_arguments(commands.add_parser("demo", help="start the Gradio demo app (127.0.0.1 by default)"))
    from datasets_emotions.sample_clips import add_arguments as add_sample_clips_arguments

    add_sample_clips_arguments(commands.add_parser(
        "sample-clips", help="write a few small clips to try the examples on (clip.mp4, talk.mp4, videos/, ...)"))


def version_line() -> str:
    """`avcpnet --version`: this package's version and those of the libraries a bug report needs."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"avcpnet {of('avcpnet')} (transformers {of('transformers')}, torch {of('torch')}, av {of('av')})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return _run_command([item for item in argv if item != "--debug"])
    except (OSError, ValueError) as error:  # user errors (missing files, bad values): one line, unless --debug
        if debug:
            raise
        print(f"avcpnet: error: {' '.join(str(error).split())} (--debug shows the traceback)", file=sys.stderr)
        return 1


def _run_command(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "predict":
        if args.batch_size < 1 or args.num_workers < 0 or args.threads < 0:
            print("error: --batch_size must be >= 1, --num_workers and --threads >= 0", file=sys.stderr)
            return 2
        threads = torch.get_num_threads()
        try:
            code, _ = predict(args)
        finally:
            torch.set_num_threads(threads)  # predict() sets the main process's threads; callers keep theirs
        return code
    if args.command == "timeline":
        from .timeline import timeline_command

        return timeline_command(args)
    if args.command == "demo":
        from .demo import demo_command

        return demo_command(args)
    if args.command == "sample-clips":
        from datasets_emotions.sample_clips import command as sample_clips_command

        return sample_clips_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
