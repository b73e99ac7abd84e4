"""Deep-feature extraction for the MER 2023 system, with `transformers` backbones, cached through `datasets.map`.

Audio: the hidden states of chosen layers of a speech model loaded with `AutoModel` (HuBERT, WavLM, wav2vec 2.0;
the paper uses HuBERT-large layers 18, 19 and 20), each averaged over time -> one vector per layer.
Visual: frame-level features of any `AutoModel` vision backbone (ViT, ResNet, ...), averaged over the sampled
frames -> one vector per clip.

The output of `MER2023DeepFeatureExtractor.__call__` on a batch is one column per feature plus
`input_features`, their concatenation in `feature_names` order, which is what `MER2023ForEmotionValence` takes.
`map_dataset` runs it once through `datasets.map` with a fingerprint derived from the backbones' weights and the
extraction settings, so a second call (or a later session with the same cache folder) reads the Arrow cache
instead of running the backbones again, and any change of model, layer or setting computes afresh.

Only torch, transformers, numpy and the media layer (`media_avcpnet`) are imported here: `datasets` is used through the dataset object the
caller passes in.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel

from .media_avcpnet import MediaError, MediaReader, load_audio

DEFAULT_SAMPLING_RATE = 16000


def default_audio_layers(num_hidden_layers: int) -> list[int]:
    """The paper's choice for HuBERT-large (layers 18, 19, 20 of 24) carried over to any depth: the three layers
    starting three quarters of the way up (HuBERT-base, 12 layers: 9, 10, 11; a 4-layer test model: 2, 3, 4)."""
    start = max(1, min(num_hidden_layers - 2, round(0.75 * num_hidden_layers)))
    return list(range(start, min(start + 3, num_hidden_layers + 1)))


MediaDecodingError = MediaError  # the name this module used before the media layer was unified


def load_waveform(source: Any, sampling_rate: int = DEFAULT_SAMPLING_RATE) -> np.ndarray:
    """The first audio stream of a file (audio or video) as mono float32 at `sampling_rate`: `(samples,)`, all of
    it. `source`: a path, bytes or a datasets-style `{"path", "bytes"}` dict. Raises `MediaError`."""
    return load_audio(source, sampling_rate)


def evenly_spaced_indices(num_frames: int, count: int) -> np.ndarray:
    """`count` frame indices spread evenly over a clip of `num_frames` frames, first and last included (fewer,
    without repeats, when the clip is shorter)."""
    return np.unique(np.linspace(0, num_frames - 1, count).round().astype(np.int64))


def load_frames(source: Any, num_frames: int = 8) -> np.ndarray:
    """`num_frames` frames spread evenly over a video: `(T, H, W, 3)` uint8 RGB, full size (T < num_frames when the
    clip has fewer frames). Only those frames are decoded. Raises `MediaError`."""
    with MediaReader(source, require_video=True) as reader:
        return reader.read_frames(evenly_spaced_indices(reader.num_frames, num_frames))


def waveform_from_value(audio_value: Any, video_value: Any, sampling_rate: int) -> np.ndarray:
    """A dataset row's audio as mono float32 at `sampling_rate`: decoded `{"array", "sampling_rate"}` (channels
    averaged, resampled) or a 1-D array as is, else a path/bytes decoded; an empty value reads the video's track."""
    if isinstance(audio_value, dict) and "array" in audio_value:
        waveform = np.asarray(audio_value["array"], dtype=np.float32)
        if waveform.ndim == 2:  # (channels, samples)
            waveform = waveform.mean(0)
        rate = int(audio_value.get("sampling_rate") or sampling_rate)
        if rate != sampling_rate:
            import torchaudio.functional as AF  # only needed for already-decoded audio at another rate

            waveform = AF.resample(torch.from_numpy(waveform), rate, sampling_rate).numpy()
        return waveform
    if isinstance(audio_value, np.ndarray):
        return audio_value.astype(np.float32).reshape(-1)
    source = audio_value if audio_value not in (None, "") else video_value
    return load_waveform(source, sampling_rate)


class MER2023DeepFeatureExtractor:
    """Turns clips into the deep features of the MER 2023 system.

    Args:
        audio_model: a speech `PreTrainedModel` returning `hidden_states` (HuBERT, WavLM, ...), or None.
        audio_layers: which hidden states to keep, 1-based layer numbers (0 is the input of the first Transformer
            layer); each becomes a feature `"{audio_name}_layer{n}"` averaged over time. None: three layers that
            fit the model's depth (`default_audio_layers`; 18, 19, 20 for a 24-layer HuBERT-large).
        audio_feature_extractor: the speech model's feature extractor (normalisation); None feeds the waveform
            normalised to zero mean and unit variance.
        vision_model: an image `PreTrainedModel` (ViT, ResNet, ...), or None.
        image_processor: its image processor; None scales frames to [-1, 1] and resizes them to
            `vision_model.config.image_size` when the config has one.
        vision_layer: None for the model's pooled output (`pooler_output`, else the mean of `last_hidden_state`),
            or the index of a hidden state to average spatially.
        num_frames: frames sampled evenly per clip for the visual feature.
        sampling_rate: of the waveforms fed to the speech model (default: its feature extractor's, else 16 kHz).
        audio_column, video_column: dataset columns read by `__call__`: a path, bytes, a `{"path", "bytes"}` dict, or
            already decoded data (`{"array", "sampling_rate"}` / a 1-D array for audio, `(T, H, W, 3)` uint8 for video).
            An empty audio value means "read the audio track of the video".
        device: where the backbones run (default: where they are).
        face_cropper: a callable `(T, H, W, 3) uint8 -> (T, h, w, 3) uint8` applied to each clip's frames before
            the vision backbone, e.g. `modeling_avcpnet.mer2023.face_crop.FaceCropper()` (the paper's OpenFace crop
            stage, offline; see that module); None feeds the full frames.

    Example:

    ```python
    >>> extractor = MER2023DeepFeatureExtractor.from_pretrained(
    ...     audio_model_name_or_path="facebook/hubert-large-ll60k", audio_layers=(18, 19, 20),
    ...     vision_model_name_or_path="microsoft/resnet-50")
    >>> features = extractor.map_dataset(dataset)           # computed once, then read from the cache
    >>> config = MER2023Config(**extractor.config_kwargs())  # matches the feature layout
    ```
    """

    def __init__(
        self,
        audio_model=None,
        audio_layers: Sequence[int] | None = None,
        audio_feature_extractor=None,
        vision_model=None,
        image_processor=None,
        vision_layer: int | None = None,
        num_frames: int = 8,
        sampling_rate: int | None = None,
        audio_name: str | None = None,
        vision_name: str | None = None,
        audio_column: str = "audio",
        video_column: str = "video",
        device: str | torch.device | None = None,
        face_cropper=None,
    ):
        if audio_model is None and vision_model is None:
            raise ValueError("MER2023DeepFeatureExtractor needs an audio_model, a vision_model or both")
        self.audio_model = audio_model.eval() if audio_model is not None else None
        self.vision_model = vision_model.eval() if vision_model is not None else None
        self.audio_feature_extractor = audio_feature_extractor
        self.image_processor = image_processor
        self.audio_layers = []
        if audio_model is not None:
            depth = audio_model.config.num_hidden_layers
            if audio_layers is None:
                audio_layers = default_audio_layers(depth)
            self.audio_layers = [int(layer) for layer in audio_layers]
            bad = [layer for layer in self.audio_layers if not 0 <= layer <= depth]
            if bad or not self.audio_layers:
                raise ValueError(f"audio_layers must be layer numbers in 0..{depth} for this "
                                 f"{audio_model.config.model_type} model, got {list(audio_layers)}")
        self.vision_layer = vision_layer
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate or getattr(audio_feature_extractor, "sampling_rate", DEFAULT_SAMPLING_RATE)
        self.audio_name = audio_name or (audio_model.config.model_type if audio_model is not None else None)
        self.vision_name = vision_name or (vision_model.config.model_type if vision_model is not None else None)
        self.audio_column, self.video_column = audio_column, video_column
        self.face_cropper = face_cropper
        if device is not None:
            for model in (self.audio_model, self.vision_model):
                if model is not None:
                    model.to(device)
        self._feature_sizes: list[int] | None = None
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        audio_model_name_or_path: str | os.PathLike | None = None,
        vision_model_name_or_path: str | os.PathLike | None = None,
        **kwargs,
    ) -> "MER2023DeepFeatureExtractor":
        """Load the backbones with `AutoModel` and their processors with `AutoFeatureExtractor` /
        `AutoImageProcessor` (a folder without a processor falls back to the defaults above)."""
        def optional(loader, path):
            try:
                return loader.from_pretrained(path)
            except (OSError, ValueError, KeyError):
                return None

        audio_model = AutoModel.from_pretrained(audio_model_name_or_path) if audio_model_name_or_path else None
        vision_model = AutoModel.from_pretrained(vision_model_name_or_path) if vision_model_name_or_path else None
        if audio_model is not None and "audio_feature_extractor" not in kwargs:
            kwargs["audio_feature_extractor"] = optional(AutoFeatureExtractor, audio_model_name_or_path)
        if vision_model is not None and "image_processor" not in kwargs:
            kwargs["image_processor"] = optional(AutoImageProcessor, vision_model_name_or_path)
        return cls(audio_model=audio_model, vision_model=vision_model, **kwargs)

    # ----------------------------------------------------------------------------------------------- feature layout
    @property
    def feature_names(self) -> list[str]:
        names = [f"{self.audio_name}_layer{layer}" for layer in self.audio_layers]
        if self.vision_model is not None:
            names.append(self.vision_name)
        return names

    @property
    def feature_modalities(self) -> list[str]:
        return ["audio"] * len(self.audio_layers) + (["visual"] if self.vision_model is not None else [])

    @property
    def feature_sizes(self) -> list[int]:
        """Widths of the features (the visual one is found with one forward pass on a blank frame)."""
        if self._feature_sizes is None:
            sizes = [self.audio_model.config.hidden_size] * len(self.audio_layers)
            if self.vision_model is not None:
                blank = np.zeros((1, 32, 32, 3), dtype=np.uint8)
                sizes.append(int(self.extract_visual([blank])[self.vision_name].shape[-1]))
            self._feature_sizes = sizes
        return self._feature_sizes

    def config_kwargs(self) -> dict[str, list]:
        """`feature_names`, `feature_sizes` and `feature_modalities` for a matching `MER2023Config`."""
        return {"feature_names": self.feature_names, "feature_sizes": self.feature_sizes,
                "feature_modalities": self.feature_modalities}

    # ------------------------------------------------------------------------------------------------- extraction
    def _audio_inputs(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        device = self.audio_model.device
        if self.audio_feature_extractor is not None:
            inputs = self.audio_feature_extractor(waveforms, sampling_rate=self.sampling_rate, return_tensors="pt")
            return {"input_values": inputs["input_values"].to(device)}
        values = torch.from_numpy(np.stack(waveforms)).float()
        values = (values - values.mean(-1, keepdim=True)) / (values.std(-1, keepdim=True) + 1e-7)
        return {"input_values": values.to(device)}

    @torch.inference_mode()
    def extract_audio(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Mono waveforms at `self.sampling_rate` -> `{feature name: (batch, hidden) float32}`, each chosen layer
        averaged over time. Waveforms of equal length share one forward pass; no padding enters the averages."""
        if self.audio_model is None:
            raise ValueError("this extractor has no audio_model")
        waveforms = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
        outputs = {name: [None] * len(waveforms) for name in self.feature_names[: len(self.audio_layers)]}
        by_length: dict[int, list[int]] = {}
        for index, waveform in enumerate(waveforms):
            by_length.setdefault(len(waveform), []).append(index)
        for length, indices in by_length.items():
            hidden = self.audio_model(**self._audio_inputs([waveforms[i] for i in indices]),
                                      output_hidden_states=True).hidden_states
            for layer, name in zip(self.audio_layers, outputs):
                pooled = hidden[layer].mean(1).float().cpu().numpy()
                for row, index in enumerate(indices):
                    outputs[name][index] = pooled[row]
        return {name: np.stack(rows) for name, rows in outputs.items()}

    def _pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        if self.image_processor is not None:
            return self.image_processor(images=list(frames), return_tensors="pt")["pixel_values"]
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        size = getattr(self.vision_model.config, "image_size", None)
        if isinstance(size, int) and pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return pixels

    def _pool_visual(self, outputs) -> torch.Tensor:
        if self.vision_layer is None:
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is not None:
                return pooled.flatten(1)
            hidden = outputs.last_hidden_state
        else:
            hidden = outputs.hidden_states[self.vision_layer]
        # (frames, C, H, W) feature maps or (frames, tokens, C) token sequences.
        return hidden.mean(dim=(2, 3)) if hidden.dim() == 4 else hidden.mean(1)

    @torch.inference_mode()
    def extract_visual(self, videos: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Clips `(T, H, W, 3)` uint8 -> `{vision name: (batch, hidden) float32}`: the backbone's frame-level
        features averaged over the clip's frames. All frames of the batch go through one forward pass."""
        if self.vision_model is None:
            raise ValueError("this extractor has no vision_model")
        pixels = [self._pixel_values(np.asarray(frames)) for frames in videos]
        counts = [len(p) for p in pixels]
        outputs = self.vision_model(pixel_values=torch.cat(pixels).to(self.vision_model.device),
                                    output_hidden_states=self.vision_layer is not None)
        per_frame = self._pool_visual(outputs).float().cpu()
        clips = torch.stack([chunk.mean(0) for chunk in torch.split(per_frame, counts)])
        return {self.vision_name: clips.numpy()}

    # ------------------------------------------------------------------------------------ datasets.map integration
    def _waveform(self, audio_value: Any, video_value: Any) -> np.ndarray:
        return waveform_from_value(audio_value, video_value, self.sampling_rate)

    def _frames(self, video_value: Any) -> np.ndarray:
        frames = video_value if isinstance(video_value, np.ndarray) else load_frames(video_value, self.num_frames)
        return self.face_cropper(frames) if self.face_cropper is not None else frames

    def __call__(self, batch: dict[str, list]) -> dict[str, np.ndarray]:
        """A batch of dataset rows -> one column per feature plus `input_features` (their concatenation)."""
        videos = batch.get(self.video_column)
        audios = batch.get(self.audio_column)
        size = len(videos if videos is not None else audios)
        if videos is None:
            videos = [None] * size
        if audios is None:
            audios = [None] * size
        features: dict[str, np.ndarray] = {}
        if self.audio_model is not None:
            features.update(self.extract_audio([self._waveform(a, v) for a, v in zip(audios, videos)]))
        if self.vision_model is not None:
            features.update(self.extract_visual([self._frames(v) for v in videos]))
        features["input_features"] = np.concatenate([features[name] for name in self.feature_names], axis=1)
        return features

    @property
    def fingerprint(self) -> str:
        """Hash of the backbones (config and weights), processors and extraction settings."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=16)
            settings = {"audio_layers": self.audio_layers, "vision_layer": self.vision_layer,
                        "num_frames": self.num_frames, "sampling_rate": self.sampling_rate,
                        "names": [self.audio_name, self.vision_name], "version": 2}  # 2: upright frames
            if self.face_cropper is not None:  # (absent otherwise, so that earlier caches stay valid)
                settings["face_crop"] = getattr(self.face_cropper, "settings", repr(self.face_cropper))
            digest.update(json.dumps(settings, sort_keys=True).encode())
            for model in (self.audio_model, self.vision_model):
                if model is None:
                    continue
                digest.update(model.config.to_json_string(use_diff=False).encode())
                for name, tensor in sorted(model.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            for processor in (self.audio_feature_extractor, self.image_processor):
                if processor is not None:
                    digest.update(processor.to_json_string().encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def map_dataset(self, dataset, batch_size: int = 8, cache_dir: str | os.PathLike | None = None,
                    load_from_cache_file: bool = True, **map_kwargs):
        """Run the extractor over a `datasets.Dataset` once, caching the result.

        The new fingerprint combines the dataset's and `self.fingerprint`, so the cache is reused exactly when the
        data, the backbones and the settings are the same. Datasets built by a builder cache next to their Arrow
        files; an in-memory dataset caches in `cache_dir` (no caching without one). An `IterableDataset` is
        mapped lazily (nothing to cache).
        """
        if not hasattr(dataset, "cache_files"):  # IterableDataset
            return dataset.map(self, batched=True, batch_size=batch_size, **map_kwargs)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{getattr(dataset, '_fingerprint', '')}|{self.fingerprint}|{batch_size}".encode())
        fingerprint = digest.hexdigest()
        cache_file_name = map_kwargs.pop("cache_file_name", None)
        if cache_file_name is None and cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
            cache_file_name = os.path.join(os.fspath(cache_dir), f"mer2023-features-{fingerprint}.arrow")
        map_kwargs.setdefault("desc", "MER 2023 deep features")
        return dataset.map(self, batched=True, batch_size=batch_size, new_fingerprint=fingerprint,
                           cache_file_name=cache_file_name, load_from_cache_file=load_from_cache_file, **map_kwargs)


__all__ = ["MER2023DeepFeatureExtractor", "MediaDecodingError", "default_audio_layers", "load_frames", "load_waveform"]
