"""The `audio-visual-emotion-classification` pipeline for MER 2023 models: emotion scores and valence per clip.

A folder saved from `MER2023ForEmotionValence` names this class in `config.custom_pipelines`, so
`pipeline("audio-visual-emotion-classification", model=folder_or_repo_id, trust_remote_code=True)` returns it
(the package registers `AVCPNetPipeline` for the task; this class is used through the folder's entry only).

Copied into saved folders: it may import only torch, transformers and its sibling files.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoProcessor

from .pipeline_avcpnet import AVCPNetPipeline


class MER2023Pipeline(AVCPNetPipeline):
    """Like [`AVCPNetPipeline`] (same inputs, per-clip dicts with `label`, `score`, `labels`, `polarity`,
    `polarity_score`, `polarity_scores`, `has_audio`), plus `valence`: the model's valence estimate (the MER 2023
    scale, negative to positive). The processor is the folder's [`MER2023Processor`] (deep features of the saved
    backbones); polarity comes from `config.label2polarity`, else the MER 2023 map."""

    video_classification_class = None  # transformers' `video-classification` task has no valence: not offered

    def __init__(self, model, processor=None, **kwargs):
        feature_extractor = kwargs.pop("feature_extractor", None)
        if processor is None and feature_extractor is not None:
            processor = feature_extractor
        # `pipeline()` loads no MER2023Processor itself (it is not a ProcessorMixin): load the model folder's, with
        # its backbones, also in place of one given without them.
        if getattr(processor, "extractor", True) is None:
            processor = None
        if processor is None and getattr(model, "name_or_path", None):
            processor = AutoProcessor.from_pretrained(model.name_or_path, trust_remote_code=True)
        super().__init__(model=model, processor=processor, **kwargs)

    def postprocess(self, model_outputs: dict[str, torch.Tensor], top_k: int = 5) -> dict[str, Any]:
        result = super().postprocess(model_outputs, top_k)
        valence = None if result["error"] is not None else float(model_outputs["valence"].reshape(-1)[0])
        return {**result, "valence": valence}


__all__ = ["MER2023Pipeline"]
