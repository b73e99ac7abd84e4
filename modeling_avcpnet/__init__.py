"""AV-CPNet for transformers: config, model, processor, Auto registration.

Importing this package registers the ``avcpnet`` model type with the Auto classes. The files inside use relative
imports only, so that they also work when copied into a Hub repository and loaded with ``trust_remote_code``.
"""

from transformers import AutoConfig

from .configuration_avcpnet import AVCPNetConfig

AutoConfig.register("avcpnet", AVCPNetConfig, exist_ok=True)
AVCPNetConfig.register_for_auto_class("AutoConfig")

# --- model (issue 2): AutoModel / AutoModelForVideoClassification registration goes here ---
from transformers import AutoModel as _AutoModel2, AutoModelForVideoClassification as _AutoModelForVideoClassification2  # noqa: E402

from .loss_avcpnet import EPCELoss, compute_multitask_loss, ep_ce_loss  # noqa: E402,F401
from .modeling_avcpnet import (  # noqa: E402,F401
    AVCPNetForVideoClassification,
    AVCPNetModel,
    AVCPNetModelOutput,
    AVCPNetPreTrainedModel,
    AVCPNetVideoClassifierOutput,
)

_AutoModel2.register(AVCPNetConfig, AVCPNetModel, exist_ok=True)
_AutoModelForVideoClassification2.register(AVCPNetConfig, AVCPNetForVideoClassification, exist_ok=True)
# save_pretrained copies modeling_avcpnet.py and every module it imports relatively (config, Video Swin, loss) and,
# through AVCPNetPreTrainedModel.save_pretrained, maps AutoConfig, AutoModel and AutoModelForVideoClassification.
AVCPNetModel.register_for_auto_class("AutoModel")
AVCPNetForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

# --- processor (issue 7): AutoProcessor / AutoVideoProcessor / AutoFeatureExtractor registration goes here ---
from transformers import AutoFeatureExtractor as _AutoFeatureExtractor  # noqa: E402
from transformers import AutoProcessor as _AutoProcessor  # noqa: E402
from transformers import AutoVideoProcessor as _AutoVideoProcessor  # noqa: E402

from .feature_extraction_avcpnet import AVCPNetFeatureExtractor  # noqa: E402
from .processing_avcpnet import AVCPNetProcessor, MissingAudioWarning  # noqa: E402
from .video_decoding_avcpnet import VideoDecodingError  # noqa: E402
from .video_processing_avcpnet import AVCPNetVideoProcessor  # noqa: E402

_AutoVideoProcessor.register(AVCPNetConfig, AVCPNetVideoProcessor, exist_ok=True)
_AutoFeatureExtractor.register(AVCPNetConfig, AVCPNetFeatureExtractor, exist_ok=True)
_AutoProcessor.register(AVCPNetConfig, AVCPNetProcessor, exist_ok=True)
# save_pretrained then copies the processor files (and the modules they import) and writes the auto_map entries.
AVCPNetVideoProcessor.register_for_auto_class("AutoVideoProcessor")
AVCPNetFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
AVCPNetProcessor.register_for_auto_class("AutoProcessor")

# --- mer2023 (issue 6): its config and model registration goes here ---
from transformers import AutoModel as _AutoModel, AutoModelForVideoClassification as _AutoModelForVideoClassification  # noqa: E402

from .configuration_mer2023 import MER2023Config  # noqa: E402
from .decision_fusion_mer2023 import MER2023DecisionFusion  # noqa: E402
from .feature_extraction_mer2023 import MER2023DeepFeatureExtractor  # noqa: E402
from .metrics_mer2023 import compute_mer2023_metrics, mer2023_metrics  # noqa: E402
from .modeling_mer2023 import MER2023ForEmotionValence, MER2023Model  # noqa: E402

AutoConfig.register("mer2023", MER2023Config, exist_ok=True)
_AutoModel.register(MER2023Config, MER2023Model, exist_ok=True)
# The full system (fusion + decoder + loss weights) classifies a clip from its audio-visual features.
_AutoModelForVideoClassification.register(MER2023Config, MER2023ForEmotionValence, exist_ok=True)
MER2023Config.register_for_auto_class("AutoConfig")
MER2023Model.register_for_auto_class("AutoModel")
MER2023ForEmotionValence.register_for_auto_class("AutoModelForVideoClassification")

__all__ = ["AVCPNetConfig"]

from .pipeline_avcpnet import AVCPNetPipeline, save_for_pipeline  # noqa: E402,F401  (registers the pipeline task)
