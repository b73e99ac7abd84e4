"""What a prediction is: a model called on a batch of processed clips, and the numbers every consumer reads from it.

`predict_clips(model, inputs)` is the one place where a model of this package is called on clips for inference; the
pipelines (`pipeline_avcpnet.py`, `pipeline_mer2023.py`), `avcpnet predict`, the emotion timeline and the demo all
call it. It returns [`ClipPredictions`]: the class probabilities of the fused head, their polarity sums, each
branch's own probabilities (AV-CPNet), whether each clip had audio, and the valence estimate (MER 2023).
`polarity_probabilities` is the one place where class probabilities are summed per polarity, and `clip_result` the
one place where a clip's probabilities become the result dict of the `audio-visual-emotion-classification` task.

Copied into saved folders with the pipelines: it may import only torch and its sibling files.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .labels import POLARITIES

BRANCH_LOGITS = {"visual": "visual_logits", "audio": "audio_logits"}  # branch -> its field of the model output


@dataclass
class ClipPredictions:
    """What a model predicts for a batch of `B` clips over `L` labels. Every tensor but `logits` is float32 (bool for
    `has_audio`) on the CPU.

    logits: `(B, L)` the fused head's logits as the model returned them (its dtype, its device).
    probabilities: `(B, L)` their softmax.
    polarity_probabilities: `(B, 3)` the summed probabilities of each polarity's labels (`POLARITIES` order).
    branch_probabilities: `{"visual": (B, L), "audio": (B, L)}` what each branch's own head predicts, for the
        branches the model has (none for MER 2023 models and single-modality AV-CPNet models).
    has_audio: `(B,)` whether each clip had audio (the inputs' `audio_mask`; True for every clip of a model whose
        processor gives no mask).
    valence: `(B,)` the valence estimate of MER 2023 models, else None.
    polarity_ids: the polarity index of each label id (`config.polarity_ids`).
    """

    logits: torch.Tensor
    probabilities: torch.Tensor
    polarity_probabilities: torch.Tensor
    branch_probabilities: dict[str, torch.Tensor]
    has_audio: torch.Tensor
    valence: Optional[torch.Tensor]
    polarity_ids: list[int]

    def result(self, index: int, id2label: dict, top_k: int, branch: Optional[str] = None) -> dict[str, Any]:
        """[`clip_result`] of clip `index`: of the fused head, or of `branch` ("visual" or "audio")."""
        if branch is None:
            probabilities, polarity = self.probabilities[index], self.polarity_probabilities[index]
        else:
            probabilities = self.branch_probabilities[branch][index]
            polarity = polarity_probabilities(probabilities, self.polarity_ids)
        return clip_result(probabilities, polarity, bool(self.has_audio[index]), id2label, top_k)


def polarity_probabilities(probabilities: torch.Tensor, polarity_ids) -> torch.Tensor:
    """`(..., num_labels)` class probabilities -> `(..., 3)`: for each polarity (`POLARITIES` order), the sum of the
    probabilities of its labels; `polarity_ids` gives each label id's polarity index (`config.polarity_ids`)."""
    index = torch.as_tensor(list(polarity_ids), dtype=torch.long, device=probabilities.device)
    sums = probabilities.new_zeros(*probabilities.shape[:-1], len(POLARITIES))
    return sums.index_add_(-1, index, probabilities)


def model_inputs(model, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of a processor's output that `model`'s forward takes, on the model's device, floating ones in its
    dtype (the model would cast them at its input anyway)."""
    accepted = inspect.signature(getattr(model, "_orig_mod", model).forward).parameters  # _orig_mod: torch.compile
    device, dtype = model.device, model.dtype
    return {key: value.to(device, dtype) if value.is_floating_point() else value.to(device)
            for key, value in inputs.items() if key in accepted and isinstance(value, torch.Tensor)}


def predict_clips(model, inputs: dict[str, Any]) -> ClipPredictions:
    """Run `model` (an AV-CPNet or MER 2023 model for video classification) in inference mode on `inputs`, a batch of
    the processor's output (other keys are ignored), and read its predictions."""
    with torch.inference_mode():
        outputs = model(**model_inputs(model, inputs))
    logits = outputs.logits
    batch_size = logits.shape[0]

    def softmax(values: torch.Tensor) -> torch.Tensor:
        return values.detach().float().cpu().softmax(-1)

    probabilities = softmax(logits)
    polarity_ids = list(model.config.polarity_ids)
    audio_mask = inputs.get("audio_mask")
    has_audio = (torch.ones(batch_size, dtype=torch.bool) if audio_mask is None
                 else torch.as_tensor(audio_mask).detach().cpu().bool().reshape(batch_size))
    valence = getattr(outputs, "valence", None)
    return ClipPredictions(
        logits=logits,
        probabilities=probabilities,
        polarity_probabilities=polarity_probabilities(probabilities, polarity_ids),
        branch_probabilities={branch: softmax(getattr(outputs, field)) for branch, field in BRANCH_LOGITS.items()
                              if getattr(outputs, field, None) is not None},
        has_audio=has_audio,
        valence=None if valence is None else valence.detach().float().cpu().reshape(batch_size),
        polarity_ids=polarity_ids,
    )


def clip_result(probabilities: torch.Tensor, polarity: torch.Tensor, has_audio: bool, id2label: dict,
                top_k: int) -> dict[str, Any]:
    """One clip's result as the `audio-visual-emotion-classification` task returns it, from its `(L,)` class
    probabilities and `(3,)` polarity probabilities: `label` and `score` (the most likely class), `labels` (the
    `top_k` classes with their probabilities, best first), `polarity` and `polarity_score` (the polarity with the
    largest summed probability, and that sum), `polarity_scores` (all three), `has_audio`, `error` (None)."""
    scores, ids = probabilities.topk(min(top_k, probabilities.numel()))
    labels = [{"label": id2label[i], "score": s} for s, i in zip(scores.tolist(), ids.tolist())]
    polarity_id = int(polarity.argmax())
    return {
        "label": labels[0]["label"],
        "score": labels[0]["score"],
        "labels": labels,
        "polarity": POLARITIES[polarity_id],
        "polarity_score": float(polarity[polarity_id]),
        "polarity_scores": dict(zip(POLARITIES, polarity.tolist())),
        "has_audio": has_audio,
        "error": None,
    }


__all__ = ["ClipPredictions", "clip_result", "model_inputs", "polarity_probabilities", "predict_clips"]
