"""Processor of the MER 2023 system: video files in, the `input_features` of `MER2023ForEmotionValence` out.

The MER 2023 model classifies a clip from deep features of pretrained backbones (HuBERT layers, a vision model),
so its processor holds those backbones: `save_pretrained` writes the extraction settings
(`preprocessor_config.json`) and the backbones with their own feature extractor / image processor in the
sub-folders `audio_backbone/` and `vision_backbone/`; `from_pretrained` (also through `AutoFeatureExtractor` /
`AutoProcessor` with `trust_remote_code=True`, from a folder or a Hub repo) loads them back. A model folder written
by `train_hf.py --model_type mer2023` thus goes from a video file to emotion scores and valence on its own.

Copied into saved folders: it may import only torch, transformers, numpy, av and its sibling files.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from .feature_extraction_mer2023 import MER2023DeepFeatureExtractor
from .media_avcpnet import MediaError

AUDIO_FOLDER, VISION_FOLDER = "audio_backbone", "vision_backbone"
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision")


class MER2023Processor(FeatureExtractionMixin):
    r"""
    Turns videos (paths, bytes or `{"path", "bytes"}` dicts; the soundtrack is read from the same file unless `audio`
    gives one per video) into `input_features` `(batch, sum(feature_sizes))` float32 for `MER2023ForEmotionValence`,
    with a [`MER2023DeepFeatureExtractor`] over the saved backbones.

    `skip_bad_files=True`: clips that cannot be decoded are left out; the `BatchFeature` then has `kept_indices`
    and `errors` (input position -> message naming the file), as `AVCPNetProcessor`. `training` is accepted for
    interface parity and ignored (the features are deterministic).
    """

    model_input_names = ["input_features"]

    def __init__(self, audio_layers: Optional[list[int]] = None, num_frames: int = 8,
                 vision_layer: Optional[int] = None, sampling_rate: Optional[int] = None,
                 audio_name: Optional[str] = None, vision_name: Optional[str] = None,
                 extractor: Optional[MER2023DeepFeatureExtractor] = None, **kwargs):
        super().__init__(**kwargs)
        self.audio_layers = None if audio_layers is None else [int(layer) for layer in audio_layers]
        self.num_frames, self.vision_layer, self.sampling_rate = num_frames, vision_layer, sampling_rate
        self.audio_name, self.vision_name = audio_name, vision_name
        self.extractor = extractor

    @classmethod
    def from_extractor(cls, extractor: MER2023DeepFeatureExtractor) -> "MER2023Processor":
        """The processor of the features an extractor computes (the one a model was trained on)."""
        return cls(audio_layers=extractor.audio_layers if extractor.audio_model is not None else None,
                   num_frames=extractor.num_frames, vision_layer=extractor.vision_layer,
                   sampling_rate=extractor.sampling_rate, audio_name=extractor.audio_name,
                   vision_name=extractor.vision_name, extractor=extractor)

    # ---- saving and loading (settings + backbones) ----

    def to_dict(self) -> dict[str, Any]:
        extractor, self.extractor = self.extractor, None  # not serialisable: saved as backbone folders
        try:
            output = super().to_dict()
        finally:
            self.extractor = extractor
        output.pop("extractor", None)
        return output

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs):
        files = super().save_pretrained(save_directory, **kwargs)
        extractor = self._require_extractor()
        for folder, model, processor in (
            (AUDIO_FOLDER, extractor.audio_model, extractor.audio_feature_extractor),
            (VISION_FOLDER, extractor.vision_model, extractor.image_processor),
        ):
            if model is not None:
                model.save_pretrained(os.path.join(save_directory, folder))
                if processor is not None:
                    processor.save_pretrained(os.path.join(save_directory, folder))
        if push_to_hub:
            from huggingface_hub import HfApi

            api = HfApi(token=kwargs.get("token"))
            repo_id = api.create_repo(kwargs.get("repo_id", os.path.basename(os.path.abspath(save_directory))),
                                      exist_ok=True).repo_id
            api.upload_folder(repo_id=repo_id, folder_path=save_directory)
        return files

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "MER2023Processor":
        hub = {key: kwargs[key] for key in HUB_KWARGS if kwargs.get(key) is not None}
        kwargs.pop("trust_remote_code", None)
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)

        def load(loader, folder: str, optional: bool):
            try:
                return loader.from_pretrained(pretrained_model_name_or_path, subfolder=folder, **hub)
            except (OSError, ValueError, KeyError):
                if optional:
                    return None
                raise

        audio_model = load(AutoModel, AUDIO_FOLDER, optional=processor.audio_name is None)
        vision_model = load(AutoModel, VISION_FOLDER, optional=processor.vision_name is None)
        processor.extractor = MER2023DeepFeatureExtractor(
            audio_model=audio_model, audio_layers=processor.audio_layers,
            audio_feature_extractor=load(AutoFeatureExtractor, AUDIO_FOLDER, True) if audio_model else None,
            vision_model=vision_model,
            image_processor=load(AutoImageProcessor, VISION_FOLDER, True) if vision_model else None,
            vision_layer=processor.vision_layer, num_frames=processor.num_frames,
            sampling_rate=processor.sampling_rate, audio_name=processor.audio_name,
            vision_name=processor.vision_name)
        return processor

    def _require_extractor(self) -> MER2023DeepFeatureExtractor:
        if self.extractor is None:
            raise ValueError("this MER2023Processor has no backbones: build it with from_extractor or from_pretrained")
        return self.extractor

    # ---- features ----

    def __call__(self, videos=None, audio=None, training: bool = False, return_tensors: Optional[str] = "pt",
                 skip_bad_files: bool = False, **kwargs) -> BatchFeature:
        del training  # deterministic features
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)} for {type(self).__name__}")
        extractor = self._require_extractor()
        videos = list(videos) if isinstance(videos, (list, tuple)) else [videos]
        audio = list(audio) if isinstance(audio, (list, tuple)) else [audio] * len(videos)
        rows, kept, errors = [], [], {}
        for position, (video, soundtrack) in enumerate(zip(videos, audio)):
            try:  # one clip at a time, so that one bad file names itself and spares the others
                features = extractor({"video": [video], "audio": [soundtrack or ""]})
            except MediaError as error:
                if not skip_bad_files:
                    raise
                errors[position] = str(error)
                continue
            rows.append(torch.from_numpy(features["input_features"]))
        if not rows:
            size = sum(extractor.feature_sizes)
            rows = [torch.zeros(0, size)]
        kept = [position for position in range(len(videos)) if position not in errors]
        batch = BatchFeature({"input_features": torch.cat(rows).float()}, tensor_type=return_tensors)
        batch.kept_indices, batch.errors = kept, errors
        return batch


__all__ = ["MER2023Processor"]
