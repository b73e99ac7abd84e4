"""eMotions-family datasets for the Hugging Face ``datasets`` library.

``datasets`` 5.x runs no loading scripts, so each dataset is a ``GeneratorBasedBuilder`` in its own module here,
reached through :func:`load_dataset` (same signature and return types as ``datasets.load_dataset``):

```python
from datasets_emotions import load_dataset, with_processor
ds = load_dataset("emotions", data_dir="/data/eMotions")        # or "caer", "meld", "ekman6", "videoemotion8"
sample = load_dataset("sample")                                 # generated, no data needed
train = with_processor(sample["train"], processor, training=True)
export_to_parquet(sample, "exports/sample", name="sample")    # Parquet + card; plain datasets.load_dataset reads it
```

Command line: `python -m datasets_emotions.export NAME --output DIR [--data-dir ...] [--push-to-hub REPO]`.
"""

from .builder_base import DataDirError, LabelError, SkippedExamplesWarning
from .load import load_dataset, load_dataset_builder
from .registry import BUILDERS
from .transforms import with_processor


def __getattr__(name):
    # imported on first use, so that `python -m datasets_emotions.export` does not find the module pre-imported
    if name in ("export_to_parquet", "push_to_hub"):
        from . import export

        return getattr(export, name)
    raise AttributeError(f"module 'datasets_emotions' has no attribute {name!r}")

__all__ = ["BUILDERS", "DataDirError", "LabelError", "SkippedExamplesWarning", "export_to_parquet", "load_dataset",
           "load_dataset_builder", "push_to_hub", "with_processor"]
