"""Every folder a model of this package is saved to is a complete Hub repository.

`complete_hub_repo` runs inside the models' `save_pretrained` (so Trainer checkpoints, the final `output_dir`,
`push_to_hub` uploads and the converters' outputs all get it) and adds what `PreTrainedModel.save_pretrained`
alone does not write:

- the `audio-visual-emotion-classification` pipeline: `config.custom_pipelines` naming the model type's pipeline
  class, and that class's file with the siblings it imports, so that `pipeline(task, model=folder_or_repo_id,
  trust_remote_code=True)` works where the package is not installed;
- a processor (made from the model config) when the folder has none yet: a Trainer saves its own processor after the
  model and so replaces it;
- a short model card (`README.md`) when the folder has none: `train_hf.py` writes the full card with the results
  at the end of a run.

Copied into saved folders: it may import only torch, transformers, huggingface_hub and its sibling files.
"""

from __future__ import annotations

import os
from typing import Any, Callable

PIPELINE_TASK = "audio-visual-emotion-classification"
# Files that `ProcessorMixin.save_pretrained` (and the older per-component layout) leave in a model folder.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json")


def add_pipeline_entry(config, pipeline_class: type) -> None:
    """Name `pipeline_class`'s tasks (its `custom_pipelines()`: ours, and `video-classification` where the model serves
    it) in `config.custom_pipelines` (written to config.json by the save that follows), as `Pipeline.save_pretrained`
    does for a registered custom pipeline."""
    config.custom_pipelines = {**(getattr(config, "custom_pipelines", None) or {}), **pipeline_class.custom_pipelines()}


def has_processor(folder: str | os.PathLike) -> bool:
    return any(os.path.isfile(os.path.join(folder, name)) for name in PROCESSOR_FILES)


def save_complete_repo(model, save: Callable, save_directory: str | os.PathLike, *args, pipeline_class: type,
                       make_processor: Callable[[Any], Any] | None = None,
                       card_text: Callable[[Any], str] | None = None, push_to_hub: bool = False, **kwargs) -> Any:
    """`model.save_pretrained` made complete: `save` is the base class's `save_pretrained` (called without
    `push_to_hub`, whose upload would come before the files added here); then `complete_hub_repo`; then, with
    `push_to_hub=True`, the whole folder is uploaded (`repo_id`, `commit_message`, `private`, `create_pr` and `token`
    as in transformers)."""
    hub_kwargs = {key: kwargs.pop(key) for key in ("repo_id", "commit_message", "private", "create_pr")
                  if key in kwargs}
    add_pipeline_entry(model.config, pipeline_class)
    result = save(save_directory, *args, **kwargs)
    if kwargs.get("is_main_process", True):
        complete_hub_repo(model, save_directory, pipeline_class, make_processor, card_text)
        if push_to_hub:
            from huggingface_hub import HfApi

            api = HfApi(token=kwargs.get("token"))
            repo_id = api.create_repo(hub_kwargs.pop("repo_id", os.path.basename(os.path.abspath(save_directory))),
                                      private=hub_kwargs.pop("private", None), exist_ok=True).repo_id
            api.upload_folder(repo_id=repo_id, folder_path=save_directory, **hub_kwargs)
    return result


def complete_hub_repo(model, save_directory: str | os.PathLike, pipeline_class: type,
                      make_processor: Callable[[Any], Any] | None, card_text: Callable[[Any], str] | None = None) -> None:
    """After `model.save_pretrained(save_directory)`: copy the pipeline file, save `make_processor(config)` when the
    folder has no processor, and write `card_text(config)` as README.md when the folder has no card."""
    from transformers.dynamic_module_utils import custom_object_save

    custom_object_save(pipeline_class, save_directory)  # the file and the siblings it imports
    if make_processor is not None and not has_processor(save_directory):
        make_processor(model.config).save_pretrained(save_directory)
    card_path = os.path.join(save_directory, "README.md")
    if card_text is not None and not os.path.isfile(card_path):
        with open(card_path, "w", encoding="utf-8") as handle:
            handle.write(card_text(model.config))


def minimal_card(config, title: str, summary: str, tags: list[str], extra_rows: dict[str, str] | None = None,
                 pipeline_tag: str | None = "video-classification") -> str:
    """A short model card: metadata the Hub renders, the labels, and how to use the folder."""
    from huggingface_hub import ModelCard, ModelCardData

    id2label = {int(key): value for key, value in config.id2label.items()}
    polarity = getattr(config, "label2polarity", None) or {}
    rows = "\n".join(f"| {index} | {id2label[index]} | {polarity.get(id2label[index], '-')} |"
                     for index in sorted(id2label))
    extra = "".join(f"- {key}: {value}\n" for key, value in (extra_rows or {}).items())
    data = ModelCardData(library_name="transformers", pipeline_tag=pipeline_tag, tags=tags)
    body = f"""---
{data.to_yaml()}
---

# {title}

{summary}

This card was written by `save_pretrained` (a checkpoint, a converted model, or a run without a results card).

## Labels

| id | label | polarity |
|---|---|---|
{rows}

{extra}
## Use

```python
from transformers import pipeline

classifier = pipeline("{PIPELINE_TASK}", model="<this folder or repo id>", trust_remote_code=True)
classifier("clip.mp4")
```
"""
    return str(ModelCard(body))


__all__ = ["PIPELINE_TASK", "PROCESSOR_FILES", "add_pipeline_entry", "complete_hub_repo",
           "has_processor", "minimal_card", "save_complete_repo"]
