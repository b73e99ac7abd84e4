"""Inference with saved checkpoints (library code, never copied into Hub repositories).

- `loading`: a checkpoint in an inference mode (float32, bfloat16, int8, compiled), its identity, and the loaders
  of the commands (`load_predictor`, `load_pipeline`);
- `predict` (`avcpnet predict`: files in, one row per file out), `result_files` (its CSV / JSON Lines output,
  resume and merge), `sharding` (this process's share of a multi-process run);
- `timeline`, `timeline_plot`: the emotion timeline of a long video and its pictures.

The names of the former `modeling_avcpnet.inference` module are importable from here.
"""

from .loading import (
    DTYPES,
    QUANTIZATIONS,
    load_for_inference,
    model_identity,
    optimize_for_inference,
    resolve_dtype,
)
from .sharding import ProcessShard

__all__ = ["DTYPES", "ProcessShard", "QUANTIZATIONS", "load_for_inference", "model_identity",
           "optimize_for_inference", "resolve_dtype"]
