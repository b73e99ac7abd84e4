"""eMotions-family datasets for the Hugging Face ``datasets`` library.

``datasets`` 5.x runs no loading scripts, so each dataset is a ``GeneratorBasedBuilder`` in its own module here,
reached through :func:`load_dataset` (same signature and return types as ``datasets.load_dataset``):

```python
from datasets_emotions import load_dataset, with_processor
ds = load_dataset("emotions", data_dir="/data/eMotions")        # or "caer", "meld", "ekman6", "videoemotion8"
sample = load_dataset("sample")                                 # generated, no data needed
train = with_processor(sample["train"], processor, training=True)
```
"""

from .common import DataDirError, LabelError, SkippedExamplesWarning
from .load import load_dataset, load_dataset_builder
from .registry import BUILDERS
from .transforms import with_processor

__all__ = ["BUILDERS", "DataDirError", "LabelError", "SkippedExamplesWarning", "load_dataset",
           "load_dataset_builder", "with_processor"]
