"""Processor of the MER 2023 system: video files in, the `input_features` of `MER2023ForEmotionValence` out.

The MER 2023 model classifies a clip from deep features of pretrained backbones (HuBERT layers, a vision model),
so its processor holds those backbones: `save_pretrained` writes the extraction settings
(`preprocessor_config.json`) and the backbones with their own feature extractor / image processor in the
sub-folders `audio_backbone/` and `vision_backbone/`; `from_pretrained` (also through `AutoProcessor` /
`AutoFeatureExtractor` with `trust_remote_code=True`, from a folder or a Hub repo) loads them back. A model folder
written by `train_hf.py --model_type mer2023` thus goes from a video file to emotion scores and valence on its own.

How the Auto classes reach the backbones (they differ across transformers releases):
- `AutoProcessor` calls this class's `from_pretrained` because the saved JSON's `auto_map` names the class for
  `AutoProcessor` as well as for `AutoFeatureExtractor` (`to_dict`). Without that entry, `AutoProcessor` falls
  back to `AutoFeatureExtractor`.
- `AutoFeatureExtractor` calls this class's `from_pretrained` up to transformers 5.24; from 5.25 on it reads the
  JSON itself and calls `from_dict(json)`, which is not told where the JSON came from. There is no public hook
  that passes the folder on, so `from_dict` reads it from its caller, `AutoFeatureExtractor.from_pretrained`
  (its `pretrained_model_name_or_path` and hub arguments: see `_auto_feature_extractor_source`). Called from
  anywhere else, `from_dict` gives the settings without backbones, and calling that processor says how to load
  one with its backbones.

Copied into saved folders: it may import only torch, transformers, numpy, av and its sibling files.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Optional

import torch
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from .feature_extraction_mer2023 import MER2023DeepFeatureExtractor
from .media_avcpnet import MediaError

AUDIO_FOLDER, VISION_FOLDER = "audio_backbone", "vision_backbone"
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "proxies")
AUTO_FEATURE_EXTRACTOR_MODULE = "transformers.models.auto.feature_extraction_auto"


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
        # `AutoProcessor` calls `from_pretrained` (which loads the backbones) only through an "AutoProcessor" entry.
        auto_map = output.get("auto_map")
        if isinstance(auto_map, dict) and "AutoFeatureExtractor" in auto_map:
            output["auto_map"] = {**auto_map, "AutoProcessor": auto_map["AutoFeatureExtractor"]}
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
        hub = {key: kwargs[key] for key in (*HUB_KWARGS, "subfolder") if kwargs.get(key) is not None}
        kwargs.pop("trust_remote_code", None)
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if processor.extractor is None:
            processor._load_backbones(pretrained_model_name_or_path, hub)
        return processor

    @classmethod
    def from_dict(cls, feature_extractor_dict: dict[str, Any], **kwargs):
        """The settings of `feature_extractor_dict`; with the backbones when called by `AutoFeatureExtractor.
        from_pretrained` (transformers >= 5.25 builds feature extractors with `from_dict`, see the module
        docstring); `from_pretrained` loads them otherwise."""
        result = super().from_dict(feature_extractor_dict, **kwargs)
        source = cls._auto_feature_extractor_source()
        if source is not None:
            processor = result[0] if isinstance(result, tuple) else result
            processor._load_backbones(*source)
        return result

    @staticmethod
    def _auto_feature_extractor_source() -> Optional[tuple[str, dict[str, Any]]]:
        """(folder or repo id, hub arguments) when `from_dict`'s caller is `AutoFeatureExtractor.from_pretrained`.

        The one place that reads transformers' private state (listed in ARCHITECTURE.md): the local variables of
        that caller. Returns None for any other caller, or when those variables are not there (a later release),
        so that nothing breaks beyond the backbones missing, which calling the processor then reports."""
        frame = inspect.currentframe()
        try:
            # this function <- from_dict <- (a subclass's from_dict, super() calls) <- the caller
            caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
            while caller is not None and caller.f_code.co_name == "from_dict":
                caller = caller.f_back
            if caller is None or caller.f_globals.get("__name__") != AUTO_FEATURE_EXTRACTOR_MODULE:
                return None
            names = caller.f_locals
            source = names.get("pretrained_model_name_or_path")
            if not isinstance(source, (str, os.PathLike)):
                return None
            given = names.get("hub_kwargs") if isinstance(names.get("hub_kwargs"), dict) else names
            hub = {key: given[key] for key in (*HUB_KWARGS, "subfolder") if given.get(key) not in (None, "")}
            return str(source), hub
        finally:
            del frame

    def _load_backbones(self, source: str | os.PathLike, hub: dict[str, Any]) -> None:
        """Load the saved backbones (and their own processors) from `source`'s sub-folders into `extractor`."""
        hub = dict(hub)
        prefix = hub.pop("subfolder", None)

        def load(loader, folder: str, optional: bool):
            try:
                return loader.from_pretrained(source, subfolder=f"{prefix}/{folder}" if prefix else folder, **hub)
            except (OSError, ValueError, KeyError):
                if optional:
                    return None
                raise

        audio_model = load(AutoModel, AUDIO_FOLDER, optional=self.audio_name is None)
        vision_model = load(AutoModel, VISION_FOLDER, optional=self.vision_name is None)
        self.extractor = MER2023DeepFeatureExtractor(
            audio_model=audio_model, audio_layers=self.audio_layers,
            audio_feature_extractor=load(AutoFeatureExtractor, AUDIO_FOLDER, True) if audio_model else None,
            vision_model=vision_model,
            image_processor=load(AutoImageProcessor, VISION_FOLDER, True) if vision_model else None,
            vision_layer=self.vision_layer, num_frames=self.num_frames,
            sampling_rate=self.sampling_rate, audio_name=self.audio_name,
            vision_name=self.vision_name)

    def _require_extractor(self) -> MER2023DeepFeatureExtractor:
        if self.extractor is None:
            raise ValueError(
                "this MER2023Processor has no backbones: build it with MER2023Processor.from_extractor, or load a "
                "saved one with AutoProcessor.from_pretrained(folder_or_repo_id, trust_remote_code=True) or "
                "MER2023Processor.from_pretrained(folder_or_repo_id)")
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
