"""Export a dataset for the Hub: Parquet with the media bytes embedded, plus a dataset card.

The exported folder loads with plain ``datasets.load_dataset(folder_or_repo)``, without this package: ``video``
becomes ``Video(decode=False)`` and ``audio`` ``Audio(decode=False)``, i.e. ``{"bytes": ..., "path": ...}`` whose
``path`` is relative to the dataset root (the common folder of all media, or ``data_root``), so no path of the
local machine leaks into the files. A frames folder (eMotions release layout) is packed losslessly into one
Matroska file: its JPEGs become the packets of an MJPEG stream (``<video_id>.mkv``), which PyAV and the processor
decode like any video. All other columns are written unchanged.

Command:

```
python -m datasets_emotions.export sample --output exports/emotions-sample
python -m datasets_emotions.export emotions --data_dir /data/eMotions --config balanced --output exports/eb \
    --push_to_hub user/emotions-balanced
```

Options take both spellings, ``--data_dir`` (as ``train_hf.py``) and ``--data-dir``.
"""

from __future__ import annotations

import fractions
import io
import os
from typing import Optional, Union

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from .cards import card_for

MEDIA_COLUMNS = ("video", "audio")
PARQUET_ROWS_PER_GROUP = 16  # small row groups: a reader never holds more than a few clips' bytes at once


def pack_frames_folder(folder: str, fps: float = 25) -> bytes:
    """The ``*.jpg`` frames of ``folder`` (sorted by name) as an MJPEG Matroska file, without re-encoding."""
    import av
    from PIL import Image

    names = sorted(name for name in os.listdir(folder) if name.lower().endswith((".jpg", ".jpeg")))
    if not names:
        raise ValueError(f"{folder}: frames folder has no .jpg files")
    with Image.open(os.path.join(folder, names[0])) as first:
        width, height = first.size
    buffer = io.BytesIO()
    time_base = fractions.Fraction(1, 1000)
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for index, name in enumerate(names):
            with open(os.path.join(folder, name), "rb") as handle:
                packet = av.Packet(handle.read())
            packet.stream, packet.time_base, packet.is_keyframe = stream, time_base, True
            packet.pts = packet.dts = int(round(index / fps / time_base))
            container.mux(packet)
    return buffer.getvalue()


def _media_root(parts: dict) -> str:
    paths = [path for part in parts.values() for column in ("video", "audio") if column in part.column_names
             for path in part[column] if path]
    if not paths:
        raise ValueError("export: the dataset has no media paths in its video/audio columns")
    unique = {os.path.abspath(path) for path in paths}
    # one entry: its folder; several: their common folder (a clip or a frames folder is never the root itself)
    return os.path.dirname(unique.pop()) if len(unique) == 1 else os.path.commonpath(list(unique))


def _embed(path: str, root: str, frames_fps: float) -> Optional[dict]:
    if not path:
        return None
    relative = os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/")
    if relative.startswith(".."):
        raise ValueError(f"export: {path} is outside the dataset root {root}; pass data_root=")
    if os.path.isdir(path):
        return {"bytes": pack_frames_folder(path, frames_fps), "path": relative + ".mkv"}
    with open(path, "rb") as handle:
        return {"bytes": handle.read(), "path": relative}


def export_features(features: datasets.Features) -> datasets.Features:
    exported = datasets.Features(features.copy())
    exported["video"] = datasets.Video(decode=False)
    if "audio" in exported:
        exported["audio"] = datasets.Audio(decode=False)
    return exported


def _write_split(part: datasets.Dataset, split: str, output_dir: str, root: str, features: datasets.Features,
                 max_shard_bytes: int, frames_fps: float) -> list[str]:
    schema = features.arrow_schema
    shards, writer, written = [], None, 0
    try:
        for batch in part.iter(batch_size=PARQUET_ROWS_PER_GROUP):
            batch = dict(batch)
            batch["video"] = [_embed(path, root, frames_fps) for path in batch["video"]]
            if "audio" in batch:
                batch["audio"] = [_embed(path, root, frames_fps) for path in batch["audio"]]
            # media dicts go to Arrow as they are: datasets' Audio.encode_example needs torchcodec even for bytes
            plain = {column: values for column, values in batch.items() if column not in MEDIA_COLUMNS}
            encoded = datasets.Features({column: features[column] for column in plain}).encode_batch(plain)
            encoded.update({column: batch[column] for column in MEDIA_COLUMNS if column in batch})
            table = pa.Table.from_pydict(encoded, schema=schema)
            if writer is None or written > max_shard_bytes:
                if writer is not None:
                    writer.close()
                shards.append(os.path.join(output_dir, "data", f"{split}-{len(shards):05d}.parquet.partial"))
                writer, written = pq.ParquetWriter(shards[-1], schema), 0
            writer.write_table(table, row_group_size=PARQUET_ROWS_PER_GROUP)
            written += table.nbytes
    finally:
        if writer is not None:
            writer.close()
    final = []
    for index, shard in enumerate(shards):  # the hub's naming: <split>-<index>-of-<count>.parquet
        name = os.path.join(output_dir, "data", f"{split}-{index:05d}-of-{len(shards):05d}.parquet")
        os.replace(shard, name)
        final.append(name)
    return final


def export_to_parquet(dataset: Union[datasets.Dataset, datasets.DatasetDict], output_dir: str,
                      name: Optional[str] = None, data_root: Optional[str] = None, card=None,
                      max_shard_size: int = 500 * 2**20, frames_fps: float = 25) -> str:
    """Write ``dataset`` (a ``DatasetDict``, or one ``Dataset`` written as ``train``) to ``output_dir`` as
    ``data/<split>-NNNNN-of-NNNNN.parquet`` with media bytes embedded, and a ``README.md`` dataset card whose
    ``configs`` block maps the splits to their files. Returns ``output_dir``.

    Args:
        name: registered dataset name, to pick its card (``emotions``, ``sample``; a short card otherwise).
        data_root: folder the stored media paths are made relative to; defaults to the common folder of all media.
        card: a ``huggingface_hub.DatasetCard`` to use instead of the registered one.
        max_shard_size: bytes of embedded data per Parquet file before a new one starts.
        frames_fps: frame rate written into packed frames folders.
    """
    parts = dict(dataset) if isinstance(dataset, datasets.DatasetDict) else {"train": dataset}
    first = next(iter(parts.values()))
    if "video" not in first.column_names:
        raise ValueError(f"export: the dataset has no 'video' column (columns: {first.column_names})")
    root = os.path.abspath(data_root) if data_root else _media_root(parts)
    os.makedirs(os.path.join(output_dir, "data"), exist_ok=True)
    features = export_features(first.features)
    for split, part in parts.items():
        _write_split(part, split, output_dir, root, features, max_shard_size, frames_fps)
    label_names = first.features["label"].names if "label" in first.features else []
    card = card or card_for(name or "dataset", label_names)
    card.data.configs = [{"config_name": "default",
                          "data_files": [{"split": split, "path": f"data/{split}-*"} for split in parts]}]
    card.save(os.path.join(output_dir, "README.md"))
    return output_dir


def push_to_hub(folder: str, repo_id: str, token: Optional[str] = None, private: Optional[bool] = None,
                commit_message: str = "Upload dataset exported with datasets_emotions", api=None):
    """Create the dataset repo ``repo_id`` if needed and upload ``folder`` (an export) to it with
    ``huggingface_hub``. Returns the commit info."""
    from huggingface_hub import HfApi

    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    return api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset",
                             commit_message=commit_message)


def main(argv: Optional[list] = None) -> None:
    import argparse

    from .load import load_dataset
    from .registry import BUILDERS

    parser = argparse.ArgumentParser(description="Export a dataset as Parquet with embedded media and a card.")
    parser.add_argument("name", choices=sorted(BUILDERS))
    parser.add_argument("--output", required=True, help="folder to write (data/*.parquet + README.md)")
    parser.add_argument("--config", default=None, help="config name, e.g. balanced, sentiment")
    # both spellings of every option: `--data_dir` as in train_hf.py (HfArgumentParser), `--data-dir` as in CLIs
    parser.add_argument("--data_dir", "--data-dir", dest="data_dir", default=None)
    parser.add_argument("--cache_dir", "--cache-dir", dest="cache_dir", default=None)
    parser.add_argument("--num_proc", "--num-proc", dest="num_proc", type=int, default=None,
                        help="processes used to prepare the dataset")
    parser.add_argument("--data_root", "--data-root", dest="data_root", default=None,
                        help="make media paths relative to this folder")
    parser.add_argument("--push_to_hub", "--push-to-hub", dest="push_to_hub", default=None, metavar="REPO_ID",
                        help="upload the export to this repo")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", default=None)
    args = parser.parse_args(argv)
    dataset = load_dataset(args.name, args.config, data_dir=args.data_dir, cache_dir=args.cache_dir,
                           num_proc=args.num_proc)
    folder = export_to_parquet(dataset, args.output, name=args.name, data_root=args.data_root)
    print(f"wrote {folder}")
    if args.push_to_hub:
        info = push_to_hub(folder, args.push_to_hub, token=args.token, private=args.private or None)
        print(f"pushed to {args.push_to_hub}: {getattr(info, 'commit_url', info)}")


if __name__ == "__main__":
    main()
