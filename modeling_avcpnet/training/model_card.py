"""The AV-CPNet model card: `huggingface_hub.ModelCard.from_template` on `hub_cards/model_card_template.md` (package
data), with a `model-index` of the run's evaluation results, the label/polarity table, the hyper-parameters and the
architecture."""

from __future__ import annotations

import os
from enum import Enum
from typing import Optional

import torch
import transformers

_METRIC_NAMES = {
    "accuracy": ("accuracy", "Accuracy (fused)"),
    "wa_f1": ("f1", "WA-F1 (weighted F1)"),
    "macro_f1": ("f1", "Macro F1"),
    "uar": ("recall", "UAR (macro recall)"),
    "visual_accuracy": ("accuracy", "Accuracy (visual branch)"),
    "audio_accuracy": ("accuracy", "Accuracy (audio branch)"),
}


def _plain(value):
    """A hyper-parameter as a reader writes it: `adamw_torch`, not `OptimizerNames.ADAMW_TORCH`."""
    return value.value if isinstance(value, Enum) else value


def hub_base_model(finetuned_from: Optional[str]) -> Optional[str]:
    """The card's `base_model`: a Hub id, never a path on the training machine (a local checkpoint -> None)."""
    if not finetuned_from or os.path.isabs(finetuned_from) or os.path.exists(finetuned_from):
        return None
    return finetuned_from


def _folder_name(path: Optional[str]) -> Optional[str]:
    return os.path.basename(os.path.normpath(path)) if path else None


def _training_length(args, state) -> dict:
    """What bounded the training: `num_train_epochs`, or `max_steps` when set (it overrides the epochs, so the card
    gives the epochs actually trained instead of the configured ones)."""
    if args.max_steps and args.max_steps > 0:
        return {"max_steps": args.max_steps,
                "num_epochs": f"{state.epoch or 0:.2f} trained (max_steps overrides num_train_epochs "
                              f"{args.num_train_epochs:g})"}
    return {"num_epochs": f"{args.num_train_epochs:g}"}


def build_model_card(trainer, model_name: Optional[str] = None, dataset_name: str = "sample",
                     dataset_config: Optional[str] = None, results: Optional[dict[str, dict[str, float]]] = None,
                     license: str = "apache-2.0", finetuned_from: Optional[str] = None, **_):
    """A `huggingface_hub.ModelCard` from the template, with a `model-index` of the real evaluation results.

    results: {split name: {metric name without prefix: value}} as returned by evaluate/predict.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from hub_cards import template

    config = trainer.accelerator.unwrap_model(trainer.model).config
    args = trainer.args
    repo_id = args.hub_model_id or model_name or _folder_name(args.output_dir)
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
        datasets=[dataset_id], metrics=["accuracy", "f1", "recall"], base_model=hub_base_model(finetuned_from),
        eval_results=eval_results or None,
    )
    hyper = {
        "learning_rate": args.learning_rate, "train_batch_size (per device)": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "total_train_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps
        * max(args.world_size, 1),
        "optimizer": f"{_plain(args.optim)} (betas {args.adam_beta1}, {args.adam_beta2}, eps {args.adam_epsilon}, "
                     f"weight decay {args.weight_decay})",
        "lr_scheduler": f"{_plain(args.lr_scheduler_type)} {args.lr_scheduler_kwargs or ''}".strip(),
        "warmup_steps": args.warmup_steps, **_training_length(args, trainer.state),
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
    return ModelCard.from_template(
        card_data, template_str=template("model_card_template.md"), repo_id=repo_id, dataset_id=dataset_id,
        finetuned_from=hub_base_model(finetuned_from) or _folder_name(finetuned_from),
        results_header="| split | " + " | ".join(p for _, p in _METRIC_NAMES.values()) + " |",
        results_rule="|---|" + "---|" * len(_METRIC_NAMES), results_table=results_table,
        labels_table=labels_table, hyperparameters="\n".join(f"- {k}: {v}" for k, v in hyper.items()),
        architecture="\n".join(f"- {k}: {v}" for k, v in architecture.items()),
        num_parameters=sum(p.numel() for p in trainer.model.parameters()),
        transformers_version=transformers.__version__, torch_version=torch.__version__,
    )
