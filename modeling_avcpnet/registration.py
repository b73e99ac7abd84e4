"""The one place where the package's model types meet transformers' Auto classes; it also imports
`pipeline_avcpnet.py`, which registers the pipeline task itself (so that its copies in Hub repos do too).

`register_auto_classes()` is idempotent. The package's lazy ``__init__`` calls it the first time a model, config or
processor class is taken from ``modeling_avcpnet``; ``inference.loading`` and ``training.model_setup`` call it.
Once it ran, ``AutoConfig``/``AutoModel``/``AutoProcessor``/... resolve the ``avcpnet`` and ``mer2023`` model types
without ``trust_remote_code``, ``pipeline("audio-visual-emotion-classification")`` is a known task, and
``save_pretrained`` writes ``auto_map`` entries (and copies the model files) so that saved folders also load with
``trust_remote_code=True`` where the package is not installed.
"""

from __future__ import annotations

_registered = False


def register_auto_classes() -> None:
    global _registered
    if _registered:
        return
    from transformers import (
        AutoConfig,
        AutoFeatureExtractor,
        AutoModel,
        AutoModelForVideoClassification,
        AutoProcessor,
        AutoVideoProcessor,
    )

    from .configuration_avcpnet import AVCPNetConfig
    from .configuration_mer2023 import MER2023Config
    from .feature_extraction_avcpnet import AVCPNetFeatureExtractor
    from .modeling_avcpnet import AVCPNetForVideoClassification, AVCPNetModel
    from .modeling_mer2023 import MER2023ForEmotionValence, MER2023Model
    from .processing_avcpnet import AVCPNetProcessor
    from .video_processing_avcpnet import AVCPNetVideoProcessor

    # AV-CPNet. AVCPNetPreTrainedModel.save_pretrained maps both model classes, so either folder loads with both.
    AutoConfig.register("avcpnet", AVCPNetConfig, exist_ok=True)
    AutoModel.register(AVCPNetConfig, AVCPNetModel, exist_ok=True)
    AutoModelForVideoClassification.register(AVCPNetConfig, AVCPNetForVideoClassification, exist_ok=True)
    AutoVideoProcessor.register(AVCPNetConfig, AVCPNetVideoProcessor, exist_ok=True)
    AutoFeatureExtractor.register(AVCPNetConfig, AVCPNetFeatureExtractor, exist_ok=True)
    AutoProcessor.register(AVCPNetConfig, AVCPNetProcessor, exist_ok=True)
    AVCPNetConfig.register_for_auto_class("AutoConfig")
    AVCPNetModel.register_for_auto_class("AutoModel")
    AVCPNetForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")
    AVCPNetVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    AVCPNetFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    AVCPNetProcessor.register_for_auto_class("AutoProcessor")

    # MER 2023: the full system (fusion + decoder + loss weights) classifies a clip from its audio-visual features.
    AutoConfig.register("mer2023", MER2023Config, exist_ok=True)
    AutoModel.register(MER2023Config, MER2023Model, exist_ok=True)
    AutoModelForVideoClassification.register(MER2023Config, MER2023ForEmotionValence, exist_ok=True)
    MER2023Config.register_for_auto_class("AutoConfig")
    MER2023Model.register_for_auto_class("AutoModel")
    MER2023ForEmotionValence.register_for_auto_class("AutoModelForVideoClassification")
    # Its processor holds the feature backbones: video file -> input_features.
    from .processing_mer2023 import MER2023Processor

    AutoFeatureExtractor.register(MER2023Config, MER2023Processor, exist_ok=True)
    AutoProcessor.register(MER2023Config, MER2023Processor, exist_ok=True)
    MER2023Processor.register_for_auto_class("AutoFeatureExtractor")

    # The pipeline file registers its task when imported (its Hub copies do the same through trust_remote_code).
    from . import pipeline_avcpnet  # noqa: F401

    _registered = True
