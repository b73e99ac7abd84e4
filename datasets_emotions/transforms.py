"""Attach a processor to a dataset so that its examples come out as model inputs."""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from typing import Callable, Optional, Union

import datasets

MODEL_INPUT_KEYS = ("pixel_values_videos", "input_features", "audio_mask")


def _media(entry):
    """A path, or the ``{"bytes", "path"}`` dict of an exported (Parquet) copy -> what the processor reads."""
    if isinstance(entry, dict):
        return entry.get("bytes") or entry.get("path") or None
    return entry or None


def example_generator(seed: int, epoch: int, index: int):
    """A `torch.Generator` that depends on `(seed, epoch, index)` only: the random snippet offsets, crops and
    augmentation of one training example, whatever process, DataLoader worker or resumed run draws it."""
    import torch  # here, not at module level: importing datasets_emotions must not load torch

    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


class BatchTransform:
    """A batch of dataset rows (dict of lists with ``video``, ``audio``, ``label``) -> model inputs:
    ``pixel_values_videos`` (B, S, F, 3, H, W), ``input_features`` (B, A, T, n_mfcc), ``audio_mask`` (B,) and
    ``labels`` (B,) long. An empty ``audio`` entry means "take the soundtrack from the video file". Entries may also
    be ``{"bytes", "path"}`` dicts, as in an export loaded back with plain ``datasets.load_dataset``. An ``mfcc``
    column (the training media cache's, see ``modeling_avcpnet.training.media_cache``) goes to the processor as its
    precomputed soundtrack MFCC.

    ``skip_bad_files=True``: a clip that cannot be decoded does not raise; its row stays in the output (so that a
    dataset's rows keep their positions) with zero model inputs and its error message in ``decode_error`` (empty
    for good rows); ``modeling_avcpnet.training.dataloader.collate_skipping_bad_clips`` then leaves such rows out of
    the batch.

    Called with ``example_keys`` (one ``(epoch, index)`` per row) and ``seed``, each training example draws its
    randomness from [`example_generator`]: the same example in the same epoch always gets the same crop.

    A class rather than a closure so that it pickles (DataLoader workers started with ``spawn``).
    """

    def __init__(self, processor: Callable, training: bool, skip_bad_files: bool = False, seed: int = 0,
                 **processor_kwargs):
        self.processor, self.training, self.processor_kwargs = processor, training, processor_kwargs
        self.skip_bad_files, self.seed = skip_bad_files, seed
        self._warned_missing_audio = False

    def _process(self, videos: list, audio: Optional[list], generator=None,
                 mfcc: Optional[list] = None) -> tuple[list[Optional[dict]], dict]:
        """Per-row model inputs (None for a row that failed) and {row: error message}."""
        precomputed = {"mfcc": mfcc} if mfcc is not None else {}  # a media cache's column (see BatchTransform)
        with self._one_missing_audio_warning():
            features = self.processor(videos=videos, audio=audio, training=self.training, return_tensors="pt",
                                      skip_bad_files=self.skip_bad_files, generator=generator,
                                      **precomputed, **self.processor_kwargs)
        kept = getattr(features, "kept_indices", None)
        kept = list(range(len(videos))) if kept is None else kept
        rows: list[Optional[dict]] = [None] * len(videos)
        for position, index in enumerate(kept):
            rows[index] = {key: features[key][position] for key in MODEL_INPUT_KEYS if key in features}
        return rows, dict(getattr(features, "errors", None) or {})

    @contextlib.contextmanager
    def _one_missing_audio_warning(self):
        """Show the first `MissingAudioWarning` of this transform (per process: each DataLoader worker has its
        copy), with a note, and drop the rest: a dataset without sound (CAER-S images, silent clips) would otherwise
        warn once per file, thousands of times. The rows still carry `audio_mask` False. Done in the display hook,
        after the filters: other warnings, and the caller's filters, are left as they are (`catch_warnings` would
        reset Python's once-per-location memory on every batch)."""
        from modeling_avcpnet.media_avcpnet import MissingAudioWarning  # light: numpy + PyAV

        show = warnings.showwarning

        def show_first_missing_audio(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, MissingAudioWarning):
                if self._warned_missing_audio:
                    return
                self._warned_missing_audio = True
                message = MissingAudioWarning(f"{message} [further examples without audio in this dataset are not "
                                              "reported one by one]")
            show(message, category, filename, lineno, file, line)

        warnings.showwarning = show_first_missing_audio
        try:
            yield
        finally:
            warnings.showwarning = show

    def __call__(self, batch: dict, example_keys: Optional[list[tuple[int, int]]] = None) -> dict:
        import torch  # here, not at module level: importing datasets_emotions must not load torch

        videos = [_media(entry) for entry in batch["video"]]
        audio = [_media(entry) for entry in batch.get("audio") or [None] * len(videos)]
        audio = audio if any(entry is not None for entry in audio) else None
        # The training media cache's precomputed soundtrack MFCC (empty where the processor decodes as usual).
        mfcc = list(batch["mfcc"]) if "mfcc" in batch else None
        if example_keys is not None and self.training:
            rows, errors = [], {}
            for position, (epoch, index) in enumerate(example_keys):
                row, error = self._process([videos[position]], None if audio is None else [audio[position]],
                                           example_generator(self.seed, epoch, index),
                                           None if mfcc is None else [mfcc[position]])
                rows += row
                errors.update({position: message for message in error.values()})
        else:
            rows, errors = self._process(videos, audio, mfcc=mfcc)
        good = [row for row in rows if row is not None]
        outputs = {}
        for key in (good[0] if good else {}):
            if len(rows) == 1:  # one example (a training worker's): its tensor as it is, no copy
                outputs[key] = rows[0][key].unsqueeze(0)
                continue
            template = torch.zeros_like(good[0][key])
            outputs[key] = torch.stack([template if row is None else row[key] for row in rows])
        if self.skip_bad_files:
            # Every clip failed: the rows have no model inputs, only this (the collator drops them all).
            outputs["decode_error"] = [errors.get(position, "") for position in range(len(rows))]
        if "label" in batch:
            outputs["labels"] = torch.as_tensor(batch["label"], dtype=torch.long)
        return outputs


def make_batch_transform(processor: Callable, training: bool, **processor_kwargs) -> BatchTransform:
    return BatchTransform(processor, training, **processor_kwargs)


def with_processor(dataset: Union[datasets.Dataset, datasets.IterableDataset, datasets.DatasetDict,
                                  datasets.IterableDatasetDict],
                   processor: Callable, training: bool, batch_size: int = 8, **processor_kwargs):
    """Return ``dataset`` whose examples are model inputs plus ``labels``.

    A ``Dataset`` gets ``with_transform`` (the processor runs lazily on each accessed batch: ``ds[i]``, ``ds[i:j]``
    and the DataLoader's ``__getitems__`` call it once per batch, so ``training=True`` draws new random crops
    every epoch); an ``IterableDataset`` gets a lazy batched ``map`` of ``batch_size`` rows that drops the original
    columns. Dataset dicts are handled split by split. ``skip_bad_files=True`` keeps undecodable clips as rows
    marked in ``decode_error`` (see [`BatchTransform`]); other keyword arguments go to the processor call.
    """
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return type(dataset)({split: with_processor(part, processor, training, batch_size, **processor_kwargs)
                              for split, part in dataset.items()})
    transform = make_batch_transform(processor, training, **processor_kwargs)
    if isinstance(dataset, datasets.IterableDataset):
        columns = list(dataset.column_names or dataset.features or [])
        return dataset.map(transform, batched=True, batch_size=batch_size, remove_columns=columns or None)
    if isinstance(dataset, datasets.Dataset):
        return dataset.with_transform(transform)
    raise TypeError(f"with_processor expects a datasets Dataset or IterableDataset, got {type(dataset).__name__}")
