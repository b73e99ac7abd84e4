"""Command-line arguments of `train_hf.py`: `ModelArguments`, `DataArguments` (next to transformers'
`TrainingArguments`), their parsing from the command line and/or a YAML/JSON file, and the small value parsers the
options share ('a,b,c', 'k=v,...', JSON or a YAML mapping)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from transformers import HfArgumentParser, TrainingArguments


BRANCHES = ("fusion", "visual", "audio")
MODEL_TYPES = ("avcpnet", "mer2023")


@dataclass
class ModelArguments:
    """Which model to build or load, and the loss settings."""

    model_type: str = field(
        default="avcpnet",
        metadata={"help": "avcpnet (AV-CPNet on raw clips) or mer2023 (the MER 2023 system on cached deep features "
                          "of --audio_backbone/--vision_backbone)."},
    )
    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "Checkpoint to start from (local folder or Hub id). Without it a fresh model is built "
                          "from --config_preset and the overrides."},
    )
    config_preset: str = field(
        default="default",
        metadata={"help": "Fresh-model preset: 'default' (the paper's AV-CPNet) or 'tiny' (AVCPNetConfig.tiny())."},
    )
    config_overrides: Optional[str] = field(
        default=None,
        metadata={"help": "Config fields to override, as JSON ('{\"embed_dim\": 32}') or a mapping in a YAML file."},
    )
    fusion_type: Optional[str] = field(
        default=None, metadata={"help": "sum | concat | ew_sum | ew_product | neural | gated (paper table 8)."}
    )
    modalities: Optional[str] = field(
        default=None, metadata={"help": "audio_visual | visual | audio (paper table 7)."}
    )
    use_cross_attention: Optional[bool] = field(
        default=None, metadata={"help": "Use the CAF cross-attention layer before the SF layer."}
    )
    ep_ce_gammas: Optional[str] = field(
        default=None,
        metadata={"help": "EP-CE gammas: 'pos,neu,neg' (e.g. '0.5,0.5,0.5'; '0,0,0' = plain CE) or a mapping."},
    )
    branch_loss_weights: Optional[str] = field(
        default=None, metadata={"help": "Loss weights 'fusion,visual,audio' (e.g. '1,1,1') or a mapping."}
    )
    label2polarity: Optional[str] = field(
        default=None,
        metadata={"help": "Override the polarity of labels, e.g. 'surprise=positive,anger=negative' or a mapping. "
                          "By default it is read from the dataset's `polarity` column."},
    )
    ignore_mismatched_sizes: bool = field(
        default=True,
        metadata={"help": "When the checkpoint's label set differs, re-initialise the classification heads."},
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow Hub code for --model_name_or_path."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    # ---- --model_type mer2023 ----
    audio_backbone: Optional[str] = field(
        default=None, metadata={"help": "mer2023: speech AutoModel (folder or Hub id, e.g. a HuBERT-large)."}
    )
    vision_backbone: Optional[str] = field(
        default=None, metadata={"help": "mer2023: image AutoModel (folder or Hub id) for frame-level features."}
    )
    audio_layers: Optional[str] = field(
        default=None,
        metadata={"help": "mer2023: hidden-state layers of the audio backbone, e.g. '18,19,20' (HuBERT-large, the "
                          "paper). Default: three layers three quarters of the way up the backbone in use."},
    )
    num_frames: int = field(default=8, metadata={"help": "mer2023: frames per clip for the visual features."})
    fusion_structure: str = field(
        default="parallel", metadata={"help": "mer2023: parallel | audio_visual_pairs | intra_then_inter."}
    )
    decoder_type: str = field(default="jdev", metadata={"help": "mer2023: jdev | baseline."})
    hub_license: str = field(default="apache-2.0", metadata={"help": "License written into the model card."})


@dataclass
class DataArguments:
    """Which dataset and splits to use."""

    dataset_name: str = field(
        default="sample",
        metadata={"help": "emotions | caer | meld | ekman6 | videoemotion8 | mer2023 | sample "
                          "(built by datasets_emotions.load_dataset)."},
    )
    dataset_config: Optional[str] = field(default=None, metadata={"help": "Dataset config, e.g. 'balanced'."})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Folder of the downloaded dataset."})
    dataset_cache_dir: Optional[str] = field(default=None, metadata={"help": "datasets cache directory."})
    dataset_kwargs: Optional[str] = field(
        default=None,
        metadata={"help": "Builder config fields (JSON or mapping), e.g. '{\"label2polarity\": {\"surprise\": "
                          "\"negative\"}}' or the sample set's size '{\"clips_per_class_train\": 8}'."},
    )
    train_split: str = field(default="train")
    eval_split: str = field(default="validation")
    test_split: str = field(default="test")
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Keep the first N training samples."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Keep the first N evaluation samples."})
    max_predict_samples: Optional[int] = field(default=None, metadata={"help": "Keep the first N test samples."})
    processor_overrides: Optional[str] = field(
        default=None, metadata={"help": "Processor options (JSON or mapping) passed to AVCPNetProcessor."}
    )
    media_cache_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Re-encode every clip once at the model's frame size into this folder (lossless RGB, "
                          "keyframe every snippet; audio copied) and read the copies while training and evaluating: the "
                          "input pipeline for GPUs (modeling_avcpnet/training/media_cache.py)."},
    )
    media_cache_num_proc: Optional[int] = field(
        default=None, metadata={"help": "Processes preparing the media cache (default: all cores)."}
    )


def known_options(parser) -> set[str]:
    return {action.dest for action in parser._actions}


def _did_you_mean(unknown: list[str], known: set[str]) -> str:
    """The fix for unknown option names: the closest known names, and where every option is listed."""
    import difflib

    close = [f"{name} -> {match[0]}" for name in unknown
             if (match := difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75))]
    return f" (did you mean {', '.join(close)}?; `train_hf.py --help` lists every option)" if close else (
        "; `train_hf.py --help` lists every option")


def parse_arguments(argv: Optional[list[str]] = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """Parse from the command line, a YAML/JSON file, or a file followed by command-line overrides."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    if argv and argv[0].endswith((".yaml", ".yml", ".json")) and not argv[0].startswith("-"):
        path = Path(argv.pop(0))
        if not path.is_file():
            raise FileNotFoundError(f"argument file {path} does not exist")
        if path.suffix == ".json":
            values = json.loads(path.read_text())
        else:
            import yaml

            values = yaml.safe_load(path.read_text()) or {}
        known = known_options(parser)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown arguments {unknown}{_did_you_mean(unknown, known)}")
        # The file gives the defaults, the command line (if any) overrides them.
        parser.set_defaults(**values)
    model_args, data_args, training_args, rest = parser.parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True
    )
    if rest:
        options = [name.split("=")[0].lstrip("-") for name in rest if name.startswith("--")]
        raise ValueError(f"unknown command-line arguments: {rest}{_did_you_mean(options, known_options(parser))}")
    check_model_selection(data_args, training_args)
    return model_args, data_args, training_args


def check_model_selection(data_args: DataArguments, training_args: TrainingArguments) -> None:
    """Refuse to pick the best checkpoint on the split the run reports as its final test: that inflates the
    reported test numbers. Selection (`--load_best_model_at_end`/`--metric_for_best_model`) must use another
    evaluation split (`--eval_split validation`)."""
    selects = training_args.load_best_model_at_end or training_args.metric_for_best_model is not None
    if selects and training_args.do_train and data_args.eval_split == data_args.test_split:
        raise ValueError(
            f"--metric_for_best_model {training_args.metric_for_best_model} would select the best checkpoint on split "
            f"{data_args.eval_split!r}, which is also the final test split (--test_split {data_args.test_split}): "
            f"select on a validation split (--eval_split validation) or drop --load_best_model_at_end/"
            f"--metric_for_best_model")


def adapt_training_arguments(training_args: TrainingArguments) -> None:
    """Settings this recipe needs, and quiet defaults for warnings that say nothing about the run."""
    # The examples are made on the fly from the `video`/`audio` columns by a transform: keep them.
    training_args.remove_unused_columns = False
    if training_args.dataloader_pin_memory and training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # nothing to pin for: avoids torch's warning on every run
    if training_args.ddp_find_unused_parameters is None:
        # Every parameter of the built model takes part in the loss (modules a config leaves out are not built),
        # so DDP need not search the graph (and warn that it found nothing) on every step.
        training_args.ddp_find_unused_parameters = False


def as_float_mapping(value: Any, keys: tuple[str, ...], name: str) -> Optional[dict[str, float]]:
    """'a,b,c' (in `keys` order), 'k=v,...', JSON or a mapping -> {key: float}."""
    if value is None or isinstance(value, dict):
        return None if value is None else {str(k): float(v) for k, v in value.items()}
    text = str(value).strip()
    if text.startswith("{"):
        return {str(k): float(v) for k, v in json.loads(text).items()}
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if all("=" in part for part in parts):
        return {k.strip(): float(v) for k, v in (part.split("=", 1) for part in parts)}
    if len(parts) != len(keys):
        raise ValueError(f"--{name} needs {len(keys)} comma-separated values ({', '.join(keys)}), got {value!r}")
    return dict(zip(keys, map(float, parts)))


def as_str_mapping(value: Any, name: str) -> Optional[dict[str, Any]]:
    if value is None or isinstance(value, dict):
        return value
    text = str(value).strip()
    if text.startswith("{"):
        return json.loads(text)
    try:
        return {k.strip(): v.strip() for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    except ValueError:
        raise ValueError(f"--{name} must be JSON or 'key=value,...', got {value!r}") from None


# Kept for the old private names.
_as_mapping, _as_str_mapping = as_float_mapping, as_str_mapping
