"""The ``audio-visual-emotion-classification`` pipeline: video clips in, emotion labels and polarity out.

```python
>>> import modeling_avcpnet  # registers the task and the Auto classes
>>> from transformers import pipeline
>>> classifier = pipeline("audio-visual-emotion-classification", model="path/to/checkpoint", trust_remote_code=True)
>>> classifier("clip.mp4")
{'label': 'fear', 'score': 0.41, 'labels': [{'label': 'fear', 'score': 0.41}, ...], 'polarity': 'negative',
 'polarity_score': 0.72, 'polarity_scores': {'positive': 0.2, 'neutral': 0.08, 'negative': 0.72}, 'has_audio': True}
```

A checkpoint folder written by [`save_for_pipeline`] (or `AVCPNetPipeline.save_pretrained`) carries this file and a
`custom_pipelines` entry in its `config.json`, so `pipeline(task, model=folder, trust_remote_code=True)` also works
in a Python process where the `modeling_avcpnet` package is not installed. transformers asks for
`trust_remote_code=True` for such a folder even when the package is installed; there, passing
`pipeline_class=AVCPNetPipeline` instead uses the installed code. With model and processor objects,
`pipeline(task, model=model, processor=processor)` uses the task registered on import of the package.

This file is copied into checkpoint folders: it may import only torch, transformers and its sibling files.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForVideoClassification, AutoProcessor, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .configuration_avcpnet import POLARITIES

TASK = "audio-visual-emotion-classification"

# Files that `ProcessorMixin.save_pretrained` (and the older per-component layout) leave in a model folder.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json")


def missing_processor_message(model_name_or_path: str) -> str | None:
    """A sentence saying what is missing when the local folder `model_name_or_path` has no processor files, else
    None (also for Hub ids, which cannot be checked without a download)."""
    if not os.path.isdir(model_name_or_path):
        return None
    if any(os.path.isfile(os.path.join(model_name_or_path, name)) for name in PROCESSOR_FILES):
        return None
    return (
        f"{model_name_or_path} has a model but no processor files (none of {', '.join(PROCESSOR_FILES)}); "
        "save the processor next to the model, e.g. `AVCPNetProcessor.from_model_config(model.config)"
        f".save_pretrained({model_name_or_path!r})`, or use `save_for_pipeline(model, processor, folder)`"
    )


def collate_model_inputs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate per-clip model inputs (each with a batch dimension of 1) into one batch; all tensors of a given
    key have the same shape because the processor crops and tiles every clip to the config's sizes."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        batch[key] = torch.cat(values) if isinstance(values[0], torch.Tensor) else values
    return batch


class AVCPNetPipeline(Pipeline):
    """Audio-visual emotion classification of short videos with an AV-CPNet model.

    Inputs: a local file path, the file's bytes, a file-like object, a decoded `(T, H, W, 3)` array (whatever the
    processor takes), a dict `{"video": ..., "audio": ...}` for a separate soundtrack file, or a list of any of
    these. Each clip is processed in eval mode (centred segments, centre crop); clips without an audio stream get
    zero features and `audio_mask` False, so the model classifies them from vision alone.

    Returns per clip a dict: `label` and `score` (the most likely class), `labels` (the `top_k` classes with their
    probabilities, best first), `polarity` and `polarity_score` (the polarity whose classes have the largest summed
    probability, using `config.label2polarity`, and that sum), `polarity_scores` (all three sums) and `has_audio`.

    Call arguments: `top_k` (default 5, capped at the number of labels), `batch_size`, `num_workers` (DataLoader
    workers that run the processor) and `device` at construction, as in the built-in pipelines. Unreadable media
    raises the processor's error, which names the file.
    """

    _load_processor = None  # loaded when present; __init__ then says clearly what is missing
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, model, processor=None, **kwargs):
        if processor is None:
            # `pipeline()` swallows processor loading errors for optional components: say what went wrong.
            name = str(getattr(model, "name_or_path", "") or "")
            message = missing_processor_message(name) if name else None
            if message is None and name:
                try:
                    AutoProcessor.from_pretrained(name)
                except Exception as error:  # noqa: BLE001 (reported, with its type, in the message below)
                    message = f"the processor saved with {name} could not be loaded ({type(error).__name__}: {error})"
            raise ValueError(
                message or f"no AVCPNetProcessor for {name or 'this model'}: pass `processor=` to the pipeline"
            )
        super().__init__(model=model, processor=processor, **kwargs)
        self._forward_input_names = set(inspect.signature(self.model.forward).parameters)

    def _sanitize_parameters(self, top_k=None, **kwargs):
        postprocess_params = {}
        if top_k is not None:
            postprocess_params["top_k"] = top_k
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        return {}, {}, postprocess_params

    def preprocess(self, inputs, **kwargs) -> dict[str, Any]:
        return preprocess_clip(self.processor, inputs)

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        tensors = {key: value for key, value in model_inputs.items() if key in self._forward_input_names}
        outputs = self.model(**tensors)
        batch_size = outputs.logits.shape[0]
        audio_mask = model_inputs.get("audio_mask")
        if audio_mask is None:
            audio_mask = torch.ones(batch_size, dtype=torch.bool)
        return {"logits": outputs.logits, "audio_mask": audio_mask}

    def polarity_ids(self) -> list[int]:
        """The polarity (index in POLARITIES) of each class id."""
        return self.model.config.polarity_ids

    def postprocess(self, model_outputs: dict[str, torch.Tensor], top_k: int = 5) -> dict[str, Any]:
        config = self.model.config
        probabilities = model_outputs["logits"][0].float().softmax(-1)
        polarity_scores = torch.zeros(len(POLARITIES)).index_add_(
            0, torch.tensor(self.polarity_ids()), probabilities.cpu()
        )
        top_k = min(top_k, probabilities.numel())
        scores, ids = probabilities.topk(top_k)
        labels = [{"label": config.id2label[i], "score": s} for s, i in zip(scores.tolist(), ids.tolist())]
        polarity_id = int(polarity_scores.argmax())
        return {
            "label": labels[0]["label"],
            "score": labels[0]["score"],
            "labels": labels,
            "polarity": POLARITIES[polarity_id],
            "polarity_score": float(polarity_scores[polarity_id]),
            "polarity_scores": dict(zip(POLARITIES, polarity_scores.tolist())),
            "has_audio": bool(model_outputs["audio_mask"].reshape(-1)[0]),
        }

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # The base class pads batches with a tokenizer or feature extractor; our clips all have the same shapes,
        # so batching is a plain concatenation.
        dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_model_inputs)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any):
        """Save the model, this pipeline's code (registered in `config.custom_pipelines`) and the processor, so that
        `pipeline(task, model=save_directory, trust_remote_code=True)` works without this package installed."""
        # The base class would also write the feature extractor on its own; the processor saves all its parts.
        # It also sets `config.custom_pipelines` for the saved config.json; the in-memory config is left as it was,
        # so that a later plain `model.save_pretrained` does not name a pipeline file it does not write.
        config = self.model.config
        had_entry, previous = hasattr(config, "custom_pipelines"), getattr(config, "custom_pipelines", None)
        feature_extractor, self.feature_extractor = self.feature_extractor, None
        try:
            super().save_pretrained(save_directory, **kwargs)
        finally:
            self.feature_extractor = feature_extractor
            if had_entry:
                config.custom_pipelines = previous
            elif hasattr(config, "custom_pipelines"):
                delattr(config, "custom_pipelines")
        self.processor.save_pretrained(save_directory)


def preprocess_clip(processor, inputs) -> dict[str, Any]:
    """Model inputs (batch of 1) for one clip, in eval mode. `inputs` is anything the processor takes as one video,
    or `{"video": ..., "audio": ...}` with a separate soundtrack."""
    audio = None
    if isinstance(inputs, dict):
        if "video" not in inputs:
            raise ValueError(f"a dict input needs a 'video' key (and optionally 'audio'), got keys {sorted(inputs)}")
        audio = inputs.get("audio") or None
        inputs = inputs["video"]
    if isinstance(inputs, os.PathLike):
        inputs = os.fspath(inputs)
    features = processor(
        videos=[inputs], audio=None if audio is None else [audio], training=False, return_tensors="pt"
    )
    return dict(features)


def save_for_pipeline(model, processor, save_directory: str | os.PathLike, **kwargs: Any) -> str:
    """Write `model` and `processor` to `save_directory` so that `pipeline("audio-visual-emotion-classification",
    model=save_directory, trust_remote_code=True)` loads them (also without this package installed). Adds a
    `custom_pipelines` entry to `model.config`. Returns the folder."""
    pipe = AVCPNetPipeline(model=model, processor=processor, task=TASK, device=model.device)
    pipe.save_pretrained(save_directory, **kwargs)
    return os.fspath(save_directory)


def _register() -> None:
    existing = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if existing is not None and existing["impl"].__name__ == AVCPNetPipeline.__name__:
        # A second copy of this file (the one a checkpoint folder carries, imported through trust_remote_code):
        # keep the first registration, but let this class save itself too.
        AVCPNetPipeline._registered_impl = {TASK: {**existing, "impl": AVCPNetPipeline}}
        return
    # A saved `custom_pipelines` entry names its model classes and transformers resolves them with
    # getattr(transformers, name): so register the Auto class, which finds our model through config.auto_map.
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=AVCPNetPipeline, pt_model=AutoModelForVideoClassification, type="multimodal"
    )


_register()

__all__ = ["AVCPNetPipeline", "TASK", "preprocess_clip", "save_for_pipeline"]
