"""AV-CPNet losses: the emotion-polarity enhanced cross-entropy (EP-CE, paper eq. 9) and the multi-task sum (eq. 10).

EP-CE multiplies each sample's cross-entropy by `1 + gamma[polarity(y)] * s`, where `s = 1` when the polarity of the
predicted class (argmax) differs from the polarity of the true class `y`, else 0; the weighted losses are then
averaged. With all gammas at 0 it is plain cross-entropy. The weight is a constant per sample (the argmax has no
gradient): EP-CE rescales the cross-entropy gradient of polarity mistakes, it adds no new gradient path.

The multi-task loss (eq. 10) is `w_f * L_fusion + w_v * L_visual + w_a * L_audio` with `config.branch_loss_weights`.
How clips without audio (`audio_mask[i] == False`) count:

- the visual loss averages over every sample;
- the audio loss and the fusion loss average over the samples that have audio only. Such a clip has no audio for
  the audio branch to learn from, and the model classifies it from vision alone (its fused `logits` are its
  `visual_logits`), so counting it in the fusion loss would only count its visual loss twice;
- a branch with no sample left in the batch contributes an exact 0 (connected to the graph, never NaN).

Single-modality configs (`modalities="visual"` or `"audio"`) have one branch: their `logits` are that branch's
logits, the loss is that branch's EP-CE (not weighted: the weights balance branches against each other) and the
returned dict has that branch only. Labels equal to `ignore_index` (-100) are left out like in `F.cross_entropy`.

This file is the one loss implementation: the model's forward and the Trainer's `compute_loss` both call
`compute_multitask_loss`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_avcpnet import BRANCHES, POLARITIES

IGNORE_INDEX = -100


def _as_tensor(values, dtype: torch.dtype, device: torch.device, name: str) -> torch.Tensor:
    if isinstance(values, Mapping):
        missing = [polarity for polarity in POLARITIES if polarity not in values]
        if missing:
            raise ValueError(f"{name}: no value for polarities {missing} (expected keys {POLARITIES})")
        values = [values[polarity] for polarity in POLARITIES]
    return torch.as_tensor(values, dtype=dtype, device=device)


def ep_ce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    polarity_ids: Sequence[int] | torch.Tensor,
    gammas: Mapping[str, float] | Sequence[float] | torch.Tensor,
    reduction: str = "mean",
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    r"""Emotion-polarity enhanced cross-entropy (paper eq. 9).

    Args:
        logits (`torch.Tensor` of shape `(batch, num_labels)`): class scores.
        labels (`torch.Tensor` of shape `(batch,)`): true class ids (`ignore_index` entries are left out).
        polarity_ids (sequence or tensor of `num_labels` ints): polarity index (into `POLARITIES` =
            positive, neutral, negative) of each class id, e.g. `config.polarity_ids`.
        gammas (mapping by polarity name, or 3 values in `POLARITIES` order): penalty of a polarity mistake, by the
            polarity of the true class, e.g. `config.ep_ce_gammas`.
        reduction (`str`): `"mean"` (over the non-ignored samples; 0 when there is none), `"sum"` or `"none"`
            (per-sample losses of shape `(batch,)`, 0 for ignored samples).

    Returns:
        `torch.Tensor`: a scalar, or `(batch,)` for `reduction="none"`. Computed in float32 at least.
    """
    if logits.ndim != 2:
        raise ValueError(f"ep_ce_loss: logits must be (batch, num_labels), got shape {tuple(logits.shape)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"ep_ce_loss: labels must be (batch,) = {tuple(logits.shape[:1])}, got {tuple(labels.shape)}")
    polarity = _as_tensor(polarity_ids, torch.long, logits.device, "polarity_ids")
    if polarity.shape != logits.shape[1:]:
        raise ValueError(f"ep_ce_loss: {polarity.numel()} polarity ids for {logits.shape[1]} classes")
    gamma = _as_tensor(gammas, torch.float32, logits.device, "gammas")
    if gamma.shape != (len(POLARITIES),):
        raise ValueError(f"ep_ce_loss: gammas must give {len(POLARITIES)} values {POLARITIES}, got {gamma.tolist()}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"ep_ce_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")

    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    valid = labels != ignore_index
    safe_labels = labels.masked_fill(~valid, 0)
    cross_entropy = F.cross_entropy(logits, safe_labels, reduction="none")
    true_polarity = polarity[safe_labels]
    predicted_polarity = polarity[logits.detach().argmax(dim=-1)]
    weight = 1.0 + gamma[true_polarity] * (true_polarity != predicted_polarity).to(gamma.dtype)
    losses = (weight * cross_entropy).masked_fill(~valid, 0.0)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / valid.sum().clamp(min=1)


class EPCELoss(nn.Module):
    r"""[`ep_ce_loss`] as a module: `EPCELoss(polarity_ids, gammas)(logits (B, L), labels (B,)) -> loss`.

    `EPCELoss.from_config(config)` reads `config.polarity_ids` and `config.ep_ce_gammas`.
    """

    def __init__(
        self,
        polarity_ids: Sequence[int] | torch.Tensor,
        gammas: Mapping[str, float] | Sequence[float] | torch.Tensor,
        reduction: str = "mean",
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        self.register_buffer("polarity_ids", _as_tensor(polarity_ids, torch.long, None, "polarity_ids"), persistent=False)
        self.register_buffer("gammas", _as_tensor(gammas, torch.float32, None, "gammas"), persistent=False)
        self.reduction = reduction
        self.ignore_index = ignore_index

    @classmethod
    def from_config(cls, config, **kwargs) -> "EPCELoss":
        return cls(config.polarity_ids, config.ep_ce_gammas, **kwargs)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return ep_ce_loss(logits, labels, self.polarity_ids, self.gammas, self.reduction, self.ignore_index)

    def extra_repr(self) -> str:
        return f"gammas={self.gammas.tolist()}, reduction={self.reduction!r}"


def _field(outputs, name: str):
    if isinstance(outputs, Mapping):  # ModelOutput is an OrderedDict holding its non-None fields
        return outputs.get(name)
    return getattr(outputs, name, None)


def _masked_mean(losses: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    # An empty selection gives an exact 0 that stays connected to the graph (no NaN, no unused-parameter surprise).
    return (losses * keep).sum() / keep.sum().clamp(min=1)


def normalize_audio_mask(audio_mask, batch_size: int, device: torch.device | None = None,
                         owner: str = "audio_mask") -> torch.Tensor:
    """`audio_mask` as a `(batch,)` bool tensor on `device` (None = every clip has audio), shape checked.

    The one normalisation of `audio_mask` shared by the model's forward, the loss and the Trainer.
    """
    if audio_mask is None:
        return torch.ones(batch_size, dtype=torch.bool, device=device)
    audio_mask = torch.as_tensor(audio_mask, device=device)
    if audio_mask.shape != (batch_size,):
        raise ValueError(f"{owner}: audio_mask must have shape ({batch_size},) (one flag per clip), got "
                         f"{tuple(audio_mask.shape)}")
    return audio_mask.bool()


def branch_sample_masks(labels: torch.Tensor, audio_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The samples each branch's loss averages over, as `(batch,)` bool masks (see the module docstring):
    labelled clips for `visual`, labelled clips with audio for `fusion` and `audio`."""
    has_label = labels != IGNORE_INDEX
    has_audio = normalize_audio_mask(audio_mask, has_label.shape[0], has_label.device, "compute_multitask_loss")
    with_audio = has_label & has_audio
    return {"fusion": with_audio, "visual": has_label, "audio": with_audio}


def branch_sample_counts(labels: torch.Tensor, audio_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Number of samples each branch's mean loss is over (0-d long tensors): what the Trainer needs to turn the
    branch means of micro-batches into the means of the whole accumulated batch."""
    return {branch: mask.sum() for branch, mask in branch_sample_masks(labels, audio_mask).items()}


def compute_multitask_loss(
    outputs, labels: torch.Tensor, config, audio_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""Multi-task EP-CE loss of AV-CPNet (paper eq. 10), shared by the model's forward and the Trainer.

    Args:
        outputs: an [`AVCPNetVideoClassifierOutput`] (or a mapping / object) with `logits`, `visual_logits`,
            `audio_logits`, each `(batch, num_labels)` or None.
        labels (`torch.Tensor` of shape `(batch,)`): class ids (-100 = ignored).
        config ([`AVCPNetConfig`]): gives `modalities`, `polarity_ids`, `ep_ce_gammas`, `branch_loss_weights`.
        audio_mask (`torch.Tensor` of shape `(batch,)`, *optional*): True where the clip has audio; samples without
            audio are left out of the fusion and audio losses (see the module docstring). None = all have audio.

    Returns:
        `(total, {branch: loss})`: the weighted sum and the loss of each branch present (`fusion`, `visual`,
        `audio`; a branch whose logits are None is left out). Every loss is a mean, never NaN.
    """
    logits = {
        "fusion": _field(outputs, "logits"),
        "visual": _field(outputs, "visual_logits"),
        "audio": _field(outputs, "audio_logits"),
    }
    if config.modalities != "audio_visual":
        # One branch: `logits` is that branch's own logits, not a separate fused prediction.
        logits = {config.modalities: logits[config.modalities] if logits[config.modalities] is not None
                  else logits["fusion"]}
    present = {branch: value for branch, value in logits.items() if value is not None}
    if not present:
        raise ValueError("compute_multitask_loss: outputs carry no logits")
    reference = next(iter(present.values()))
    if getattr(config, "problem_type", None) not in (None, "single_label_classification"):
        raise ValueError(f"compute_multitask_loss: AV-CPNet's EP-CE loss is single-label classification, but "
                         f"config.problem_type is {config.problem_type!r}")
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"compute_multitask_loss: labels must be integer class ids of shape (batch,), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    labels = labels.to(reference.device).long()
    if labels.shape != reference.shape[:1]:
        raise ValueError(f"compute_multitask_loss: labels must be (batch,) = {tuple(reference.shape[:1])}, "
                         f"got {tuple(labels.shape)}")
    samples = branch_sample_masks(labels, audio_mask)

    branch_losses = {}
    for branch in BRANCHES:
        if branch not in present:
            continue
        per_sample = ep_ce_loss(present[branch], labels, config.polarity_ids, config.ep_ce_gammas, reduction="none")
        branch_losses[branch] = _masked_mean(per_sample, samples[branch].to(per_sample.dtype))

    if len(branch_losses) == 1:
        total = next(iter(branch_losses.values()))
    else:
        total = sum(config.branch_loss_weights[branch] * loss for branch, loss in branch_losses.items())
    return total, branch_losses


__all__ = [
    "IGNORE_INDEX",
    "EPCELoss",
    "branch_sample_counts",
    "branch_sample_masks",
    "compute_multitask_loss",
    "ep_ce_loss",
    "normalize_audio_mask",
]
