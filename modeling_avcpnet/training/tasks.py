"""What differs between the model types during training, as one "task" object per model type.

`EPCETrainer` asks its task (chosen once, from `config.model_type`) for: the loss of a micro-batch split into
linear terms (so that the trainer can renormalise them over the accumulated batch), the number of samples each term
averages over, the evaluation predictions and labels, the metrics, the evaluation report and the model card. The
recipe asks it how to prepare the data (raw clips through the processor, or cached deep features) and whether
there is a processor to save. A new model type is a new `TrainingTask` subclass in `TASKS`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ..configuration_avcpnet import BRANCHES
from ..loss_avcpnet import branch_sample_counts, compute_multitask_loss

logger = logging.getLogger(__name__)


@dataclass
class LossParts:
    """The loss of one micro-batch.

    total: the loss as the model defines it (a mean over the micro-batch).
    terms: mean losses with `total == sum(weights[t] * terms[t])`; each averages over `TrainingTask.sample_counts`.
    logged: mean losses to log next to the total (also averaged over `sample_counts` of their name).
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    weights: dict[str, float]
    logged: dict[str, torch.Tensor]
    outputs: Any


class TrainingTask:
    """Training hooks of one model type (see the module docstring)."""

    model_type: str
    display_name: str
    logged_terms: tuple[str, ...] = ()
    has_processor = True
    data_collator: Optional[Callable] = None  # the Trainer's default when None

    def sample_counts(self, inputs: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, model, config, inputs: dict) -> LossParts:
        raise NotImplementedError

    def predictions(self, outputs):
        """What `Trainer.predict` returns as predictions for these model outputs."""
        raise NotImplementedError

    def compute_metrics(self, config) -> Callable:
        raise NotImplementedError

    def write_report(self, output_dir: str, prefix: str, predictions, label_ids, id2label: dict) -> dict[str, str]:
        raise NotImplementedError

    def model_card(self, trainer, **context):
        """A `huggingface_hub.ModelCard`, or None when the model type has no card template."""
        return None

    def prepare_splits(self, model_args, data_args, splits: dict) -> tuple[dict, Optional[dict]]:
        """The splits as the model consumes them, and the config fields they imply (None: nothing)."""
        return splits, None

    def saved_processor(self):
        """For a task without an on-the-fly processor (`has_processor = False`): the processor to save with the
        model so that its folder goes from a video file to predictions (None: nothing to save)."""
        return None

    def trainer_dataset(self, split, processor, training: bool, seed: int = 0):
        """One prepared split as the Trainer's dataset (`seed`: of the training augmentation)."""
        return split


class AVCPNetTask(TrainingTask):
    """AV-CPNet on raw clips: the multi-task EP-CE loss (`loss_avcpnet.compute_multitask_loss`) over the fused,
    visual and audio logits; evaluation predictions are the three branches' logits stacked `(batch, 3, num_labels)`
    (NaN for a branch the model does not have)."""

    model_type = "avcpnet"
    display_name = "AV-CPNet"
    logged_terms = BRANCHES

    def sample_counts(self, inputs):
        return branch_sample_counts(inputs["labels"], inputs.get("audio_mask"))

    def loss(self, model, config, inputs):
        inputs = dict(inputs)
        labels = inputs.pop("labels")  # the loss is computed here, by the same function the model's forward uses
        outputs = model(**inputs)
        total, branch_losses = compute_multitask_loss(outputs, labels, config, audio_mask=inputs.get("audio_mask"))
        weights = config.branch_loss_weights if len(branch_losses) > 1 else dict.fromkeys(branch_losses, 1.0)
        return LossParts(total, branch_losses, weights, branch_losses, outputs)

    def predictions(self, outputs):
        final = outputs.logits
        stacked = [final if branch == "fusion" else getattr(outputs, f"{branch}_logits", None) for branch in BRANCHES]
        return torch.stack([torch.full_like(final, float("nan")) if logits is None else logits
                            for logits in stacked], dim=1)

    def compute_metrics(self, config):
        from .metrics import compute_metrics_fn

        return compute_metrics_fn(config.num_labels)

    def write_report(self, output_dir, prefix, predictions, label_ids, id2label):
        from .reports import write_evaluation_report

        return write_evaluation_report(output_dir, prefix, predictions, label_ids, id2label)

    def model_card(self, trainer, **context):
        from .model_card import build_model_card

        return build_model_card(trainer, **context)

    @property
    def data_collator(self):
        from .dataloader import collate_skipping_bad_clips

        return collate_skipping_bad_clips

    def trainer_dataset(self, split, processor, training, seed=0):
        """Clips that fail to decode are dropped from their batch and counted (`*_skipped_clips`); a training
        example draws its random crops from (seed, epoch, index), so that a resumed run is exact."""
        from datasets_emotions import with_processor

        from .dataloader import SeededAugmentation

        if training:
            return SeededAugmentation(split, processor, seed=seed)
        return with_processor(split, processor, training=False, skip_bad_files=True)


class MER2023Task(TrainingTask):
    """The MER 2023 system on cached deep features: the model's own loss (eq. 9, or CE + MSE; a mean over the
    micro-batch), logged with its emotion and valence terms; predictions `(logits, valence)` against
    `(labels, valence_labels)`; the challenge metric `weighted_F1 - 0.25 * valence MSE`."""

    model_type = "mer2023"
    display_name = "MER 2023 system"
    logged_terms = ("emotion", "valence")
    has_processor = False  # trains on cached features: nothing to process on the fly (see saved_processor)

    def sample_counts(self, inputs):
        count = torch.tensor(len(inputs["labels"]), device=inputs["labels"].device)
        return {"loss": count, **dict.fromkeys(self.logged_terms, count)}

    def loss(self, model, config, inputs):
        outputs = model(**inputs)
        logged = {term: getattr(outputs, f"{term}_loss") for term in self.logged_terms
                  if getattr(outputs, f"{term}_loss") is not None}
        return LossParts(outputs.loss, {"loss": outputs.loss}, {"loss": 1.0}, logged, outputs)

    def predictions(self, outputs):
        return outputs.logits, outputs.valence

    def compute_metrics(self, config):
        from ..mer2023.metrics import compute_mer2023_metrics

        return compute_mer2023_metrics

    def write_report(self, output_dir, prefix, predictions, label_ids, id2label):
        from .reports import write_mer2023_report

        return write_mer2023_report(output_dir, prefix, predictions, label_ids, id2label)

    def model_card(self, trainer, **context):
        logger.info("mer2023: the folder keeps the card its save_pretrained wrote (no results card template yet)")
        return None

    def prepare_splits(self, model_args, data_args, splits):
        from .data import mer2023_feature_splits

        extractor, features = mer2023_feature_splits(model_args, data_args, splits)
        self.extractor = extractor  # kept for saved_processor
        return features, extractor.config_kwargs()

    def saved_processor(self):
        """`MER2023Processor` over the backbones the features came from (saved with every checkpoint)."""
        from ..processing_mer2023 import MER2023Processor

        extractor = getattr(self, "extractor", None)
        return MER2023Processor.from_extractor(extractor) if extractor is not None else None


TASKS: dict[str, TrainingTask] = {task.model_type: task for task in (AVCPNetTask(), MER2023Task())}


def get_task(model_type: str) -> TrainingTask:
    if model_type not in TASKS:
        raise ValueError(f"--model_type must be one of {', '.join(TASKS)}, got {model_type!r}")
    return TASKS[model_type]
