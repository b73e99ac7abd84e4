"""`EPCETrainer`: the `transformers.Trainer` of this project.

What it adds to the stock `Trainer`:
- the loss comes from the model type's task (`tasks.py`): AV-CPNet's multi-task EP-CE loss
  (`loss_avcpnet.compute_multitask_loss`, the very function the model's forward uses) or MER 2023's own loss;
- gradient accumulation is exact: each loss term is a mean over its own samples (the audio and fusion losses skip
  clips without audio), so every term is turned back into a sum over the micro-batch and divided by that term's
  sample count over the whole accumulated batch (all micro-batches, all processes), counted in
  `get_batch_samples`. An optimisation step then has the gradient of one big batch, also when the last
  micro-batch is smaller or holds fewer clips with audio;
- each loss term (fusion/visual/audio, or emotion/valence) is logged next to the total, in training and evaluation;
- evaluation writes the task's report (confusion matrix, per-class report) next to the metrics;
- `save_model` also saves the processor (final folder and every checkpoint), `create_model_card` writes the task's
  card from the templates in `hub_cards/`.

Extension points: `save_model` (what a checkpoint folder holds), the `data_collator` and `callbacks` the recipe
passes, and `task` (everything model-type specific).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import torch
from transformers import Trainer

from .tasks import TrainingTask, get_task

logger = logging.getLogger(__name__)


class EPCETrainer(Trainer):
    """A `Trainer` whose loss, predictions, reports and card come from the model type's `TrainingTask`.

    Args (besides the `Trainer`'s):
        processor: saved next to the model in `save_model` (not passed as `processing_class`: transformers 5 then
            aligns "special tokens" with a tokenizer this processor does not have).
        task: the model type's hooks; by default `get_task(model.config.model_type)`.
        card_context: keyword arguments of the task's model card (dataset, results, license, base model).
    """

    def __init__(self, *args, processor=None, task: Optional[TrainingTask] = None,
                 card_context: Optional[dict[str, Any]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        # `compute_loss` normalises the loss over the accumulated batch whenever `get_batch_samples` gave counts, as
        # a model that takes `num_items_in_batch` does: `training_step` must then not divide it by the number of
        # accumulation steps (when the counts are None it divides, and compute_loss returns the micro-batch mean).
        # This is the switch `Trainer.compute_loss`'s docstring names, read by every transformers 5 release
        # (`loss_is_scaled_for_ga`, from 5.19 on, left at None, decides from it the same way).
        self.model_accepts_loss_kwargs = True
        self.processor = processor
        self.task = task or get_task(self.model.config.model_type)
        self.card_context = dict(card_context or {})
        self._term_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        # Clips that could not be decoded (the collator lists them in `skipped_clips`): their error messages per
        # phase ("train", or the evaluation's metric prefix); each file is logged once.
        self.skipped_clips: dict[str, set[str]] = {}
        self._phase = "train"

    @property
    def model_config(self):
        return self.accelerator.unwrap_model(self.model).config

    def save_model(self, output_dir: Optional[str] = None, _internal_call: bool = False) -> None:
        """Save the model (with its custom code) and the processor: final folder and every checkpoint."""
        super().save_model(output_dir, _internal_call)
        if self.processor is not None and self.args.should_save:
            self.processor.save_pretrained(output_dir or self.args.output_dir)

    # ---- data: seeded augmentation (exact resume), clips that fail to decode ----

    def _get_train_sampler(self, train_dataset=None):
        from .dataloader import EpochKeySampler, SeededAugmentation

        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, SeededAugmentation):  # the epoch reaches the DataLoader workers in the keys
            return EpochKeySampler(len(dataset), seed=self.args.data_seed or self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def get_train_dataloader(self):
        # Creating or resetting a DataLoader iterator draws its workers' base seed from the DataLoader's generator,
        # by default torch's global RNG, the one dropout uses. A run resumed with persistent workers creates its
        # iterator where the uninterrupted run reused one, which shifted every later dropout mask. A generator of
        # the DataLoader's own keeps the global RNG out of it (the examples' randomness comes from their keys).
        loader = super().get_train_dataloader()
        torch_loader = getattr(loader, "base_dataloader", loader)
        if isinstance(torch_loader, torch.utils.data.DataLoader) and torch_loader.generator is None:
            torch_loader.generator = torch.Generator().manual_seed(self.args.data_seed or self.args.seed)
        return loader

    def _prepare_inputs(self, inputs):
        skipped = inputs.pop("skipped_clips", None) if isinstance(inputs, dict) else None
        if skipped:
            seen = set().union(*self.skipped_clips.values())
            for message in dict.fromkeys(skipped):
                if message not in seen:
                    logger.warning("skipping a clip that cannot be decoded: %s", message)
            phase = "train" if self.model.training else self._phase
            self.skipped_clips.setdefault(phase, set()).update(skipped)
        return super()._prepare_inputs(inputs)

    @staticmethod
    def _is_empty(inputs) -> bool:
        """True for a batch in which no clip could be decoded (labels of size 0, no model inputs)."""
        return "labels" in inputs and inputs["labels"].numel() == 0

    @staticmethod
    def _zero_loss(model) -> torch.Tensor:
        """The loss of an empty batch: zero, but attached to every parameter so that backward (and DDP's gradient
        synchronisation) runs as for any batch."""
        return sum(parameter.sum() for parameter in model.parameters() if parameter.requires_grad) * 0.0

    # ---- loss ----

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """Also count each loss term's samples over the accumulated batch (and over processes) for compute_loss."""
        batch_samples = []
        for _ in range(num_batches):
            try:
                batch_samples.append(next(epoch_iterator))
            except StopIteration:
                break
        if not batch_samples or "labels" not in batch_samples[0]:
            return batch_samples, None
        per_batch = [self.task.sample_counts(batch) for batch in batch_samples]
        names = list(per_batch[0])
        counts = torch.stack([torch.stack([counts[name].to(device) for name in names]) for counts in per_batch])
        counts = counts.sum(0)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        return batch_samples, dict(zip(names, counts))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self._is_empty(inputs):
            return (self._zero_loss(model), None) if return_outputs else self._zero_loss(model)
        counts = self.task.sample_counts(inputs)
        parts = self.task.loss(model, self.model_config, inputs)
        if model.training:
            self._accumulate("train", parts.logged, counts)
        if isinstance(num_items_in_batch, dict):
            # term mean over this micro-batch -> sum -> mean over the term's samples of the accumulated batch
            loss = sum(parts.weights[name] * value * counts[name] / num_items_in_batch[name].clamp(min=1)
                       for name, value in parts.terms.items())
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                loss = loss * self.args.world_size  # DDP averages the gradients over processes
        else:  # a micro-batch mean: training_step divides it by the number of accumulation steps
            loss = parts.total
        return (loss, parts.outputs) if return_outputs else loss

    def _accumulate(self, phase: str, losses: dict, counts: dict) -> None:
        sums = self._term_sums[phase]
        for name, value in losses.items():
            count = counts[name].to(value.device).double()
            pair = torch.stack([value.detach().double() * count, count])
            sums[name] = sums[name] + pair if name in sums else pair

    def _reduce_logged_losses(self, phase: str, prefix: str) -> dict[str, float]:
        """Sample-weighted mean of each logged loss term since the last call, over all processes."""
        sums = self._term_sums[phase]
        logs = {}
        for name in self.task.logged_terms:  # a fixed order: the reduction is collective
            if name in sums:
                total, count = self.accelerator.reduce(sums[name].to(self.args.device), reduction="sum").tolist()
                logs[f"{prefix}loss_{name}"] = round(total / max(count, 1.0), 4)
        sums.clear()
        return logs

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        # The Trainer's periodic training log holds "loss": add each term's mean loss over the same steps.
        if "loss" in logs:
            logs.update(self._reduce_logged_losses("train", ""))
        super().log(logs, start_time)

    # ---- evaluation ----

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """(loss, the task's predictions, labels); the loss terms are accumulated for the evaluation log."""
        inputs = self._prepare_inputs(inputs)
        if self._is_empty(inputs):
            return None, None, None
        with torch.no_grad():
            parts = self.task.loss(model, self.model_config, inputs)
        self._accumulate("eval", parts.logged, self.task.sample_counts(inputs))
        if prediction_loss_only:
            return parts.total.detach(), None, None
        labels = tuple(inputs[name].detach() for name in self.label_names if name in inputs)
        labels = labels[0] if len(labels) == 1 else (labels or None)
        predictions = self.task.predictions(parts.outputs)
        predictions = tuple(p.detach() for p in predictions) if isinstance(predictions, tuple) else predictions.detach()
        return parts.total.detach(), predictions, labels

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        self._term_sums["eval"].clear()
        self._phase = metric_key_prefix
        self.skipped_clips.pop(metric_key_prefix, None)
        try:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                             metric_key_prefix)
        finally:
            self._phase = "train"
        output.metrics.update(self._reduce_logged_losses("eval", f"{metric_key_prefix}_"))
        if self.task.data_collator is not None:
            output.metrics[f"{metric_key_prefix}_skipped_clips"] = len(self.skipped_clips.get(metric_key_prefix, ()))
        # predictions are gathered on every process: write the files once.
        if self.is_world_process_zero() and output.predictions is not None and output.label_ids is not None:
            id2label = {int(k): v for k, v in self.model_config.id2label.items()}
            paths = self.task.write_report(self.args.output_dir, metric_key_prefix, output.predictions,
                                           output.label_ids, id2label)
            logger.info("wrote evaluation report to %s", ", ".join(sorted(paths.values())))
        return output

    # ---- Hub ----

    def create_model_card(self, **kwargs) -> None:
        """Write README.md into output_dir from the task's card template (main process only)."""
        if not self.is_world_process_zero():
            return
        card = self.task.model_card(self, **{**self.card_context, **kwargs})
        if card is not None:
            card.save(os.path.join(self.args.output_dir, "README.md"))
