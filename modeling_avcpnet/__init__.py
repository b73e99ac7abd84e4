"""AV-CPNet and the MER 2023 system for transformers: configs, models, processor, pipeline, Auto registration.

Importing this package registers the ``avcpnet`` and ``mer2023`` model types with the Auto classes and the
``audio-visual-emotion-classification`` pipeline task. The files inside use relative imports only, so that they also
work when copied into a Hub repository and loaded with ``trust_remote_code``.
"""

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
from .decision_fusion_mer2023 import MER2023DecisionFusion
from .feature_extraction_avcpnet import AVCPNetFeatureExtractor
from .feature_extraction_mer2023 import MER2023DeepFeatureExtractor
from .loss_avcpnet import EPCELoss, compute_multitask_loss, ep_ce_loss
from .metrics_mer2023 import compute_mer2023_metrics, mer2023_metrics
from .modeling_avcpnet import (
    AVCPNetForVideoClassification,
    AVCPNetModel,
    AVCPNetModelOutput,
    AVCPNetPreTrainedModel,
    AVCPNetVideoClassifierOutput,
)
from .modeling_mer2023 import MER2023ForEmotionValence, MER2023Model
from .processing_avcpnet import AVCPNetProcessor, MissingAudioWarning
from .video_decoding_avcpnet import VideoDecodingError
from .video_processing_avcpnet import AVCPNetVideoProcessor

# AV-CPNet. `save_pretrained` copies each class's file and the modules it imports relatively, and writes `auto_map`
# entries (AVCPNetPreTrainedModel.save_pretrained maps both model classes, so either folder loads with both).
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

# Registers the pipeline task on import (needs the model classes above).
from .pipeline_avcpnet import AVCPNetPipeline, save_for_pipeline  # noqa: E402

__all__ = [
    "AVCPNetConfig",
    "AVCPNetFeatureExtractor",
    "AVCPNetForVideoClassification",
    "AVCPNetModel",
    "AVCPNetModelOutput",
    "AVCPNetPipeline",
    "AVCPNetPreTrainedModel",
    "AVCPNetProcessor",
    "AVCPNetVideoClassifierOutput",
    "AVCPNetVideoProcessor",
    "EPCELoss",
    "MER2023Config",
    "MER2023DecisionFusion",
    "MER2023DeepFeatureExtractor",
    "MER2023ForEmotionValence",
    "MER2023Model",
    "MissingAudioWarning",
    "VideoDecodingError",
    "compute_mer2023_metrics",
    "compute_multitask_loss",
    "ep_ce_loss",
    "mer2023_metrics",
    "save_for_pipeline",
]
