"""AV-CPNet for transformers: config, model, processor, Auto registration.

Importing this package registers the ``avcpnet`` model type with the Auto classes. The files inside use relative
imports only, so that they also work when copied into a Hub repository and loaded with ``trust_remote_code``.
"""

from transformers import AutoConfig

from .configuration_avcpnet import AVCPNetConfig

AutoConfig.register("avcpnet", AVCPNetConfig, exist_ok=True)
AVCPNetConfig.register_for_auto_class("AutoConfig")

# --- model (issue 2): AutoModel / AutoModelForVideoClassification registration goes here ---

# --- processor (issue 7): AutoProcessor / AutoVideoProcessor / AutoFeatureExtractor registration goes here ---

# --- mer2023 (issue 6): its config and model registration goes here ---

__all__ = ["AVCPNetConfig"]
