"""Pipelines for AV-CPNet: video clips in, emotion labels (and polarity) out, one result per input.

```python
>>> import modeling_avcpnet  # registers the task and the Auto classes
>>> from transformers import pipeline
>>> classifier = pipeline("audio-visual-emotion-classification", model="path/to/checkpoint", trust_remote_code=True)
>>> classifier("clip.mp4")
{'label': 'fear', 'score': 0.41, 'labels': [{'label': 'fear', 'score': 0.41}, ...], 'polarity': 'negative',
 'polarity_score': 0.72, 'polarity_scores': {'positive': 0.2, 'neutral': 0.08, 'negative': 0.72}, 'has_audio': True,
 'error': None}
>>> pipeline("video-classification", model="path/to/checkpoint", trust_remote_code=True)("clip.mp4")
[{'score': 0.41, 'label': 'fear'}, {'score': 0.2, 'label': 'sad'}, ...]
```

Two tasks, two classes:

- `AVCPNetPipeline`, task ``audio-visual-emotion-classification`` (registered on import of the package): the full
  result, with polarity and whether the clip had audio.
- `AVCPNetVideoClassificationPipeline`, for transformers' standard ``video-classification`` task: the built-in
  `VideoClassificationPipeline` (same arguments: `top_k`, `num_frames`, `function_to_apply`; same output: a list of
  `{"score", "label"}`), except that it runs the whole processor, so the soundtrack is read from the same file as the
  frames. An input without a soundtrack of its own (a decoded array, a frame folder, a file without an audio stream)
  is classified from vision alone, with a `MissingAudioWarning` and `audio_mask` False.

A checkpoint folder written by [`save_for_pipeline`] (or `AVCPNetPipeline.save_pretrained`) carries this file and
both tasks in the `custom_pipelines` entry of its `config.json` ([`custom_pipelines`]), so
`pipeline(task, model=folder, trust_remote_code=True)` works for either task, also in a Python process where the
`modeling_avcpnet` package is not installed (transformers looks up `custom_pipelines` before its own tasks).
With model and processor objects, `pipeline(TASK, model=model, processor=processor)` uses the task registered on
import of the package, and `pipeline("video-classification", model=model, processor=processor,
pipeline_class=AVCPNetVideoClassificationPipeline)` the standard one.

Bad inputs never cost the other results. For an input that cannot be decoded (empty, truncated or non-media file,
no video stream, ...: a `MediaError` of the processor) the result is an error entry instead of an exception:

- `audio-visual-emotion-classification`: the same keys as a result, `error` holding the message (which starts
  with the file name: `"clips/bad.mp4: file is empty (0 bytes)"`) and the others None (`labels` empty); a good
  result has `error: None`. These are `avcpnet predict`'s error rows.
- `video-classification`: `[{"score": None, "label": None, "error": message}]` in place of the list of labels.

`on_error="raise"` (a call or construction argument of both pipelines) raises the `MediaError` instead.

This file is copied into checkpoint folders: it may import only torch, transformers and its sibling files.
"""

from __future__ import annotations

import io
import os
import types
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForVideoClassification, AutoProcessor, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator
from transformers.pipelines.video_classification import VideoClassificationPipeline

from .hub_repo_avcpnet import PROCESSOR_FILES, has_processor
from .media_avcpnet import MediaError, describe_source, is_media_error
from .prediction_avcpnet import clip_result, predict_clips

TASK = "audio-visual-emotion-classification"
VIDEO_TASK = "video-classification"
ON_ERROR = ("report", "raise")



def missing_processor_message(model_name_or_path: str) -> str | None:
    """A sentence saying what is missing when the local folder `model_name_or_path` has no processor files, else
    None (also for Hub ids, which cannot be checked without a download)."""
    if not os.path.isdir(model_name_or_path):
        return None
    if has_processor(model_name_or_path):
        return None
    return (
        f"{model_name_or_path} has a model but no processor files (none of {', '.join(PROCESSOR_FILES)}); "
        "save the processor next to the model, e.g. `AVCPNetProcessor.from_model_config(model.config)"
        f".save_pretrained({model_name_or_path!r})`, or use `save_for_pipeline(model, processor, folder)`"
    )


def require_processor(model, processor) -> None:
    """Raise a `ValueError` saying why there is no processor (`pipeline()` swallows processor loading errors)."""
    if processor is not None:
        return
    name = str(getattr(model, "name_or_path", "") or "")
    message = missing_processor_message(name) if name else None
    if message is None and name:
        try:
            AutoProcessor.from_pretrained(name)
        except Exception as error:  # noqa: BLE001 (reported, with its type, in the message below)
            message = f"the processor saved with {name} could not be loaded ({type(error).__name__}: {error})"
    raise ValueError(message or f"no AVCPNetProcessor for {name or 'this model'}: pass `processor=` to the pipeline")


def collate_model_inputs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate per-clip model inputs (each with a batch dimension of 1) into one batch: tensors along the batch
    dimension (all of a key have the same shape: the processor crops and tiles every clip to the config's sizes),
    lists (the per-input `errors`) end to end. An input that failed has no tensors, only its `errors` entry."""
    batch = {}
    for key in dict.fromkeys(key for item in items for key in item):
        values = [item[key] for item in items if key in item]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.cat(values)
        elif isinstance(values[0], list):
            batch[key] = [value for chunk in values for value in chunk]
        else:
            batch[key] = values
    return batch


SUPPORTED_INPUTS = ("a path, bytes, a file object, a decoded (T, H, W, 3) array, a datasets media dict "
                    "{'bytes', 'path'}, or a row / {'video', 'audio'} dict")


def _media_value(value: Any, column: str) -> Any:
    """A media value as the ecosystem hands it -> what the processor reads; None for "no media" (an empty audio
    column). Accepts paths, bytes, file objects, arrays and `datasets` `Video`/`Audio(decode=False)` values
    (`{"bytes": ..., "path": ...}`, bytes None when only the path is stored); raises `MediaError` otherwise."""
    if value is None or (isinstance(value, str) and not value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        if "array" in value and column == "audio":  # a decoded datasets Audio value: the waveform and its rate
            return value
        if not {"bytes", "path"} & set(value):
            raise MediaError(f"<dict with keys {sorted(value)}>", f"not a media value; pass {SUPPORTED_INPUTS}")
        if value.get("bytes") is not None:  # embedded media (a Parquet export), named by its path
            if not len(value["bytes"]):
                raise MediaError(str(value.get("path") or "<0 bytes in memory>"), "no data (0 bytes)")
            return {"bytes": value["bytes"], "path": value.get("path")}
        return os.fspath(value["path"]) if value.get("path") else None
    if type(value).__module__.split(".")[0] == "torchcodec":  # datasets >= 4 decodes media columns with torchcodec
        raise MediaError(f"<{type(value).__name__}>", f"a decoded datasets {column} column; cast it with "
                         f"`ds.cast_column({column!r}, datasets.{column.capitalize()}(decode=False))` first")
    if isinstance(value, (str, bytes, bytearray, memoryview, np.ndarray, torch.Tensor, tuple)):
        return value
    if hasattr(value, "read"):  # a file object
        return value
    raise MediaError(f"<{type(value).__name__}>", f"not a supported input; pass {SUPPORTED_INPUTS}")


def normalize_clip_input(inputs: Any) -> tuple[Any, Any]:
    """`(video, audio)` for one pipeline input, whatever form the ecosystem hands it in:

    - a path (str or `PathLike`), bytes, a file object, a decoded `(T, H, W, 3)` array, a frames folder;
    - a `datasets` `Video`/`Audio(decode=False)` value `{"bytes": ..., "path": ...}` (bytes may be None: the path);
    - a row of a dataset (this project's `load_dataset` splits and their Parquet exports, whose `video` is such a
      dict) or `{"video": ..., "audio": ...}`: `audio` is a separate soundtrack (path, bytes, media dict, or a
      decoded `{"array", "sampling_rate"}`); empty (`""`, None) means the video's own track.

    Raises `MediaError` (reported as the input's error entry by the pipelines) for anything else."""
    if isinstance(inputs, dict) and "video" in inputs:
        if isinstance(inputs["video"], list):
            raise MediaError("<dict of lists>", "a batch of rows (e.g. `ds[:8]`): pass the dataset itself or a "
                             "list of rows (`list(ds)`, `ds.select(range(8))`)")
        video = _media_value(inputs["video"], "video")
        if video is None:
            raise MediaError(str(inputs.get("video_id") or "<row>"), "its 'video' value is empty")
        return video, _media_value(inputs.get("audio"), "audio")
    if isinstance(inputs, dict) and not {"bytes", "path"} & set(inputs):
        raise MediaError(f"<dict with keys {sorted(inputs)}>", f"a dict input needs a 'video' key (a row or "
                         f"{{'video', 'audio'}}) or 'bytes'/'path' (a datasets media value); pass {SUPPORTED_INPUTS}")
    video = _media_value(inputs, "video")
    if video is None:
        raise MediaError(describe_source(inputs) if inputs is not None else "<None>", "no media (empty input)")
    return video, None


def preprocess_clip(processor, inputs, **video_kwargs) -> dict[str, Any]:
    """Model inputs (batch of 1) for one clip, in eval mode. `inputs`: any form `normalize_clip_input` takes.
    Raises `MediaError` for undecodable media or an input of no supported form."""
    video, audio = normalize_clip_input(inputs)
    audio_kwargs = {}
    if isinstance(audio, dict) and "array" in audio:  # a decoded waveform and its rate
        audio, audio_kwargs = np.asarray(audio["array"], dtype=np.float32), {"sampling_rate": audio["sampling_rate"]}
    features = processor(videos=[video], audio=None if audio is None else [audio], training=False,
                         return_tensors="pt", **audio_kwargs, **video_kwargs)
    return dict(features)


def _datasets_kind(inputs: Any) -> str | None:
    """"Dataset" / "IterableDataset" for the `datasets` library's classes (not imported here), else None."""
    for cls in type(inputs).__mro__:
        if cls.__module__.split(".")[0] == "datasets" and cls.__name__ in ("Dataset", "IterableDataset"):
            return cls.__name__
    return None


class _DatasetRows(torch.utils.data.Dataset):
    """The rows of a `datasets.Dataset` as a torch `Dataset` (what the pipelines iterate lazily)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]


class _OneResultPerInput:
    """What both pipelines share: the processor turns each input into model inputs, or into an error entry when its
    media cannot be decoded; batches mix both (`predict_clips` runs the model on the good rows only)."""

    _load_processor = None  # loaded when present; __init__ then says clearly what is missing
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __call__(self, inputs=None, *args, **kwargs):
        """As the built-in pipelines, plus: a `datasets.Dataset` (e.g. a split of this project's Parquet export)
        gives a list of results, one per row, its rows read as the batches need them; a `datasets.IterableDataset`
        an iterator of results."""
        kind = _datasets_kind(inputs)
        if kind == "Dataset":
            return list(super().__call__(_DatasetRows(inputs), *args, **kwargs))
        if kind == "IterableDataset":
            return super().__call__((row for row in inputs), *args, **kwargs)
        return super().__call__(inputs, *args, **kwargs)

    def _check_on_error(self, on_error: str) -> str:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        return on_error

    def _prepare(self, inputs, on_error: str = "report", **video_kwargs) -> dict[str, Any]:
        try:
            features = preprocess_clip(self.processor, inputs, **video_kwargs)
        except ValueError as error:
            if on_error == "raise" or not is_media_error(error):
                raise
            return {"errors": [str(error)]}
        return {**features, "errors": [None]}

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        """Per input: `logits` and `probabilities` `(batch, num_labels)`, `polarity_probabilities` `(batch, 3)`,
        `valence` `(batch,)` for MER 2023 models (NaN for inputs that failed), `audio_mask` `(batch,)`, `errors`."""
        errors = model_inputs.get("errors")
        if errors is None:  # inputs made by `preprocess_clip` directly
            errors = [None] * len(next(value for value in model_inputs.values() if isinstance(value, torch.Tensor)))
        good = [position for position, error in enumerate(errors) if error is None]
        if not good:
            def nan(width: int) -> torch.Tensor:
                return torch.full((len(errors), width), float("nan"))

            num_labels = self.model.config.num_labels
            return {"logits": nan(num_labels), "probabilities": nan(num_labels), "polarity_probabilities": nan(3),
                    "audio_mask": torch.zeros(len(errors), dtype=torch.bool), "errors": errors}
        predictions = predict_clips(self.model, model_inputs)
        outputs = {"logits": predictions.logits, "probabilities": predictions.probabilities,
                   "polarity_probabilities": predictions.polarity_probabilities}
        if predictions.valence is not None:
            outputs["valence"] = predictions.valence
        padded = {}
        for name, value in outputs.items():
            padded[name] = value.new_full((len(errors), *value.shape[1:]), float("nan"))
            padded[name][good] = value
        audio_mask = torch.zeros(len(errors), dtype=torch.bool)
        audio_mask[good] = predictions.has_audio
        return {**padded, "audio_mask": audio_mask, "errors": errors}

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # The base class pads batches with a tokenizer or feature extractor; our clips all have the same shapes,
        # so batching is a concatenation (of the good inputs' tensors).
        dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_model_inputs)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    @staticmethod
    def _error_of(model_outputs: dict[str, Any]) -> str | None:
        errors = model_outputs.get("errors")
        return errors[0] if isinstance(errors, list) else errors  # a list when the loader did not unbatch


class AVCPNetPipeline(_OneResultPerInput, Pipeline):
    """Audio-visual emotion classification of short videos with an AV-CPNet model.

    Inputs: a local file path, the file's bytes, a file-like object, a decoded `(T, H, W, 3)` array (whatever the
    processor takes), a `datasets` media value `{"bytes": ..., "path": ...}`, a dataset row or a dict
    `{"video": ..., "audio": ...}` (a separate soundtrack), a list of any of these, or a `datasets.Dataset` (e.g. a
    split of the Parquet export: a list of results, one per row); see `normalize_clip_input`. An input of no
    supported form gets an error entry like an undecodable file. Each clip is processed in eval mode (centred segments, centre crop); clips without an audio stream get
    zero features and `audio_mask` False, so the model classifies them from vision alone.

    Returns per input a dict: `label` and `score` (the most likely class), `labels` (the `top_k` classes with their
    probabilities, best first), `polarity` and `polarity_score` (the polarity whose classes have the largest summed
    probability, using `config.label2polarity`, and that sum), `polarity_scores` (all three sums), `has_audio`, and
    `error` (None; for an input that cannot be decoded, the message naming the file, with the other keys None).

    Call arguments: `top_k` (default 5, capped at the number of labels), `on_error` (`"report"`, the default, or
    `"raise"`), `batch_size`, `num_workers` (DataLoader workers that run the processor) and `device` at construction,
    as in the built-in pipelines.
    """

    # the class that serves transformers' own `video-classification` task for this model (None: only TASK)
    video_classification_class = "AVCPNetVideoClassificationPipeline"

    @classmethod
    def custom_pipelines(cls) -> dict[str, dict[str, Any]]:
        """The `config.custom_pipelines` entries of a folder saved with this pipeline: TASK (this class) and, where
        the model serves it, `video-classification`, resolved to classes of the saved files (`pt` names the Auto
        class, which finds the model through `config.auto_map`)."""
        entry = {"pt": ["AutoModelForVideoClassification"], "tf": [], "default": None}
        tasks = {TASK: {**entry, "impl": f"{cls.__module__.split('.')[-1]}.{cls.__name__}", "type": "multimodal"}}
        if cls.video_classification_class:
            video_module = __name__.split(".")[-1]
            tasks[VIDEO_TASK] = {**entry, "impl": f"{video_module}.{cls.video_classification_class}", "type": "video"}
        return tasks

    def __init__(self, model, processor=None, **kwargs):
        require_processor(model, processor)
        super().__init__(model=model, processor=processor, **kwargs)

    def _sanitize_parameters(self, top_k=None, on_error=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        preprocess_params = {"on_error": self._check_on_error(on_error)} if on_error is not None else {}
        postprocess_params = {"top_k": top_k} if top_k is not None else {}
        return preprocess_params, {}, postprocess_params

    def preprocess(self, inputs, on_error: str = "report") -> dict[str, Any]:
        return self._prepare(inputs, on_error)

    def postprocess(self, model_outputs: dict[str, Any], top_k: int = 5) -> dict[str, Any]:
        error = self._error_of(model_outputs)
        if error is not None:
            return {"label": None, "score": None, "labels": [], "polarity": None, "polarity_score": None,
                    "polarity_scores": None, "has_audio": None, "error": error}
        return clip_result(model_outputs["probabilities"][0], model_outputs["polarity_probabilities"][0],
                           bool(model_outputs["audio_mask"].reshape(-1)[0]), self.model.config.id2label, top_k)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any):
        """Save the model (a complete Hub repo: its `config.json` names this pipeline's tasks in `custom_pipelines`
        and the folder holds their files, see `hub_repo_avcpnet`) and this pipeline's processor, so that
        `pipeline(task, model=save_directory, trust_remote_code=True)` works without this package installed."""
        self.model.save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)


class AVCPNetVideoClassificationPipeline(_OneResultPerInput, VideoClassificationPipeline):
    """transformers' `VideoClassificationPipeline` for AV-CPNet: the same arguments and output, with the soundtrack
    read from the same file as the frames (see the module docstring). `num_frames`, when given, must equal the
    model's `num_segments * frames_per_segment`; `frame_sampling_rate` is not supported (AV-CPNet samples by
    segments). Bad inputs give error entries (`on_error="raise"` to raise instead)."""

    def __init__(self, model, processor=None, **kwargs):
        require_processor(model, processor)
        # Not VideoClassificationPipeline.__init__: it wants an image or video processor and a model type from
        # transformers' own mapping; this pipeline runs the AV-CPNet processor.
        Pipeline.__init__(self, model=model, processor=processor, **kwargs)

    def _sanitize_parameters(self, top_k=None, num_frames=None, frame_sampling_rate=None, function_to_apply=None,
                             on_error=None):
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(
            top_k=top_k, num_frames=num_frames, frame_sampling_rate=frame_sampling_rate,
            function_to_apply=function_to_apply)
        if on_error is not None:
            preprocess_params["on_error"] = self._check_on_error(on_error)
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, video, num_frames=None, frame_sampling_rate=1, on_error: str = "report") -> dict[str, Any]:
        if frame_sampling_rate not in (None, 1):
            raise ValueError(f"{type(self).__name__}: AV-CPNet samples frames by segments; frame_sampling_rate is not "
                             f"supported (got {frame_sampling_rate})")
        if isinstance(video, str) and video.startswith(("http://", "https://")):  # as the built-in pipeline
            from huggingface_hub.utils import httpx

            video = io.BytesIO(httpx.get(video, follow_redirects=True).content)
        return self._prepare(video, on_error, do_sample_frames=True, num_frames=num_frames)

    def postprocess(self, model_outputs: dict[str, Any], top_k: int = 5, function_to_apply=None):
        error = self._error_of(model_outputs)
        if error is not None:
            return [{"score": None, "label": None, "error": error}]
        return super().postprocess(types.SimpleNamespace(logits=model_outputs["logits"]), top_k=top_k,
                                   function_to_apply=function_to_apply)


def save_for_pipeline(model, processor, save_directory: str | os.PathLike, **kwargs: Any) -> str:
    """Write `model` and `processor` to `save_directory` so that `pipeline(task, model=save_directory,
    trust_remote_code=True)` loads them for `"audio-visual-emotion-classification"` and `"video-classification"`
    (also without this package installed). Returns the folder."""
    pipe = AVCPNetPipeline(model=model, processor=processor, task=TASK, device=model.device)
    pipe.save_pretrained(save_directory, **kwargs)
    return os.fspath(save_directory)


def _register() -> None:
    existing = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if existing is not None and existing["impl"].__name__ == AVCPNetPipeline.__name__:
        return  # a second copy of this file (a checkpoint folder's, through trust_remote_code): keep the first
    # A saved `custom_pipelines` entry names its model classes and transformers resolves them with
    # getattr(transformers, name): so register the Auto class, which finds our model through config.auto_map.
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=AVCPNetPipeline, pt_model=AutoModelForVideoClassification, type="multimodal"
    )


_register()

__all__ = ["AVCPNetPipeline", "AVCPNetVideoClassificationPipeline", "TASK", "VIDEO_TASK",
           "preprocess_clip", "save_for_pipeline"]
