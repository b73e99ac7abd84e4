"""Data side of `train_hf.py`: load the dataset's splits, read its label and polarity maps, and (MER 2023) turn the
splits into cached deep-feature columns."""

from __future__ import annotations

import logging

from transformers import TrainingArguments

from .arguments import DataArguments, ModelArguments, as_str_mapping

logger = logging.getLogger(__name__)


def load_splits(data_args: DataArguments, training_args: TrainingArguments):
    """The `DatasetDict` and the splits this run needs ({split name: Dataset}, trimmed to --max_*_samples)."""
    from datasets_emotions import load_dataset

    dataset = load_dataset(data_args.dataset_name, data_args.dataset_config, data_dir=data_args.data_dir,
                           cache_dir=data_args.dataset_cache_dir,
                           **(as_str_mapping(data_args.dataset_kwargs, "dataset_kwargs") or {}))
    wanted = {}
    for flag, split, limit in (
        (training_args.do_train, data_args.train_split, data_args.max_train_samples),
        (training_args.do_eval or training_args.eval_strategy != "no", data_args.eval_split,
         data_args.max_eval_samples),
        (training_args.do_predict, data_args.test_split, data_args.max_predict_samples),
    ):
        if not flag:
            continue
        if split not in dataset:
            raise ValueError(f"dataset {data_args.dataset_name!r} has no split {split!r} (it has "
                             f"{sorted(dataset)}); choose one with --train_split/--eval_split/--test_split")
        part = dataset[split]
        if limit is not None:
            part = part.select(range(min(limit, len(part))))
        wanted[split] = part
    if not wanted:
        raise ValueError("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    return dataset, wanted


def dataset_label_maps(dataset) -> tuple[dict[int, str], dict[str, str]]:
    """id2label from the `label` ClassLabel, label2polarity from the `polarity` column (majority per label)."""
    label_feature = dataset.features["label"]
    id2label = dict(enumerate(label_feature.names))
    label2polarity = {}
    if "polarity" in dataset.column_names:
        polarity_feature = dataset.features["polarity"]
        columns = dataset.select_columns(["label", "polarity"]).with_format(None)
        counts: dict[str, dict[str, int]] = {}
        for label, polarity in zip(columns["label"], columns["polarity"]):
            name = polarity_feature.int2str(polarity) if hasattr(polarity_feature, "int2str") else polarity
            counts.setdefault(id2label[label], {}).setdefault(name, 0)
            counts[id2label[label]][name] += 1
        for label, by_polarity in counts.items():
            label2polarity[label] = max(by_polarity, key=by_polarity.get)
            if len(by_polarity) > 1:
                logger.warning("label %s has several polarities in the data %s; using %s", label, by_polarity,
                               label2polarity[label])
    return id2label, label2polarity


def mer2023_feature_splits(model_args: ModelArguments, data_args: DataArguments, splits: dict):
    """MER 2023: the deep features of every split (computed once with `datasets.map`, then read from the cache), as
    columns `input_features`, `labels`, `valence_labels`; and the extractor (its `config_kwargs()` is the layout)."""
    from ..feature_extraction_mer2023 import MER2023DeepFeatureExtractor

    if not (model_args.audio_backbone or model_args.vision_backbone):
        raise ValueError("--model_type mer2023 needs --audio_backbone and/or --vision_backbone (folders or Hub ids "
                         "of AutoModel backbones)")
    layers = None  # default: fits the backbone's depth
    if model_args.audio_layers is not None:
        layers = [int(layer) for layer in str(model_args.audio_layers).split(",") if layer.strip()]
    extractor = MER2023DeepFeatureExtractor.from_pretrained(
        model_args.audio_backbone, model_args.vision_backbone, audio_layers=layers, num_frames=model_args.num_frames)
    features = {}
    for name, split in splits.items():
        if "valence" not in split.column_names:
            raise ValueError(f"--model_type mer2023 needs a `valence` column; split {name!r} of "
                             f"{data_args.dataset_name!r} has {split.column_names}")
        mapped = extractor.map_dataset(split, cache_dir=data_args.dataset_cache_dir)
        features[name] = mapped.rename_columns({"label": "labels", "valence": "valence_labels"}).select_columns(
            ["input_features", "labels", "valence_labels"])
    return extractor, features
