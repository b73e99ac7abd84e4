"""Loading a checkpoint for inference: fast inference modes, model identity, and the loaders of the commands.

`load_for_inference(path, dtype="bfloat16")` returns a model and its processor ready for CPU or GPU inference;
`load_predictor` (`avcpnet predict`) and `load_pipeline` (the timeline and the demo) wrap it with the checks and
messages of the command line (a `SystemExit` naming what is missing). The modes (measured in
`benchmarks/bench_inference.py`, numbers in `benchmarks/README.md`):

- `dtype="bfloat16"`: weights and activations in bfloat16. On CPUs with AMX/AVX512-BF16 the matrix products and
  convolutions run on oneDNN's bf16 kernels and the window attention stays on PyTorch's fused (flash) SDPA kernel;
  LayerNorm, softmax and the final probabilities accumulate in float32. The processor's frames and MFCC stay
  float32 and are cast at the model input (the patch embedding and the audio stem). On CUDA the same dtype uses
  the fused SDPA kernels of the GPU.
- `quantize="int8"` (evaluated, not offered by `avcpnet predict`): dynamic int8 quantization of the Video Swin's
  `nn.Linear` layers (`torch.ao.quantization.quantize_dynamic`: weights int8, activations quantized per call),
  float32 elsewhere, CPU only. Measured slower than float32 eager here and outside the accuracy guard (max
  probability difference 0.049 > 0.02 on the trained sample checkpoint), so it is kept for the benchmark only.
- `compile=True`: `torch.compile` (inductor) with weight freezing, on top of either; the first batch pays the
  compilation.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
QUANTIZATIONS = ("int8",)


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """`"bfloat16"`, `torch.bfloat16`, `"float32"` or None (float32) -> a torch dtype, with a clear error otherwise."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"inference dtype must be one of {sorted(DTYPES)}, got {dtype}")
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"inference dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[name]


def optimize_for_inference(model: nn.Module, dtype: str | torch.dtype | None = None, quantize: str | None = None,
                           compile: bool = False) -> nn.Module:
    """Put `model` in eval mode in the requested fast mode (see the module docstring); returns the model to call (a
    quantized copy or a compiled wrapper where the mode needs one)."""
    dtype = resolve_dtype(dtype)
    model.eval()
    if quantize is not None:
        if quantize not in QUANTIZATIONS:
            raise ValueError(f"quantize must be one of {QUANTIZATIONS} or None, got {quantize!r}")
        if dtype != torch.float32:
            raise ValueError("int8 dynamic quantization runs float32 activations: use it with dtype float32")
        if next(model.parameters()).device.type != "cpu":
            raise ValueError("int8 dynamic quantization (quantize='int8') runs on CPU only")
        import warnings

        from torch.ao.quantization import quantize_dynamic

        model = model.float()
        # Only the backbone's wide layers: the narrow heads and fusion layers (whose per-tensor quantized inputs
        # lose the most) stay float32, and cost nothing.
        encoder = getattr(getattr(model, "avcpnet", model), "visual_encoder", None)
        with warnings.catch_warnings():  # torch.ao's eager quantization announces its move to torchao
            warnings.simplefilter("ignore")
            if encoder is not None:
                quantize_dynamic(encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
            else:
                model = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    else:
        model = model.to(dtype)
    if compile:
        # Freezing folds the (constant) weights into the graph so that inductor pre-packs them for oneDNN on CPU.
        model = torch.compile(model, options={"freezing": True})
    return model


def load_for_inference(model_name_or_path: str, dtype: str | torch.dtype | None = None, quantize: str | None = None,
                       compile: bool = False, device: str | torch.device | None = None,
                       trust_remote_code: bool = False):
    """`(model, processor, identity)` for a checkpoint folder or Hub id, the model in the requested fast mode on
    `device` (default: CPU). `identity` is [`model_identity`] of the loaded weights and config."""
    from transformers import AutoModelForVideoClassification, AutoProcessor

    from ..registration import register_auto_classes

    register_auto_classes()
    model = AutoModelForVideoClassification.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    processor = AutoProcessor.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    identity = model_identity(model)
    model = model.to(device or "cpu")
    return optimize_for_inference(model, dtype, quantize, compile), processor, identity


def model_identity(model: nn.Module) -> str:
    """A short fingerprint of a model's weights and configuration (sha256 of the state dict's names, shapes and
    float32 values and of the config, 16 hex digits): two checkpoints with the same labels but other weights differ.
    Compute it before casting or quantizing the model."""
    digest = hashlib.sha256()
    config = model.config.to_dict()
    for volatile in ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "custom_pipelines", "auto_map"):
        config.pop(volatile, None)
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ for the commands
@dataclass
class Predictor:
    """A model in its inference mode, its processor and what the output records about them."""

    model: Any
    processor: Any
    config: Any
    device: str
    model_id: str
    precision: str

    @property
    def labels(self) -> list[str]:
        return [self.config.id2label[i] for i in range(len(self.config.id2label))]

    def run(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "precision": self.precision}


def check_model_folder(model: str) -> None:
    """Exit with a clear message when `model` is a local path that is not a complete checkpoint folder."""
    from ..pipeline_avcpnet import missing_processor_message

    if model.startswith((os.sep, ".", "~")) and not os.path.exists(model):
        raise SystemExit(f"error: model folder {model} does not exist")
    if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "config.json")):
        raise SystemExit(f"error: {model} is not a model folder: it has no config.json")
    message = missing_processor_message(model)
    if message:
        raise SystemExit(f"error: {message}")


def load_predictor(model: str, device: str = "cpu", dtype: str = "float32", quantize: str | None = None,
                   compile: bool = False, trust_remote_code: bool = False) -> Predictor:
    """The model of a checkpoint folder or Hub id in the requested inference mode, with a clear error when a part
    is missing."""
    check_model_folder(model)
    try:
        classifier, processor, identity = load_for_inference(model, dtype=dtype, quantize=quantize, compile=compile,
                                                             device=device, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: could not load a model and processor from {model}: {error}") from None
    precision = quantize or dtype
    return Predictor(classifier, processor, classifier.config, device, identity, precision + ("+compile" * compile))


def load_pipeline(model: str, device: str | None = None, trust_remote_code: bool = False, dtype: str = "float32"):
    """The pipeline of a checkpoint folder or Hub id (AV-CPNet, or MER 2023 with emotion scores and valence), with a
    clear error when a part is missing."""
    from ..pipeline_avcpnet import TASK, AVCPNetPipeline
    from ..pipeline_mer2023 import MER2023Pipeline

    predictor = load_predictor(model, device=device or "cpu", dtype=dtype, trust_remote_code=trust_remote_code)
    pipeline_class = MER2023Pipeline if predictor.config.model_type == "mer2023" else AVCPNetPipeline
    return pipeline_class(model=predictor.model, processor=predictor.processor, task=TASK, device=device)


__all__ = ["DTYPES", "QUANTIZATIONS", "Predictor", "check_model_folder", "load_for_inference", "load_pipeline",
           "load_predictor", "model_identity", "optimize_for_inference", "resolve_dtype"]
