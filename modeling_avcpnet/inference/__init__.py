"""Inference with saved checkpoints (library code, never copied into Hub repositories).

- `loading`: a checkpoint in an inference mode (float32, bfloat16, int8, compiled) and its identity;
- `timeline`, `timeline_plot`: the emotion timeline of a long video and its pictures.

The names of the former `modeling_avcpnet.inference` module are importable from here.
"""

from .loading import (
    DTYPES,
    QUANTIZATIONS,
    ProcessShard,
    load_for_inference,
    model_identity,
    optimize_for_inference,
    resolve_dtype,
)

__all__ = ["DTYPES", "ProcessShard", "QUANTIZATIONS", "load_for_inference", "model_identity",
           "optimize_for_inference", "resolve_dtype"]
