#!/usr/bin/env python
"""Train, evaluate and publish AV-CPNet with the Hugging Face `Trainer`.

One script for every scale: a laptop (`python train_hf.py configs/sample.yaml`), several CPU processes
(`torchrun --nproc_per_node 2 train_hf.py ... --use_cpu`), GPUs and nodes (`accelerate launch --config_file
configs/accelerate_multi_gpu.yaml train_hf.py ...`). Arguments come from the command line, from a YAML/JSON file,
or from a file followed by command-line overrides (`train_hf.py configs/sample.yaml --output_dir runs/x`).

What it adds to the stock `Trainer` (`EPCETrainer`):
- the loss is the paper's multi-task EP-CE (`modeling_avcpnet.loss_avcpnet.compute_multitask_loss`, the very
  function the model's own forward uses), normalised by the number of samples of the whole accumulated batch so
  that gradient accumulation and uneven last micro-batches give the gradients of one big batch;
- each branch's loss (fusion, visual, audio) is logged next to the total;
- evaluation reports accuracy, weighted F1 (the paper's WA-F1), macro F1, unweighted average recall (UAR) and the
  accuracy of each branch, and writes a confusion matrix (PNG + JSON) and a per-class report;
- fine-tuning on another label set re-initialises the heads and takes the new dataset's polarity map;
- `--push_to_hub` uploads model, processor, custom code and a model card whose `model-index` holds the results.

`--model_type mer2023` trains the second seed system instead (`MER2023ForEmotionValence`, the MER 2023 hierarchical
audio-visual fusion with joint emotion/valence decoding) on deep features of `--audio_backbone`/`--vision_backbone`
computed once with `datasets.map` and cached; its loss (eq. 9, or CE + MSE) is the model's own, taken in the same
`compute_loss`, and evaluation reports the challenge metric `weighted_F1 - 0.25 * valence MSE`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import transformers
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

logger = logging.getLogger("train_hf")

BRANCHES = ("fusion", "visual", "audio")
MER2023_LOSS_TERMS = ("emotion", "valence")  # logged next to the MER 2023 total loss
MODEL_TYPES = ("avcpnet", "mer2023")
POLARITIES = ("positive", "neutral", "negative")
HUB_CARD_TEMPLATE = Path(__file__).resolve().parent / "hub_cards" / "model_card_template.md"


# --------------------------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------------------------


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
        default=None, metadata={"help": "sum | concat | ew_sum | neural | gated (paper table 8)."}
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
    audio_layers: str = field(
        default="18,19,20", metadata={"help": "mer2023: hidden-state layers of the audio backbone, e.g. '18,19,20'."}
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
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown arguments {unknown}")
        # The file gives the defaults, the command line (if any) overrides them.
        parser.set_defaults(**values)
    model_args, data_args, training_args, rest = parser.parse_args_into_dataclasses(
        args=argv, return_remaining_strings=True
    )
    if rest:
        raise ValueError(f"unknown command-line arguments: {rest}")
    return model_args, data_args, training_args


def _as_mapping(value: Any, keys: tuple[str, ...], name: str) -> Optional[dict[str, float]]:
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


def _as_str_mapping(value: Any, name: str) -> Optional[dict[str, Any]]:
    if value is None or isinstance(value, dict):
        return value
    text = str(value).strip()
    if text.startswith("{"):
        return json.loads(text)
    try:
        return {k.strip(): v.strip() for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    except ValueError:
        raise ValueError(f"--{name} must be JSON or 'key=value,...', got {value!r}") from None


# --------------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------------

_EVALUATE_METRICS: Optional[dict] = None


def _load_evaluate_metrics() -> Optional[dict]:
    """The `evaluate` metrics, or None when their scripts cannot be loaded (offline, no local cache).

    `evaluate.load("accuracy")` fetches the metric script from the Hub the first time; with no Hub reachable we
    compute the very same quantities with scikit-learn (which those scripts wrap) under the same names.
    """
    global _EVALUATE_METRICS
    if _EVALUATE_METRICS is None:
        try:
            import evaluate

            _EVALUATE_METRICS = {name: evaluate.load(name) for name in ("accuracy", "f1", "recall")}
        except Exception as error:  # noqa: BLE001 - any failure means "not available here"
            logger.info("evaluate metrics unavailable (%s); computing them with scikit-learn", type(error).__name__)
            _EVALUATE_METRICS = {}
    return _EVALUATE_METRICS or None


def classification_metrics(predictions: np.ndarray, references: np.ndarray, num_labels: int) -> dict[str, float]:
    """accuracy, wa_f1 (weighted F1), macro_f1 and uar (macro recall) of label predictions."""
    labels = list(range(num_labels))
    metrics = _load_evaluate_metrics()
    if metrics is not None:
        return {
            "accuracy": metrics["accuracy"].compute(predictions=predictions, references=references)["accuracy"],
            "wa_f1": metrics["f1"].compute(predictions=predictions, references=references, average="weighted",
                                           labels=labels)["f1"],
            "macro_f1": metrics["f1"].compute(predictions=predictions, references=references, average="macro",
                                              labels=labels)["f1"],
            "uar": metrics["recall"].compute(predictions=predictions, references=references, average="macro",
                                             labels=labels, zero_division=0)["recall"],
        }
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "wa_f1": float(f1_score(references, predictions, average="weighted", labels=labels, zero_division=0)),
        "macro_f1": float(f1_score(references, predictions, average="macro", labels=labels, zero_division=0)),
        "uar": float(recall_score(references, predictions, average="macro", labels=labels, zero_division=0)),
    }


def _branch_logits(predictions) -> np.ndarray:
    """(N, 3, L) logits of fusion/visual/audio (NaN rows for a branch the model does not have)."""
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:  # a plain classifier: only the final logits
        predictions = np.stack([predictions] + [np.full_like(predictions, np.nan)] * 2, axis=1)
    return predictions


def final_predictions(branch_logits: np.ndarray) -> np.ndarray:
    """The model's prediction: the fused logits, or the only branch a single-modality model has."""
    for index in range(branch_logits.shape[1]):
        if not np.isnan(branch_logits[:, index]).any():
            return branch_logits[:, index].argmax(-1)
    raise ValueError("the evaluation produced no logits")


def compute_metrics_fn(num_labels: int):
    """A `compute_metrics` for the Trainer: overall metrics of the final logits plus each branch's accuracy."""

    def compute_metrics(eval_prediction) -> dict[str, float]:
        logits = _branch_logits(eval_prediction.predictions)
        references = np.asarray(eval_prediction.label_ids).reshape(-1)
        metrics = classification_metrics(final_predictions(logits), references, num_labels)
        for index, branch in enumerate(BRANCHES):
            if not np.isnan(logits[:, index]).any():
                metrics[f"{branch}_accuracy"] = float((logits[:, index].argmax(-1) == references).mean())
        return metrics

    return compute_metrics


def write_evaluation_report(output_dir: str, prefix: str, predictions, label_ids, id2label: dict) -> dict[str, str]:
    """Write `{prefix}_confusion_matrix.{png,json}` and `{prefix}_classification_report.{json,txt}`."""
    from sklearn.metrics import classification_report, confusion_matrix

    logits = _branch_logits(predictions)
    references = np.asarray(label_ids).reshape(-1)
    predicted = final_predictions(logits)
    names = [id2label[i] for i in range(len(id2label))]
    matrix = confusion_matrix(references, predicted, labels=list(range(len(names))))
    os.makedirs(output_dir, exist_ok=True)
    paths = {key: os.path.join(output_dir, f"{prefix}_{key}") for key in
             ("confusion_matrix.json", "confusion_matrix.png", "classification_report.json",
              "classification_report.txt")}
    with open(paths["confusion_matrix.json"], "w") as handle:
        json.dump({"labels": names, "matrix": matrix.tolist(), "rows": "true label", "columns": "predicted label"},
                  handle, indent=2)
    report_kwargs = dict(labels=list(range(len(names))), target_names=names, zero_division=0)
    with open(paths["classification_report.json"], "w") as handle:
        json.dump(classification_report(references, predicted, output_dict=True, **report_kwargs), handle, indent=2)
    with open(paths["classification_report.txt"], "w") as handle:
        handle.write(classification_report(references, predicted, digits=4, **report_kwargs))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1.0 + 0.8 * len(names), 1.0 + 0.7 * len(names)), dpi=100)
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{prefix} confusion matrix (accuracy {np.trace(matrix) / max(matrix.sum(), 1):.3f})")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > threshold else "black", fontsize=8)
    figure.tight_layout()
    figure.savefig(paths["confusion_matrix.png"])
    plt.close(figure)
    return paths


def write_mer2023_report(output_dir: str, prefix: str, predictions, label_ids, id2label: dict) -> dict[str, str]:
    """MER 2023: `{prefix}_mer2023_metrics.json` (emotion accuracy, weighted F1, valence MSE, the challenge metric)
    plus the confusion matrix and per-class report of the emotion logits."""
    from modeling_avcpnet.metrics_mer2023 import mer2023_metrics

    (logits, valence), (labels, valence_labels) = predictions[:2], label_ids
    paths = write_evaluation_report(output_dir, prefix, logits, labels, id2label)
    paths["mer2023_metrics.json"] = os.path.join(output_dir, f"{prefix}_mer2023_metrics.json")
    with open(paths["mer2023_metrics.json"], "w") as handle:
        json.dump({**mer2023_metrics(labels, logits, valence_labels, valence),
                   "combined_definition": "weighted_f1 - 0.25 * valence_mse", "num_samples": int(len(labels))},
                  handle, indent=2)
    return paths


# --------------------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------------------


class EPCETrainer(Trainer):
    """A `Trainer` whose loss is AV-CPNet's multi-task EP-CE loss, with per-branch logging and reports.

    The loss is computed here (the model is called without labels) by `compute_multitask_loss`, the function the
    model's own forward uses. Each branch's loss is a mean over its own samples (the audio and fusion losses skip
    clips without audio); to make gradient accumulation exact, every branch mean is turned back into a sum over the
    micro-batch and divided by that branch's sample count over the whole accumulated batch (all micro-batches, all
    processes), counted by `get_batch_samples`. An optimisation step then has the gradient of one big batch, also
    when the last micro-batch is smaller or holds fewer clips with audio.

    A MER 2023 model (`config.model_type == "mer2023"`) brings its own loss (eq. 9 or CE + MSE, a mean over the
    micro-batch): `compute_loss` takes the loss the model returns, with the same accumulated-batch normalisation,
    and logs its emotion and valence terms; evaluation is the stock `prediction_step` ((logits, valence) against
    (labels, valence_labels)).
    """

    # compute_loss returns a loss already normalised over the accumulated batch: training_step must not divide.
    loss_is_scaled_for_ga = True

    def __init__(self, *args, processor=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Not passed as `processing_class`: transformers 5 then aligns "special tokens" with a tokenizer this
        # processor does not have. save_model below saves it next to the model instead.
        self.processor = processor
        self._branch_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        # Clips that could not be decoded (collate_skipping_bad_clips lists them): error message per phase
        # ("train", or the evaluation's metric prefix); each file is logged once.
        self.skipped_clips: dict[str, set[str]] = {}
        self._phase = "train"

    # ---- data: seeded augmentation (exact resume), clips that fail to decode ----

    def _get_train_sampler(self, train_dataset=None):
        from datasets_emotions.transforms import EpochKeySampler, SeededAugmentation

        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, SeededAugmentation):  # the epoch reaches the workers in the keys
            return EpochKeySampler(len(dataset), seed=self.args.data_seed or self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def _prepare_inputs(self, inputs):
        skipped = inputs.pop("skipped_clips", None) if isinstance(inputs, dict) else None
        if skipped:
            seen = set().union(*self.skipped_clips.values())
            for message in skipped:
                if message not in seen:
                    logger.warning("skipping a clip that cannot be decoded: %s", message)
                    seen.add(message)
            self.skipped_clips.setdefault(self._phase if not self.model.training else "train", set()).update(skipped)
        return super()._prepare_inputs(inputs)

    @staticmethod
    def _zero_loss(model) -> torch.Tensor:
        """The loss of a batch in which no clip could be decoded: zero, but attached to every parameter so that
        backward (and DDP's gradient synchronisation) runs as for any batch."""
        return sum(parameter.sum() for parameter in model.parameters() if parameter.requires_grad) * 0.0

    def save_model(self, output_dir: Optional[str] = None, _internal_call: bool = False) -> None:
        """Save the model (with its custom code) and the processor: final folder and every checkpoint."""
        super().save_model(output_dir, _internal_call)
        if self.processor is not None and self.args.should_save:
            self.processor.save_pretrained(output_dir or self.args.output_dir)

    # ---- loss ----

    @staticmethod
    def branch_counts(inputs: dict) -> dict[str, torch.Tensor]:
        """Samples each branch's loss averages over: labelled clips (visual), labelled clips with audio (others)."""
        labelled = inputs["labels"] != -100
        audio_mask = inputs.get("audio_mask")
        with_audio = labelled if audio_mask is None else labelled & audio_mask.to(labelled.device).bool()
        return {"fusion": with_audio.sum(), "visual": labelled.sum(), "audio": with_audio.sum()}

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Also count each branch's samples over the accumulated batch (and over processes) for compute_loss."""
        batch_samples = []
        for _ in range(num_batches):
            try:
                batch_samples.append(next(epoch_iterator))
            except StopIteration:
                break
        if not batch_samples or "labels" not in batch_samples[0]:
            return batch_samples, None
        counts = torch.stack([torch.stack(list(self.branch_counts(batch).values())) for batch in batch_samples])
        counts = counts.sum(0).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        return batch_samples, dict(zip(BRANCHES, counts))

    def _multitask_loss(self, model, inputs):
        from modeling_avcpnet.loss_avcpnet import compute_multitask_loss

        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        config = self.accelerator.unwrap_model(model).config
        total, branch_losses = compute_multitask_loss(outputs, labels, config, audio_mask=inputs.get("audio_mask"))
        return total, branch_losses, outputs

    def is_mer2023(self, model) -> bool:
        return self.accelerator.unwrap_model(model).config.model_type == "mer2023"

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "labels" in inputs and inputs["labels"].numel() == 0:  # every clip of the batch failed to decode
            return (self._zero_loss(model), None) if return_outputs else self._zero_loss(model)
        counts = self.branch_counts(inputs)
        if self.is_mer2023(model):
            outputs = model(**inputs)  # the model's own loss: a mean over the micro-batch's labelled clips
            total = outputs.loss
            branch_losses, weights = {"fusion": total}, {"fusion": 1.0}  # one term; "fusion" counts labelled clips
            logged = {term: getattr(outputs, f"{term}_loss") for term in MER2023_LOSS_TERMS
                      if getattr(outputs, f"{term}_loss") is not None}
            logged_counts = dict.fromkeys(logged, counts["fusion"])
        else:
            total, branch_losses, outputs = self._multitask_loss(model, inputs)
            config = self.accelerator.unwrap_model(model).config
            weights = config.branch_loss_weights if len(branch_losses) > 1 else dict.fromkeys(branch_losses, 1.0)
            logged, logged_counts = branch_losses, counts
        if model.training:
            self._accumulate("train", logged, logged_counts)
        if isinstance(num_items_in_batch, dict):
            # branch mean over this micro-batch -> sum -> mean over the branch's samples of the accumulated batch
            loss = sum(weights[branch] * value * counts[branch] / num_items_in_batch[branch].clamp(min=1)
                       for branch, value in branch_losses.items())
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                loss = loss * self.args.world_size  # DDP averages the gradients over processes
        elif model.training:
            loss = total / self.current_gradient_accumulation_steps
        else:
            loss = total
        return (loss, outputs) if return_outputs else loss

    def _accumulate(self, phase: str, branch_losses: dict, counts: dict) -> None:
        sums = self._branch_sums[phase]
        for branch, value in branch_losses.items():
            count = counts[branch].to(value.device).double()
            pair = torch.stack([value.detach().double() * count, count])
            sums[branch] = sums[branch] + pair if branch in sums else pair

    def _reduce_branch_losses(self, phase: str, prefix: str) -> dict[str, float]:
        """Sample-weighted mean loss of each branch since the last call, over all processes."""
        sums = self._branch_sums[phase]
        logs = {}
        for branch in (*BRANCHES, *MER2023_LOSS_TERMS):
            if branch in sums:
                total, count = self.accelerator.reduce(sums[branch].to(self.args.device), reduction="sum").tolist()
                logs[f"{prefix}loss_{branch}"] = round(total / max(count, 1.0), 4)
        sums.clear()
        return logs

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        # The Trainer's periodic training log holds "loss": add each branch's mean loss over the same steps.
        if "loss" in logs:
            logs.update(self._reduce_branch_losses("train", ""))
        super().log(logs, start_time)

    # ---- evaluation ----

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Return the logits of all three branches as one (B, 3, L) tensor (NaN for a missing branch)."""
        if self.is_mer2023(model):  # (logits, valence) and (labels, valence_labels), as the stock Trainer gathers
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self._prepare_inputs(inputs)
        labels = inputs["labels"]
        if labels.numel() == 0:  # every clip of the batch failed to decode
            return None, None, None
        with torch.no_grad():
            total, branch_losses, outputs = self._multitask_loss(model, inputs)
        self._accumulate("eval", branch_losses, self.branch_counts(inputs))
        if prediction_loss_only:
            return total.detach(), None, None
        final = outputs.logits
        stacked = []
        for branch in BRANCHES:
            logits = final if branch == "fusion" else getattr(outputs, f"{branch}_logits", None)
            stacked.append(torch.full_like(final, float("nan")) if logits is None else logits)
        return total.detach(), torch.stack(stacked, dim=1).detach(), labels.detach()

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        self._branch_sums["eval"].clear()
        self._phase = metric_key_prefix
        self.skipped_clips.pop(metric_key_prefix, None)
        try:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                             metric_key_prefix)
        finally:
            self._phase = "train"
        output.metrics.update(self._reduce_branch_losses("eval", f"{metric_key_prefix}_"))
        output.metrics[f"{metric_key_prefix}_skipped_clips"] = len(self.skipped_clips.get(metric_key_prefix, ()))
        # predictions are gathered on every process: write the files once.
        if self.is_world_process_zero() and output.predictions is not None and output.label_ids is not None:
            id2label = {int(k): v for k, v in self.accelerator.unwrap_model(self.model).config.id2label.items()}
            if self.is_mer2023(self.model):
                paths = write_mer2023_report(self.args.output_dir, metric_key_prefix, output.predictions,
                                             output.label_ids, id2label)
            else:
                paths = write_evaluation_report(self.args.output_dir, metric_key_prefix, output.predictions,
                                                output.label_ids, id2label)
            logger.warning("wrote evaluation report to %s", ", ".join(sorted(paths.values())))
        return output

    # ---- Hub ----

    card_context: dict[str, Any] = {}

    def create_model_card(self, **kwargs) -> None:
        """Write README.md into output_dir from hub_cards/model_card_template.md (main process only)."""
        if not self.is_world_process_zero():
            return
        if self.is_mer2023(self.model):
            # hub_cards/model_card_template.md describes AV-CPNet; MER 2023 has no card template yet.
            logger.warning("no model card for a mer2023 model (the template describes AV-CPNet)")
            return
        card = build_model_card(self, **{**self.card_context, **kwargs})
        card.save(os.path.join(self.args.output_dir, "README.md"))


# --------------------------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------------------------


_METRIC_NAMES = {
    "accuracy": ("accuracy", "Accuracy (fused)"),
    "wa_f1": ("f1", "WA-F1 (weighted F1)"),
    "macro_f1": ("f1", "Macro F1"),
    "uar": ("recall", "UAR (macro recall)"),
    "visual_accuracy": ("accuracy", "Accuracy (visual branch)"),
    "audio_accuracy": ("accuracy", "Accuracy (audio branch)"),
}


def build_model_card(trainer: Trainer, model_name: Optional[str] = None, dataset_name: str = "sample",
                     dataset_config: Optional[str] = None, results: Optional[dict[str, dict[str, float]]] = None,
                     license: str = "apache-2.0", finetuned_from: Optional[str] = None, **_):
    """A `huggingface_hub.ModelCard` from the template, with a `model-index` of the real evaluation results.

    results: {split name: {metric name without prefix: value}} as returned by evaluate/predict.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    config = trainer.accelerator.unwrap_model(trainer.model).config
    args = trainer.args
    repo_id = args.hub_model_id or model_name or Path(args.output_dir).name
    dataset_id = f"{dataset_name}" + (f"/{dataset_config}" if dataset_config else "")
    eval_results = []
    for split, split_metrics in (results or {}).items():
        for key, (metric_type, pretty) in _METRIC_NAMES.items():
            if key in split_metrics:
                eval_results.append(EvalResult(
                    task_type="video-classification", task_name="Audio-visual emotion recognition",
                    dataset_type=dataset_name, dataset_name=dataset_id, dataset_config=dataset_config,
                    dataset_split=split, metric_type=metric_type, metric_name=f"{pretty}",
                    metric_value=round(float(split_metrics[key]), 4),
                ))
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1], license=license, library_name="transformers",
        pipeline_tag="video-classification", tags=["avcpnet", "audio-visual", "emotion-recognition", "video"],
        datasets=[dataset_id], metrics=["accuracy", "f1", "recall"], base_model=finetuned_from,
        eval_results=eval_results or None,
    )
    hyper = {
        "learning_rate": args.learning_rate, "train_batch_size (per device)": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "total_train_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps
        * max(args.world_size, 1),
        "optimizer": f"{args.optim} (betas {args.adam_beta1}, {args.adam_beta2}, eps {args.adam_epsilon}, "
                     f"weight decay {args.weight_decay})",
        "lr_scheduler": f"{args.lr_scheduler_type} {args.lr_scheduler_kwargs or ''}".strip(),
        "warmup_steps": args.warmup_steps, "num_epochs": args.num_train_epochs, "max_steps": args.max_steps,
        "seed": args.seed, "global_step": trainer.state.global_step,
    }
    results_table = "\n".join(
        f"| {split} | " + " | ".join(f"{m[key]:.4f}" if key in m else "-" for key in _METRIC_NAMES) + " |"
        for split, m in (results or {}).items()
    ) or "| - | " + " | ".join("-" for _ in _METRIC_NAMES) + " |"
    id2label = {int(k): v for k, v in config.id2label.items()}
    labels_table = "\n".join(f"| {i} | {id2label[i]} | {config.label2polarity[id2label[i]]} |" for i in sorted(id2label))
    architecture = {key: getattr(config, key) for key in (
        "embed_dim", "depths", "num_heads", "image_size", "num_segments", "frames_per_segment", "num_mfcc",
        "audio_length", "audio_segments", "hidden_size", "fusion_type", "modalities", "use_cross_attention",
        "ep_ce_gammas", "branch_loss_weights")}
    if not HUB_CARD_TEMPLATE.is_file():
        raise FileNotFoundError(f"model card template {HUB_CARD_TEMPLATE} is missing")
    return ModelCard.from_template(
        card_data, template_path=str(HUB_CARD_TEMPLATE), repo_id=repo_id, dataset_id=dataset_id,
        finetuned_from=finetuned_from,
        results_header="| split | " + " | ".join(p for _, p in _METRIC_NAMES.values()) + " |",
        results_rule="|---|" + "---|" * len(_METRIC_NAMES), results_table=results_table,
        labels_table=labels_table, hyperparameters="\n".join(f"- {k}: {v}" for k, v in hyper.items()),
        architecture="\n".join(f"- {k}: {v}" for k, v in architecture.items()),
        num_parameters=sum(p.numel() for p in trainer.model.parameters()),
        transformers_version=transformers.__version__, torch_version=torch.__version__,
    )


# --------------------------------------------------------------------------------------------------------------
# Data and model
# --------------------------------------------------------------------------------------------------------------


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


def build_config_and_model(model_args: ModelArguments, id2label: dict[int, str], label2polarity: dict[str, str],
                           feature_layout: Optional[dict[str, list]] = None):
    """Build a fresh AV-CPNet (or MER 2023 model) or load a checkpoint, with the dataset's labels and polarity map.

    feature_layout: for mer2023, `MER2023DeepFeatureExtractor.config_kwargs()` (feature names, sizes, modalities).
    """
    from transformers import AutoConfig, AutoModelForVideoClassification

    from modeling_avcpnet import AVCPNetConfig, MER2023Config  # also registers both model types with the Auto classes

    overrides = _as_str_mapping(model_args.config_overrides, "config_overrides") or {}
    for name in ("fusion_type", "modalities", "use_cross_attention"):
        if getattr(model_args, name) is not None:
            overrides[name] = getattr(model_args, name)
    gammas = _as_mapping(model_args.ep_ce_gammas, POLARITIES, "ep_ce_gammas")
    if gammas is not None:
        overrides["ep_ce_gammas"] = gammas
    weights = _as_mapping(model_args.branch_loss_weights, BRANCHES, "branch_loss_weights")
    if weights is not None:
        overrides["branch_loss_weights"] = weights
    polarity = dict(label2polarity)
    polarity.update(_as_str_mapping(model_args.label2polarity, "label2polarity") or {})
    label_fields = dict(id2label=id2label, label2id={v: k for k, v in id2label.items()},
                        label2polarity={id2label[i]: polarity.get(id2label[i], "neutral") for i in id2label})

    if model_args.model_name_or_path is None and model_args.model_type == "mer2023":
        config = MER2023Config(**{**overrides, **feature_layout, **label_fields},
                               fusion_structure=model_args.fusion_structure, decoder_type=model_args.decoder_type)
        return config, AutoModelForVideoClassification.from_config(config), None
    if model_args.model_name_or_path is None:
        if model_args.config_preset == "tiny":
            config = AVCPNetConfig.tiny(**overrides, **label_fields)
        elif model_args.config_preset == "default":
            config = AVCPNetConfig(**overrides, **label_fields)
        else:
            raise ValueError(f"--config_preset must be 'default' or 'tiny', got {model_args.config_preset!r}")
        model = AutoModelForVideoClassification.from_config(config)
        return config, model, None

    hub_kwargs = dict(cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code)
    config = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
    if config.model_type != model_args.model_type:
        raise ValueError(f"{model_args.model_name_or_path} holds a {config.model_type!r} model: pass --model_type "
                         f"{config.model_type}")
    for key, value in (feature_layout or {}).items():
        if list(getattr(config, key)) != list(value):
            raise ValueError(f"{model_args.model_name_or_path} was trained on features with {key}="
                             f"{list(getattr(config, key))}, the backbones give {list(value)}")
    old_labels = [config.id2label[i] for i in sorted(config.id2label)]
    new_labels = [id2label[i] for i in sorted(id2label)]
    relabel = old_labels != new_labels
    for key, value in overrides.items():
        setattr(config, key, value)
    config.id2label, config.label2id = label_fields["id2label"], label_fields["label2id"]
    config.label2polarity = label_fields["label2polarity"]
    if relabel:
        if not model_args.ignore_mismatched_sizes:
            raise ValueError(f"{model_args.model_name_or_path} was trained on labels {old_labels}, the dataset has "
                             f"{new_labels}: pass --ignore_mismatched_sizes to re-initialise the heads")
        logger.warning("label set changes from %s to %s: classification heads are re-initialised", old_labels,
                       new_labels)
    config._validate()
    model = AutoModelForVideoClassification.from_pretrained(
        model_args.model_name_or_path, config=config, ignore_mismatched_sizes=relabel, **hub_kwargs
    )
    if relabel and len(old_labels) == len(new_labels):
        reinitialise_heads(model)  # same size: from_pretrained loaded them, but they mean other classes now
    return config, model, (old_labels if relabel else None)


def classification_heads(model) -> dict[str, torch.nn.Module]:
    """The modules producing logits of size num_labels (one per branch)."""
    num_labels = model.config.num_labels
    return {name: module for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module.out_features == num_labels}


def reinitialise_heads(model) -> None:
    for module in classification_heads(model).values():
        model._init_weights(module)


def build_processor(model_args: ModelArguments, data_args: DataArguments, config):
    from modeling_avcpnet.processing_avcpnet import AVCPNetProcessor

    overrides = _as_str_mapping(data_args.processor_overrides, "processor_overrides") or {}
    if model_args.model_name_or_path is not None:
        try:
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir,
                                                      trust_remote_code=model_args.trust_remote_code, **overrides)
            return processor
        except (OSError, ValueError) as error:
            logger.warning("no processor in %s (%s); building one from the model config",
                           model_args.model_name_or_path, error)
    return AVCPNetProcessor.from_model_config(config, **overrides)


def mer2023_feature_splits(model_args: ModelArguments, data_args: DataArguments, splits: dict):
    """MER 2023: the deep features of every split (computed once with `datasets.map`, then read from the cache), as
    columns `input_features`, `labels`, `valence_labels`; and the extractor (its `config_kwargs()` is the layout)."""
    from modeling_avcpnet import MER2023DeepFeatureExtractor

    if not (model_args.audio_backbone or model_args.vision_backbone):
        raise ValueError("--model_type mer2023 needs --audio_backbone and/or --vision_backbone (folders or Hub ids "
                         "of AutoModel backbones)")
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


def load_splits(data_args: DataArguments, training_args: TrainingArguments):
    from datasets_emotions import load_dataset

    dataset = load_dataset(data_args.dataset_name, data_args.dataset_config, data_dir=data_args.data_dir,
                           cache_dir=data_args.dataset_cache_dir,
                           **(_as_str_mapping(data_args.dataset_kwargs, "dataset_kwargs") or {}))
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


# --------------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------------


RESULTS_COLUMNS = {
    "avcpnet": [("accuracy", "fused acc"), ("visual_accuracy", "visual acc"), ("audio_accuracy", "audio acc"),
                ("wa_f1", "WA-F1"), ("macro_f1", "macro F1"), ("uar", "UAR")],
    "mer2023": [("accuracy", "emotion acc"), ("weighted_f1", "weighted F1"), ("valence_mse", "valence MSE"),
                ("combined", "WF1 - 0.25 MSE")],
}


def format_results_table(results: dict[str, dict[str, float]], model_type: str = "avcpnet") -> str:
    columns = RESULTS_COLUMNS[model_type]
    lines = ["| split | " + " | ".join(title for _, title in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for split, metrics in results.items():
        lines.append(f"| {split} | " + " | ".join(
            f"{metrics[key]:.4f}" if key in metrics else "-" for key, _ in columns) + " |")
    return "\n".join(lines)


def _strip_prefix(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {key[len(prefix) + 1:]: value for key, value in metrics.items() if key.startswith(prefix + "_")}


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_arguments(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO if training_args.should_log else logging.WARNING)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_warning()

    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last", "latest"):
        resume = get_last_checkpoint(training_args.output_dir)
        if resume is None:
            raise ValueError(f"--resume_from_checkpoint {training_args.resume_from_checkpoint}: no checkpoint in "
                             f"{training_args.output_dir}")

    if training_args.remove_unused_columns:
        # The examples are made on the fly from the `video`/`audio` columns by a transform: keep them.
        logger.info("setting remove_unused_columns=False (the processor transform needs the raw columns)")
        training_args.remove_unused_columns = False
    if model_args.model_type not in MODEL_TYPES:
        raise ValueError(f"--model_type must be one of {', '.join(MODEL_TYPES)}, got {model_args.model_type!r}")
    is_mer2023 = model_args.model_type == "mer2023"
    set_seed(training_args.seed)
    from datasets_emotions import with_processor

    from datasets_emotions.transforms import SeededAugmentation, collate_skipping_bad_clips

    with training_args.main_process_first(desc="generating/loading the dataset"):
        dataset, splits = load_splits(data_args, training_args)
    reference_split = splits.get(data_args.train_split) or next(iter(splits.values()))
    id2label, label2polarity = dataset_label_maps(reference_split)
    extractor = None
    if is_mer2023:
        with training_args.main_process_first(desc="MER 2023 deep features"):
            extractor, splits = mer2023_feature_splits(model_args, data_args, splits)
    config, model, old_labels = build_config_and_model(model_args, id2label, label2polarity,
                                                       extractor.config_kwargs() if extractor is not None else None)
    # MER 2023 trains on cached features: nothing to process on the fly, no processor to save.
    processor = None if is_mer2023 else build_processor(model_args, data_args, config)
    logger.info("model: %s parameters, labels %s, polarity %s", f"{model.num_parameters():,}",
                list(id2label.values()), getattr(config, "label2polarity", None))

    def prepared(split: str, training: bool):
        # Clips that fail to decode are dropped from their batch and counted (`*_skipped_clips` in the results);
        # training examples draw their random crops from (seed, epoch, index), so that resuming is exact.
        if is_mer2023:
            return splits[split]
        if training:
            return SeededAugmentation(splits[split], processor, seed=training_args.data_seed or training_args.seed)
        return with_processor(splits[split], processor, training=False, skip_bad_files=True)

    train_dataset = eval_dataset = test_dataset = None
    if training_args.do_train:
        train_dataset = prepared(data_args.train_split, training=True)
    if data_args.eval_split in splits:
        eval_dataset = prepared(data_args.eval_split, training=False)
    if training_args.do_predict:
        test_dataset = prepared(data_args.test_split, training=False)

    if is_mer2023:
        from modeling_avcpnet import compute_mer2023_metrics as compute_metrics
    else:
        compute_metrics = compute_metrics_fn(config.num_labels)
    trainer = EPCETrainer(
        model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
        processor=processor, compute_metrics=compute_metrics,
        data_collator=None if is_mer2023 else collate_skipping_bad_clips,
    )
    results: dict[str, dict[str, float]] = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume)
        # model + processor (+ custom code) into output_dir; `_internal_call` keeps save_model from pushing now: the
        # push comes once, at the end, with the evaluation results in the model card.
        trainer.save_model(_internal_call=True)
        if not is_mer2023:
            train_result.metrics["train_skipped_clips"] = len(trainer.skipped_clips.get("train", ()))
        trainer.log_metrics("train", train_result.metrics)
        trainer.save_metrics("train", train_result.metrics)
        trainer.save_state()
    if training_args.do_eval and eval_dataset is not None:
        metrics = trainer.evaluate(eval_dataset=eval_dataset, metric_key_prefix="eval")
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results[data_args.eval_split] = _strip_prefix(metrics, "eval")
    if training_args.do_predict and test_dataset is not None:
        prediction = trainer.predict(test_dataset, metric_key_prefix="test")
        trainer.log_metrics("test", prediction.metrics)
        trainer.save_metrics("test", prediction.metrics)
        results[data_args.test_split] = _strip_prefix(prediction.metrics, "test")

    trainer.card_context = dict(
        dataset_name=data_args.dataset_name, dataset_config=data_args.dataset_config, results=results,
        license=model_args.hub_license, finetuned_from=model_args.model_name_or_path,
    )
    if trainer.is_world_process_zero():
        trainer.create_model_card()
    if training_args.push_to_hub:
        name = "MER 2023 system" if is_mer2023 else "AV-CPNet"
        trainer.push_to_hub(commit_message=f"{name} trained on {data_args.dataset_name}")

    output_dir = os.path.abspath(training_args.output_dir)
    # {phase: distinct clips of this process that failed to decode and were left out}, phase = train/eval/test
    skipped_clips = {phase: len(messages) for phase, messages in trainer.skipped_clips.items() if messages}
    print(f"process {training_args.process_index}/{training_args.world_size} finished", flush=True)
    if trainer.is_world_process_zero():
        if results:
            print("\n" + format_results_table(results, model_args.model_type))
        if skipped_clips:
            print(f"\nSkipped clips that could not be decoded: {skipped_clips} (see the warnings above)")
        if training_args.do_train:
            print(f"\nSaved model{' and processor' if processor is not None else ''} to {output_dir}")
    return {"results": results, "output_dir": output_dir, "global_step": trainer.state.global_step,
            "trainer": trainer, "old_labels": old_labels, "skipped_clips": skipped_clips}


if __name__ == "__main__":
    main()
