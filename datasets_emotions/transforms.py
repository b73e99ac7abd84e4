"""Attach a processor to a dataset so that its examples come out as model inputs."""

from __future__ import annotations

from typing import Callable, Union

import datasets

MODEL_INPUT_KEYS = ("pixel_values_videos", "input_features", "audio_mask")


def _media(entry):
    """A path, or the ``{"bytes", "path"}`` dict of an exported (Parquet) copy -> what the processor reads."""
    if isinstance(entry, dict):
        return entry.get("bytes") or entry.get("path") or None
    return entry or None


class BatchTransform:
    """A batch of dataset rows (dict of lists with ``video``, ``audio``, ``label``) -> model inputs:
    ``pixel_values_videos`` (B, S, F, 3, H, W), ``input_features`` (B, A, T, n_mfcc), ``audio_mask`` (B,) and
    ``labels`` (B,) long. An empty ``audio`` entry means "take the soundtrack from the video file". Entries may also
    be ``{"bytes", "path"}`` dicts, as in an export loaded back with plain ``datasets.load_dataset``.

    A class rather than a closure so that it pickles (DataLoader workers started with ``spawn``).
    """

    def __init__(self, processor: Callable, training: bool, **processor_kwargs):
        self.processor, self.training, self.processor_kwargs = processor, training, processor_kwargs

    def __call__(self, batch: dict) -> dict:
        videos = [_media(entry) for entry in batch["video"]]
        audio = [_media(entry) for entry in batch.get("audio") or [None] * len(videos)]
        audio = audio if any(entry is not None for entry in audio) else None
        features = self.processor(videos=videos, audio=audio, training=self.training, return_tensors="pt",
                                  **self.processor_kwargs)
        outputs = {key: features[key] for key in MODEL_INPUT_KEYS if key in features}
        if "label" in batch:
            import torch  # here, not at module level: importing datasets_emotions must not load torch

            labels = torch.as_tensor(batch["label"], dtype=torch.long)
            kept = getattr(features, "kept_indices", None)  # set by the processor; skip_bad_files drops rows
            outputs["labels"] = labels[torch.as_tensor(kept, dtype=torch.long)] if kept is not None else labels
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
    columns. Dataset dicts are handled split by split. Extra keyword arguments go to the processor call.
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
