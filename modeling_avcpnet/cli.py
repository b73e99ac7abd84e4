"""The ``avcpnet`` command line.

``avcpnet predict --model CHECKPOINT --output predictions.csv videos/ more/*.mp4 one.mov`` labels every video it
finds and writes one row per file: path, label, score, polarity, polarity_score, has_audio, one ``prob_<label>``
column per class (plus ``valence`` for a MER 2023 model) and an ``error`` column (empty, or the reason the file could not be read). The output is written
batch by batch, so an interrupted run resumes where it stopped when run again with the same output (finished files,
including failed ones unless ``--retry_errors``, are skipped). Unreadable files never stop the run; the command
exits non-zero only when no file at all could be labelled.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import time
import warnings as warnings_module
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, Dataset

from .media_avcpnet import VIDEO_EXTENSIONS

FORMATS = ("csv", "jsonl")
GLOB_CHARACTERS = set("*?[")


# --------------------------------------------------------------------------------------------------- input files
def find_videos(inputs: Iterable[str], extensions: Iterable[str] = VIDEO_EXTENSIONS) -> tuple[list[str], list[str]]:
    """Expand files, folders (searched recursively for `extensions`) and glob patterns into absolute file paths,
    in the order given (folder contents sorted), without duplicates. Files named explicitly or matched by a pattern
    are kept whatever their extension, and a named file that does not exist is kept too (it gets an error row).

    Returns `(paths, warnings)`, the warnings naming patterns and folders that matched nothing."""
    extensions = tuple(ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions)
    paths: dict[str, None] = {}
    warnings = []

    def add_folder(folder: str) -> int:
        found = 0
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(extensions) and not name.startswith("."):
                    paths[os.path.abspath(os.path.join(root, name))] = None
                    found += 1
        return found

    for item in inputs:
        if os.path.isdir(item):
            if not add_folder(item):
                warnings.append(f"no video files ({', '.join(extensions)}) under {item}")
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
def output_columns(labels: list[str], valence: bool = False) -> list[str]:
    return ["path", "label", "score", "polarity", "polarity_score", "has_audio", *(["valence"] if valence else []),
            *(f"prob_{label}" for label in labels), "error"]


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
    """The columns (CSV header, or the keys of the first JSON row) and rows of an existing output file."""
    with open(path, newline="", encoding="utf-8") as handle:
        if fmt == "csv":
            reader = csv.DictReader(handle)
            return reader.fieldnames, list(reader)
        rows = [json.loads(line) for line in handle if line.strip()]
    return (list(rows[0]) if rows else None), rows


class RowWriter:
    """Appends rows to a CSV or JSON Lines file, flushing after each batch so that an interrupted run loses at
    most the batch in flight."""

    def __init__(self, path: str, fmt: str, columns: list[str], rows: list[dict[str, Any]] | None = None):
        self.fmt, self.columns = fmt, columns
        fresh = rows is not None or not os.path.exists(path) or os.path.getsize(path) == 0
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


def result_row(path: str, result: dict[str, Any]) -> dict[str, Any]:
    row = {"path": path, "label": result["label"], "score": result["score"], "polarity": result["polarity"],
           "polarity_score": result["polarity_score"], "has_audio": result["has_audio"], "error": None}
    if "valence" in result:  # MER 2023 models
        row["valence"] = result["valence"]
    row.update({f"prob_{item['label']}": item["score"] for item in result["labels"]})
    return row


def error_row(path: str, error: str) -> dict[str, Any]:
    return {"path": path, "error": error}


def is_error(row: dict[str, Any]) -> bool:
    return bool(row.get("error"))


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
        inputs, error = None, None
        try:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: no such file")
            inputs = preprocess_clip(self.processor, path)
        except Exception as exception:  # one bad file must never stop the run
            error = f"{type(exception).__name__}: {exception}".replace("\n", " ")
        return {"path": path, "inputs": inputs, "error": error, "seconds": time.perf_counter() - start}


def keep_as_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


# --------------------------------------------------------------------------------------------------- the run
@dataclass
class PredictSummary:
    found: int = 0
    skipped: int = 0
    labelled: int = 0
    without_audio: int = 0  # labelled clips that had no audio stream (classified from vision alone)
    failed: list[str] = field(default_factory=list)
    labelled_before: int = 0
    decode_seconds: float = 0.0  # processor time summed over clips (in workers when num_workers > 0)
    wait_seconds: float = 0.0  # time the main process waited for decoded batches
    model_seconds: float = 0.0  # model forward + postprocessing in the main process
    wall_seconds: float = 0.0

    def line(self, output: str) -> str:
        done = self.labelled + len(self.failed)
        labelled = f"{self.labelled} labelled"
        if self.without_audio:
            labelled += f" ({self.without_audio} without audio)"
        unreadable = f"{len(self.failed)} unreadable"
        if self.failed:
            names = ", ".join(os.path.basename(path) for path in self.failed[:3])
            unreadable += f" ({names}{', ...' if len(self.failed) > 3 else ''}: see the error column)"
        parts = [f"{self.found} files", labelled, unreadable]
        if self.skipped:
            parts.append(f"{self.skipped} already in the output (skipped)")
        text = "avcpnet predict: " + ", ".join(parts)
        if done:
            text += (f"; {done / max(self.wall_seconds, 1e-9):.2f} clips/s (decode {self.decode_seconds:.1f} s, "
                     f"waiting for data {self.wait_seconds:.1f} s, model {self.model_seconds:.1f} s)")
        return f"{text} -> {output}"


def classify_batch(pipe, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a batch of decoded items, in their order. If the batched forward fails, each clip is retried on
    its own so that the failure is attributed to the file that caused it."""
    from .pipeline_avcpnet import collate_model_inputs

    num_labels = len(pipe.model.config.id2label)
    rows: dict[int, dict[str, Any]] = {}
    good = [index for index, item in enumerate(items) if item["error"] is None]
    for index, item in enumerate(items):
        if item["error"] is not None:
            rows[index] = error_row(item["path"], item["error"])

    def run(indices: list[int]) -> None:
        outputs = pipe.forward(collate_model_inputs([items[i]["inputs"] for i in indices]))
        for position, index in enumerate(indices):
            single = {key: value[position:position + 1] for key, value in outputs.items()}
            rows[index] = result_row(items[index]["path"], pipe.postprocess(single, top_k=num_labels))

    if good:
        try:
            run(good)
        except Exception:
            for index in good:
                try:
                    run([index])
                except Exception as exception:
                    rows[index] = error_row(items[index]["path"], f"model failed: {type(exception).__name__}: "
                                                                  f"{exception}".replace("\n", " "))
    return [rows[index] for index in range(len(items))]


def predict_files(pipe, paths: list[str], writer: RowWriter, batch_size: int = 8, num_workers: int = 0,
                  progress: bool = True, summary: PredictSummary | None = None) -> PredictSummary:
    """Label `paths` with the pipeline `pipe` and append one row per path to `writer`."""
    from tqdm.auto import tqdm

    summary = summary or PredictSummary(found=len(paths))
    if not paths:
        return summary
    loader = DataLoader(ClipDataset(pipe.processor, paths), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=keep_as_list, persistent_workers=False)
    start = time.perf_counter()
    try:
        _label_batches(pipe, loader, writer, summary, tqdm(total=len(paths), unit="clip", desc="predict",
                                                           disable=not progress))
    finally:
        summary.wall_seconds += time.perf_counter() - start
    return summary


def _label_batches(pipe, loader, writer: RowWriter, summary: PredictSummary, bar) -> None:
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
            rows = classify_batch(pipe, items)
            summary.model_seconds += time.perf_counter() - computed
            writer.write(rows)
            for row in rows:
                if is_error(row):
                    summary.failed.append(row["path"])
                else:
                    summary.labelled += 1
                    summary.without_audio += not row["has_audio"]
            bar.update(len(items))


def load_pipeline(model: str, device: str | None = None, trust_remote_code: bool = False):
    """The pipeline of a checkpoint folder or Hub id (AV-CPNet, or MER 2023 with emotion scores and valence), with a
    clear error when a part is missing."""
    from transformers import AutoFeatureExtractor, AutoModelForVideoClassification, AutoProcessor

    from .registration import register_auto_classes
    from .pipeline_avcpnet import TASK, AVCPNetPipeline, missing_processor_message

    register_auto_classes()

    if model.startswith((os.sep, ".", "~")) and not os.path.exists(model):
        raise SystemExit(f"error: model folder {model} does not exist")
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "config.json")):
        raise SystemExit(f"error: {model} is not a model folder: it has no config.json")
    message = missing_processor_message(model)
    if message:
        raise SystemExit(f"error: {message}")
    try:
        classifier = AutoModelForVideoClassification.from_pretrained(model, trust_remote_code=trust_remote_code)
        if classifier.config.model_type == "mer2023":  # its processor holds the feature backbones
            from .pipeline_mer2023 import MER2023Pipeline

            processor = AutoFeatureExtractor.from_pretrained(model, trust_remote_code=trust_remote_code)
            return MER2023Pipeline(model=classifier, processor=processor, task=TASK, device=device)
        processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: could not load a model and processor from {model}: {error}") from None
    return AVCPNetPipeline(model=classifier, processor=processor, task=TASK, device=device)


def predict(args: argparse.Namespace) -> tuple[int, PredictSummary]:
    fmt = infer_format(args.output, args.format)
    paths, warnings = find_videos(args.inputs, args.extensions.split(","))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not paths:
        print("error: no input files found", file=sys.stderr)
        return 2, PredictSummary()
    # Decoding workers run single-threaded (DataLoader's default); give the main process the remaining cores, since
    # oversubscribed intra-op threads slow small CPU ops down several times over.
    torch.set_num_threads(args.threads or max(1, torch.get_num_threads() - args.num_workers))
    pipe = load_pipeline(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    # Clips without sound are expected here and reported in the has_audio column, not as one warning per file.
    from .processing_avcpnet import MissingAudioWarning

    warnings_module.filterwarnings("ignore", category=MissingAudioWarning)
    columns = output_columns([pipe.model.config.id2label[i] for i in range(len(pipe.model.config.id2label))],
                             valence=pipe.model.config.model_type == "mer2023")

    summary = PredictSummary(found=len(paths))
    kept_rows = None  # rows to rewrite (only when --retry_errors drops failed rows)
    finished: set[str] = set()
    if os.path.exists(args.output) and not args.overwrite and os.path.getsize(args.output):
        drop_partial_last_line(args.output)
        existing_columns, rows = read_rows(args.output, fmt)
        if existing_columns is not None and list(existing_columns) != columns:
            print(f"error: {args.output} has columns {existing_columns}, not those of this model ({columns}); "
                  "choose another --output or pass --overwrite", file=sys.stderr)
            return 2, summary
        if args.retry_errors:
            kept_rows = [row for row in rows if not is_error(row)]
            rows = kept_rows
        finished = {row["path"] for row in rows}
        summary.labelled_before = sum(not is_error(row) for row in rows)
    elif args.overwrite and os.path.exists(args.output):
        kept_rows = []
    remaining = [path for path in paths if path not in finished]
    summary.skipped = len(paths) - len(remaining)

    writer = RowWriter(args.output, fmt, columns, rows=kept_rows)
    try:
        predict_files(pipe, remaining, writer, batch_size=args.batch_size, num_workers=args.num_workers,
                      progress=not args.quiet, summary=summary)
    except KeyboardInterrupt:
        print(f"interrupted; {summary.line(args.output)}; run the same command again to resume", file=sys.stderr)
        return 130, summary
    finally:
        writer.close()
    print(summary.line(args.output))
    nothing_labelled = summary.labelled == 0 and summary.labelled_before == 0
    return (1 if nothing_labelled else 0), summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avcpnet", description="AV-CPNet audio-visual emotion recognition.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "predict", help="label video files with an AV-CPNet checkpoint",
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
    p.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: an accelerator if any)")
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


def main(argv: list[str] | None = None) -> int:
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
    return 2


if __name__ == "__main__":
    sys.exit(main())
