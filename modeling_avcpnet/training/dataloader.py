"""The Trainer's DataLoader parts for models that read raw clips: exact-resume augmentation and bad-clip skipping.

- [`SeededAugmentation`] + [`EpochKeySampler`]: every training example's random sampling and augmentation is a
  function of `(seed, epoch, index)` (`datasets_emotions.transforms.example_generator`), so that a run interrupted
  and resumed from a checkpoint sees exactly the examples of an uninterrupted one, with any number of DataLoader
  workers, persistent or not;
- [`collate_skipping_bad_clips`]: rows whose clip failed to decode (`BatchTransform(skip_bad_files=True)`) are left
  out of the batch and listed in `skipped_clips`, which `EPCETrainer` logs once per file and counts.
"""

from __future__ import annotations

from typing import Callable

import datasets
import torch
from torch.utils.data import default_collate

from datasets_emotions.transforms import BatchTransform


def collate_skipping_bad_clips(rows: list[dict]) -> dict:
    """DataLoader collate function for rows of a ``BatchTransform(skip_bad_files=True)``: stacks the rows that
    decoded, and lists the error messages of the others under ``skipped_clips`` (a trainer reports and removes it
    before the model call). A batch in which every clip failed has ``labels`` of size 0 and no model inputs. An
    ``audio_mask`` that is all True is left out (None: every clip has audio)."""
    skipped = [row["decode_error"] for row in rows if row.get("decode_error")]
    good = [row for row in rows if not row.get("decode_error")]
    batch: dict = {}
    if good:
        for key in good[0]:
            if key == "decode_error":
                continue
            values = [row[key] for row in good]
            # default_collate stacks a worker's tensors straight into shared memory (no copy when sent to the
            # main process: 19 MB of pixels per clip)
            batch[key] = default_collate(values) if isinstance(values[0], torch.Tensor) else torch.as_tensor(values)
    else:
        batch["labels"] = torch.zeros(0, dtype=torch.long)
    if "audio_mask" in batch and bool(batch["audio_mask"].all()):
        # None means "every clip has audio" to the model and the loss; decided here on the host, so that the audio
        # branch runs plain batch norm rather than its masked statistics (see AVCPNetModel._encode_audio).
        del batch["audio_mask"]
    batch["skipped_clips"] = skipped
    return batch


class SeededAugmentation(torch.utils.data.Dataset):
    """Training examples whose random sampling and augmentation are a function of ``(seed, epoch, index)`` only,
    so that a run interrupted and resumed from a checkpoint sees exactly the examples of an uninterrupted one, with
    any number of DataLoader workers (persistent or not).

    The epoch reaches the workers through the keys: [`EpochKeySampler`] yields ``epoch * len(self) + index``
    (a plain sampler's keys ``0 .. len - 1`` all read as epoch 0). Rows come out as from
    ``BatchTransform(skip_bad_files=True)``; batch them with [`collate_skipping_bad_clips`].
    """

    def __init__(self, dataset: datasets.Dataset, processor: Callable, seed: int, **processor_kwargs):
        if "mfcc" in dataset.column_names:  # the media cache's MFCC: as arrays (python lists cost 10x more)
            self.dataset = dataset.with_format("numpy", columns=["mfcc"], output_all_columns=True)
        else:
            self.dataset = dataset.with_format(None)
        self.transform = BatchTransform(processor, training=True, skip_bad_files=True, seed=seed,
                                        **processor_kwargs)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys: list[int]) -> list[dict]:
        return [self[key] for key in keys]

    def __getitem__(self, key: int) -> dict:
        size = len(self.dataset)
        epoch, index = int(key) // size, int(key) % size
        # One example at a time: its tensors are the processor's own (no batch to stack here and split again;
        # the collator stacks the batch once)
        example = self.transform(self.dataset[[index]], example_keys=[(epoch, index)])
        return {name: values[0] for name, values in example.items()}


class EpochKeySampler(torch.utils.data.Sampler):
    """A random order of ``range(size)`` drawn from ``seed + epoch`` (like accelerate's seedable sampler), yielded
    as keys ``epoch * size + index`` for [`SeededAugmentation`]. The Trainer calls ``set_epoch`` before each
    epoch (also the resumed one)."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        offset = self.epoch * self.size
        return iter((torch.randperm(self.size, generator=generator) + offset).tolist())


__all__ = ["EpochKeySampler", "SeededAugmentation", "collate_skipping_bad_clips"]
