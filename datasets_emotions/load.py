"""``load_dataset`` / ``load_dataset_builder`` for the registered builders, mirroring ``datasets.load_dataset``."""

from __future__ import annotations

import os
import warnings
from typing import Optional, Union

import datasets
from datasets import DownloadMode, VerificationMode

from .builder_base import SKIPPED_NOTE, SkippedExamplesWarning, builder_hash
from .registry import BUILDERS, get_builder_class


def load_dataset_builder(name: str, config_name: Optional[str] = None, data_dir: Optional[str] = None,
                         cache_dir: Optional[str] = None, **config_kwargs) -> datasets.DatasetBuilder:
    """Instantiate the builder registered as ``name`` with its config, ``data_dir`` and cache ``hash``.

    Unknown dataset or config names raise a ``ValueError`` listing the valid ones. The hash ties the cache folder
    to the package version, the builder's source and the contents of ``data_dir``
    (see ``builder_base.builder_hash``).
    """
    builder_cls = get_builder_class(name)
    if config_name is not None and builder_cls.BUILDER_CONFIGS:
        valid = [config.name for config in builder_cls.BUILDER_CONFIGS]
        if config_name not in valid:
            raise ValueError(f"Unknown config {config_name!r} for dataset {name!r}. Valid configs: {', '.join(valid)}.")
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(str(data_dir)))
    builder = builder_cls(
        config_name=config_name,
        data_dir=data_dir,
        cache_dir=cache_dir,
        hash=builder_hash(builder_cls, data_dir),
        **config_kwargs,
    )
    if builder.NEEDS_DATA_DIR:
        builder.checked_data_dir()  # fail early, with the expected layout, before any cache folder is written
    return builder


def load_dataset(
    name: str,
    config_name: Optional[str] = None,
    data_dir: Optional[str] = None,
    split: Optional[Union[str, datasets.Split, list]] = None,
    streaming: bool = False,
    cache_dir: Optional[str] = None,
    num_proc: Optional[int] = None,
    download_mode: Optional[Union[DownloadMode, str]] = None,
    verification_mode: Optional[Union[VerificationMode, str]] = None,
    keep_in_memory: Optional[bool] = None,
    **config_kwargs,
):
    """Load one of the datasets in ``registry.BUILDERS`` (``emotions``, ``caer``, ``meld``, ``ekman6``,
    ``videoemotion8``, ``sample``).

    Returns what ``datasets.load_dataset`` returns: a ``DatasetDict`` (``split=None``), a ``Dataset`` (one split),
    or with ``streaming=True`` an ``IterableDatasetDict`` / ``IterableDataset``. ``num_proc`` prepares the splits
    in that many processes. Extra keyword arguments set fields of the builder config (e.g.
    ``label2polarity={"surprise": "negative"}``, or the sample set's ``seed``).

    Example:

    ```python
    >>> from datasets_emotions import load_dataset
    >>> ds = load_dataset("emotions", data_dir="/data/eMotions")
    >>> ds["train"][0]["video"], ds["train"].features["label"].names
    ```
    """
    if streaming and num_proc is not None:
        raise NotImplementedError("num_proc prepares a dataset on disk; it has no meaning with streaming=True.")
    builder = load_dataset_builder(name, config_name=config_name, data_dir=data_dir, cache_dir=cache_dir,
                                   **config_kwargs)
    if streaming:
        return builder.as_streaming_dataset(split=split)
    download_mode = DownloadMode(download_mode or DownloadMode.REUSE_DATASET_IF_EXISTS)
    reused = os.path.isdir(builder.cache_dir) and download_mode == DownloadMode.REUSE_DATASET_IF_EXISTS
    builder.download_and_prepare(
        download_mode=download_mode,
        verification_mode=VerificationMode(verification_mode or VerificationMode.BASIC_CHECKS),
        num_proc=num_proc,
    )
    if reused:  # nothing was prepared now, so nothing warned: repeat what the preparation reported
        rewarn_skipped(builder.info.description)
    check_split(builder, split)
    return builder.as_dataset(split=split, in_memory=bool(keep_in_memory))


def rewarn_skipped(description: Optional[str]) -> None:
    """On a warm cache, repeat the warnings about skipped examples that the preparation kept in the description."""
    for note in (description or "").split(SKIPPED_NOTE)[1:]:
        warnings.warn(f"{note.strip()} (when this cached copy was prepared)", SkippedExamplesWarning, stacklevel=3)


def check_split(builder: datasets.DatasetBuilder, split) -> None:
    """A requested split the dataset does not have is an error that lists the ones it has (never datasets'
    "corresponds to no data")."""
    if split is None or builder.info.splits is None:
        return
    available = list(builder.info.splits)
    for part in (split if isinstance(split, (list, tuple)) else [split]):
        for name in str(part).split("+"):
            name = name.split("[")[0].strip()
            if name and name != "all" and name not in available:
                raise ValueError(f"{builder.name} has the splits {available}, not {name!r}; cut a validation split "
                                 f"from train with Dataset.train_test_split if the release has none.")


__all__ = ["load_dataset", "load_dataset_builder", "BUILDERS"]
