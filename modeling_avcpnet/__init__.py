# ruff: noqa: F401  (the TYPE_CHECKING imports below are exported through the lazily built __all__)
"""AV-CPNet and the MER 2023 system for transformers: configs, models, processors, pipeline, Auto registration.

The package imports lazily (PEP 562, like transformers' own ``_LazyModule``): ``import modeling_avcpnet`` and the
label constants in ``modeling_avcpnet.labels`` load neither torch nor transformers, so dataset preparation stays
light. The first time a config, model, processor or pipeline name is taken from the package
(``from modeling_avcpnet import AVCPNetConfig``), the model stack is imported and both model types are registered
with the Auto classes and the ``audio-visual-emotion-classification`` pipeline task (see ``registration.py``;
``modeling_avcpnet.register_auto_classes()`` does it explicitly).

The files at the top of the package are the ones a saved model's Hub repository gets (relative imports only, so that
they also work when copied and loaded with ``trust_remote_code``), plus this file and ``registration.py``; the
library and the applications are subpackages (``training``, ``inference``, ``apps``, ``convert``, ``mer2023``).
Modules that used to sit at the top keep their old import paths (``modeling_avcpnet.cli``,
``modeling_avcpnet.timeline``, ...: see ``MOVED_MODULES``): importing one gives the module at its new place, and
``python -m`` with an old path runs it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from typing import TYPE_CHECKING, Any

from .labels import EMOTIONS_LABELS, EMOTIONS_POLARITY, MER2023_LABELS, POLARITIES
from .registration import register_auto_classes

# public name -> submodule that defines it (all but the media layer need torch and transformers).
_LAZY_NAMES = {
    "configuration_avcpnet": ["AVCPNetConfig"],
    "configuration_mer2023": ["MER2023Config"],
    "mer2023.decision_fusion": ["MER2023DecisionFusion"],
    "feature_extraction_avcpnet": ["AVCPNetFeatureExtractor"],
    "feature_extraction_mer2023": ["MER2023DeepFeatureExtractor"],
    "loss_avcpnet": ["EPCELoss", "compute_multitask_loss", "ep_ce_loss"],
    "media_avcpnet": ["FrameFolderReader", "MediaError", "MediaReader", "MissingAudioWarning", "VIDEO_EXTENSIONS",
                      "VideoDecodingError", "load_audio", "probe_media"],
    "mer2023.metrics": ["compute_mer2023_metrics", "mer2023_metrics"],
    "modeling_avcpnet": [
        "AVCPNetForVideoClassification",
        "AVCPNetModel",
        "AVCPNetModelOutput",
        "AVCPNetPreTrainedModel",
        "AVCPNetVideoClassifierOutput",
    ],
    "modeling_mer2023": ["MER2023ForEmotionValence", "MER2023Model"],
    "pipeline_avcpnet": ["AVCPNetPipeline", "AVCPNetVideoClassificationPipeline", "save_for_pipeline"],
    "pipeline_mer2023": ["MER2023Pipeline"],
    "prediction_avcpnet": ["ClipPredictions", "predict_clips"],
    "processing_mer2023": ["MER2023Processor"],
    "processing_avcpnet": ["AVCPNetProcessor"],
    "inference.timeline": ["EmotionTimeline", "emotion_timeline"],
    "video_processing_avcpnet": ["AVCPNetVideoProcessor"],
}
_MODULE_OF = {name: module for module, names in _LAZY_NAMES.items() for name in names}
_LIGHT_MODULES = {"media_avcpnet"}  # numpy + PyAV only: taking their names registers nothing

__all__ = ["EMOTIONS_LABELS", "EMOTIONS_POLARITY", "MER2023_LABELS", "POLARITIES", "register_auto_classes",
           *sorted(_MODULE_OF)]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module not in _LIGHT_MODULES:
        register_auto_classes()
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# Old path (a module that sat at the top of the package) -> where the module lives now.
MOVED_MODULES = {
    "cli": "apps.cli",
    "demo": "apps.demo",
    "timeline": "inference.timeline",
    "timeline_plot": "inference.timeline_plot",
    "convert_video_swin_weights": "convert.video_swin_weights",
    "convert_resnet_weights": "convert.resnet_weights",
    "face_crop_mer2023": "mer2023.face_crop",
    "augmentation_mer2023": "mer2023.augmentation",
    "decision_fusion_mer2023": "mer2023.decision_fusion",
    "metrics_mer2023": "mer2023.metrics",
}


class _MovedModules:
    """Import finder and loader of the old paths in `MOVED_MODULES`: `import modeling_avcpnet.cli` gives the module
    at its new place (one module object under both names), and `python -m modeling_avcpnet.cli` runs it."""

    def __init__(self):
        self._specs = {}  # old name -> the moved module's own spec (the import system overwrites `__spec__`)

    @staticmethod
    def _new_name(fullname: str) -> str | None:
        package, _, name = fullname.rpartition(".")
        return f"{__name__}.{MOVED_MODULES[name]}" if package == __name__ and name in MOVED_MODULES else None

    def find_spec(self, fullname, path=None, target=None):
        new_name = self._new_name(fullname)
        return None if new_name is None else importlib.machinery.ModuleSpec(fullname, self, origin=new_name)

    def create_module(self, spec):
        module = importlib.import_module(spec.origin)
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self._specs.pop(module.__spec__.name)  # the module keeps its own name and spec

    def get_code(self, fullname):
        """What `python -m OLD_PATH` runs (runpy asks the loader for code): the module at its new place."""
        return compile(f"import runpy\nrunpy.run_module({self._new_name(fullname)!r}, run_name='__main__', "
                       "alter_sys=True)\n", f"<{fullname}>", "exec")


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # first: an old path is never found as a stale file of another checkout


if TYPE_CHECKING:  # static analysers and IDEs see the real names (exported through the lazy __all__)
    from .configuration_avcpnet import AVCPNetConfig
    from .configuration_mer2023 import MER2023Config
    from .mer2023.decision_fusion import MER2023DecisionFusion
    from .feature_extraction_avcpnet import AVCPNetFeatureExtractor
    from .feature_extraction_mer2023 import MER2023DeepFeatureExtractor
    from .loss_avcpnet import EPCELoss, compute_multitask_loss, ep_ce_loss
    from .media_avcpnet import (
        VIDEO_EXTENSIONS,
        FrameFolderReader,
        MediaError,
        MediaReader,
        VideoDecodingError,
        load_audio,
        probe_media,
    )
    from .mer2023.metrics import compute_mer2023_metrics, mer2023_metrics
    from .modeling_avcpnet import (
        AVCPNetForVideoClassification,
        AVCPNetModel,
        AVCPNetModelOutput,
        AVCPNetPreTrainedModel,
        AVCPNetVideoClassifierOutput,
    )
    from .modeling_mer2023 import MER2023ForEmotionValence, MER2023Model
    from .pipeline_avcpnet import AVCPNetPipeline, AVCPNetVideoClassificationPipeline, save_for_pipeline
    from .pipeline_mer2023 import MER2023Pipeline
    from .prediction_avcpnet import ClipPredictions, predict_clips
    from .processing_mer2023 import MER2023Processor
    from .processing_avcpnet import AVCPNetProcessor, MissingAudioWarning
    from .inference.timeline import EmotionTimeline, emotion_timeline
    from .video_processing_avcpnet import AVCPNetVideoProcessor
