"""The output files of `avcpnet predict`: CSV or JSON Lines rows written batch by batch, read back to resume, and the
per-process part files of a multi-process run merged into one output (see `predict` for the columns).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Any

from ..labels import POLARITIES

FORMATS = ("csv", "jsonl")


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
