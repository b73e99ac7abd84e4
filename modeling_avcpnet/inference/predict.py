"""`avcpnet predict`: label video files with a checkpoint and write one row per file.

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

Many processes (``torchrun --nproc_per_node N -m modeling_avcpnet.apps.cli predict ...``, on one node or many with
a shared file system): each process labels every N-th file into ``<output>.part<RANK>`` (resumable like the
output), then rank 0 merges the parts into ``<output>``, one row per file. Without ``--device``, process
``LOCAL_RANK`` uses ``cuda:LOCAL_RANK`` where there are GPUs, else the CPU.

Here: finding the files, decoding them in DataLoader workers, the rows of a batch (from `predict_clips`) and the
run (resume, shards, merge, summary); the files themselves are `result_files`, the arguments `apps/cli.py`.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings as warnings_module
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, Dataset

from ..media_avcpnet import VIDEO_EXTENSIONS
from ..labels import POLARITIES
from ..prediction_avcpnet import ClipPredictions, predict_clips
from .loading import Predictor, load_predictor
from .result_files import (
    OutputMismatch,
    RowWriter,
    error_row,
    existing_parts,
    infer_format,
    is_error,
    merge_outputs,
    output_columns,
    part_path,
    read_existing,
)
from .sharding import ProcessShard

GLOB_CHARACTERS = set("*?[")
SCORE_DECIMALS = 4


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


# --------------------------------------------------------------------------------------------------- decoding
class ClipDataset(Dataset):
    """Runs the processor (eval mode) on one file per item, in DataLoader workers when `num_workers > 0`; a file
    that cannot be read becomes an item with its error message instead of an exception."""

    def __init__(self, processor, paths: list[str]):
        self.processor, self.paths = processor, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from ..pipeline_avcpnet import preprocess_clip

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


# --------------------------------------------------------------------------------------------------- the rows
def _top(probabilities: torch.Tensor, labels: list[str]) -> tuple[str, float]:
    index = int(probabilities.argmax())
    return labels[index], round(float(probabilities[index]), SCORE_DECIMALS)


def result_rows(predictor: Predictor, items: list[dict[str, Any]], predictions: ClipPredictions) -> list[dict]:
    """One output row per item from the predictions of their batch."""
    labels = predictor.labels
    rows = []
    for position, item in enumerate(items):
        label, score = _top(predictions.probabilities[position], labels)
        label_polarity = POLARITIES[predictions.polarity_ids[labels.index(label)]]
        has_audio = bool(predictions.has_audio[position])
        row = {"path": item["path"], "label": label, "score": score,
               "polarity_of_label": label_polarity, "has_audio": has_audio,
               "warning": item.get("warning"), "error": None, **predictor.run()}
        row.update({f"polarity_prob_{name}": round(float(value), SCORE_DECIMALS)
                    for name, value in zip(POLARITIES, predictions.polarity_probabilities[position])})
        row.update({f"prob_{name}": round(float(value), SCORE_DECIMALS)
                    for name, value in zip(labels, predictions.probabilities[position])})
        if predictions.valence is not None:  # MER 2023 models
            row["valence"] = round(float(predictions.valence[position]), SCORE_DECIMALS)
        for name, branch in predictions.branch_probabilities.items():
            if name != "audio" or has_audio:
                row[f"{name}_label"], row[f"{name}_score"] = _top(branch[position], labels)
        rows.append(row)
    return rows


def classify_batch(predictor: Predictor, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a batch of decoded items, in their order. If the batched forward fails, each clip is retried on
    its own so that the failure is attributed to the file that caused it."""
    from ..pipeline_avcpnet import collate_model_inputs

    rows: dict[int, dict[str, Any]] = {}
    good = [index for index, item in enumerate(items) if item["error"] is None]
    for index, item in enumerate(items):
        if item["error"] is not None:
            rows[index] = error_row(item["path"], item["error"], predictor.run())

    def run(indices: list[int]) -> None:
        predictions = predict_clips(predictor.model, collate_model_inputs([items[i]["inputs"] for i in indices]))
        for index, row in zip(indices, result_rows(predictor, [items[i] for i in indices], predictions)):
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


def predict_command(args: argparse.Namespace) -> int:
    """`avcpnet predict` (arguments: `apps/cli.py`): the exit status; the torch threads of the caller are kept."""
    if args.batch_size < 1 or args.num_workers < 0 or args.threads < 0:
        print("error: --batch_size must be >= 1, --num_workers and --threads >= 0", file=sys.stderr)
        return 2
    threads = torch.get_num_threads()
    try:
        code, _ = predict(args)
    finally:
        torch.set_num_threads(threads)  # predict() sets the main process's threads; callers keep theirs
    return code


def predict(args: argparse.Namespace) -> tuple[int, PredictSummary]:
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
    from ..processing_avcpnet import MissingAudioWarning

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
