"""Convert ResNet weights in transformers' `ResNetModel` layout into the AV-CPNet audio encoder.

The audio encoder (`AVCPNetAudioResNet`) uses the parameter names of `transformers.ResNetModel`
(`embedder.embedder.*`, `encoder.stages.{i}.layers.{j}.{layer,shortcut}.*`), so every tensor maps one to one onto
`avcpnet.audio_encoder.resnet.<same name>`, except the stem convolution, which is folded:

- its input channels are summed (3 RGB channels -> 1 MFCC channel), as timm does for 1-channel inputs;
- its kernel is summed over the width axis (7x7 -> 7x1), because the public code's audio stem is a (7, 1) kernel
  with stride (2, 1) over (time, MFCC): the 7 taps along time are kept.

Both sums keep the stem's response to an input that is constant along the folded axes (a grey image, an MFCC
map constant over the coefficients), so the batch-norm statistics that follow stay meaningful.

Accepted sources: a `ResNetModel` or `ResNetForImageClassification` state dict (`resnet.` prefix; the classifier
is dropped), as a folder (`model.safetensors` / `pytorch_model.bin`, e.g. `save_pretrained` output) or a file.
Only basic-block ResNets (ResNet-18/34) fit: bottleneck checkpoints are refused. The checkpoint's widths and depths
must match the config's `audio_embedding_size`, `audio_hidden_sizes`, `audio_depths` (ResNet-34 by default).

Usage:

    python -m modeling_avcpnet.convert.resnet_weights --checkpoint microsoft-resnet-34/ --output_dir avcpnet-resnet34 \
        [--config config.json | --base_model avcpnet-swin3d_t]

`--base_model` starts from an existing AV-CPNet checkpoint (e.g. the output of `video_swin_weights`) and
replaces its audio encoder, so both branches can be initialised from pretrained weights. Writes an AV-CPNet
checkpoint folder (safetensors, with the model code and an `auto_map`).
"""

from __future__ import annotations

import argparse
import os
import re

import torch

from ..configuration_avcpnet import AVCPNetConfig
from .video_swin_weights import load_checkpoint

STEM_KEY = "embedder.embedder.convolution.weight"
AUDIO_RESNET_PREFIX = "avcpnet.audio_encoder.resnet."
_ALLOWED = re.compile(
    r"^(embedder\.embedder\.(convolution|normalization)\."
    r"|encoder\.stages\.\d+\.layers\.\d+\.(layer\.\d+|shortcut)\.(convolution|normalization)\.)"
)


def fold_stem_weight(weight: torch.Tensor) -> torch.Tensor:
    """`(out, in, kh, kw)` stem kernel -> `(out, 1, kh, 1)`: sum over the input channels and the kernel width."""
    if weight.ndim != 4:
        raise ValueError(f"convert_resnet_weights: {STEM_KEY} must be a 4-D convolution kernel, got {tuple(weight.shape)}")
    return weight.sum(dim=(1, 3), keepdim=True)


def convert_resnet_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a `ResNetModel` / `ResNetForImageClassification` state dict onto `AVCPNetAudioResNet`'s keys (without
    the `avcpnet.audio_encoder.resnet.` prefix), folding the stem. Raises `ValueError` on anything unexpected."""
    converted, unknown = {}, []
    for key, value in state_dict.items():
        if key.startswith("classifier."):
            continue  # ImageNet head
        name = key.removeprefix("resnet.")
        if not _ALLOWED.match(name):
            unknown.append(key)
            continue
        if re.search(r"\.layer\.2\.", name):
            raise ValueError(
                f"convert_resnet_weights: {key} belongs to a bottleneck block (ResNet-50 and deeper); the AV-CPNet "
                "audio encoder uses basic blocks (ResNet-18/34)"
            )
        converted[name] = fold_stem_weight(value) if name == STEM_KEY else value
    if unknown:
        raise ValueError(
            f"convert_resnet_weights: {len(unknown)} keys are not in transformers' ResNetModel layout, e.g. "
            f"{unknown[:5]}"
        )
    if STEM_KEY not in converted:
        raise ValueError(f"convert_resnet_weights: no stem convolution ({STEM_KEY}) in the checkpoint")
    return converted


def audio_config_of(resnet_state_dict: dict[str, torch.Tensor]) -> dict[str, object]:
    """The `audio_embedding_size`, `audio_hidden_sizes`, `audio_depths` that a converted state dict implies."""
    stages: dict[int, set[int]] = {}
    widths: dict[int, int] = {}
    for key, value in resnet_state_dict.items():
        match = re.match(r"encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.1\.convolution\.weight$", key)
        if match:
            stage, layer = int(match.group(1)), int(match.group(2))
            stages.setdefault(stage, set()).add(layer)
            widths[stage] = value.shape[0]
    return {
        "audio_embedding_size": resnet_state_dict[STEM_KEY].shape[0],
        "audio_hidden_sizes": [widths[stage] for stage in sorted(widths)],
        "audio_depths": [len(stages[stage]) for stage in sorted(stages)],
    }


def load_into_audio_encoder(model, resnet_state_dict: dict[str, torch.Tensor]) -> None:
    """Copy converted weights into the audio ResNet of `model` (an `AVCPNetForVideoClassification` or
    `AVCPNetModel`); the architecture must match and every tensor must be used (strict)."""
    base = getattr(model, "avcpnet", model)
    if getattr(base, "audio_encoder", None) is None:
        raise ValueError(f"convert_resnet_weights: the model has no audio encoder (modalities={model.config.modalities!r})")
    implied = audio_config_of(resnet_state_dict)
    differing = {field: (value, list(getattr(model.config, field)) if isinstance(value, list)
                         else getattr(model.config, field)) for field, value in implied.items()}
    differing = {field: pair for field, pair in differing.items() if pair[0] != pair[1]}
    if differing:
        details = ", ".join(f"{field}: checkpoint {checkpoint} vs config {configured}"
                            for field, (checkpoint, configured) in differing.items())
        raise ValueError(f"convert_resnet_weights: the checkpoint does not fit the config's audio encoder ({details}); "
                         "pass a --config with these audio fields")
    resnet = base.audio_encoder.resnet
    expected = resnet.state_dict()
    mismatched = [f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
                  for key, value in resnet_state_dict.items() if key in expected and value.shape != expected[key].shape]
    missing = sorted(set(expected) - set(resnet_state_dict))
    unexpected = sorted(set(resnet_state_dict) - set(expected))
    if missing or unexpected or mismatched:
        raise ValueError(f"convert_resnet_weights: the weights do not fit the audio encoder: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, shape mismatches {mismatched[:5]}")
    resnet.load_state_dict(resnet_state_dict, strict=True)


def _load_config(path: str | None) -> AVCPNetConfig:
    if path is None:
        return AVCPNetConfig()
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--config {path}: no such config.json")
    return AVCPNetConfig.from_json_file(path)


def convert(checkpoint: str, output_dir: str, config: str | None = None, base_model: str | None = None):
    """Convert `checkpoint` and write an AV-CPNet checkpoint folder to `output_dir`; returns the model."""
    from ..modeling_avcpnet import AVCPNetForVideoClassification

    if config is not None and base_model is not None:
        raise ValueError("convert_resnet_weights: give --config or --base_model, not both")
    resnet_state_dict = convert_resnet_state_dict(load_checkpoint(checkpoint))
    if base_model is not None:
        model = AVCPNetForVideoClassification.from_pretrained(base_model)
    else:
        model = AVCPNetForVideoClassification(_load_config(config))
    load_into_audio_encoder(model, resnet_state_dict)
    model.save_pretrained(output_dir)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_avcpnet.convert.resnet_weights",
        description="Convert ResNet-34 weights (transformers ResNetModel layout, 3 input channels) into the 1-channel "
        "audio encoder of an AV-CPNet checkpoint folder.",
    )
    parser.add_argument("--checkpoint", required=True, help="ResNet folder (save_pretrained) or state dict file")
    parser.add_argument("--output_dir", required=True, help="folder to write the AV-CPNet checkpoint to")
    parser.add_argument("--config", default=None, help="AVCPNetConfig json (or folder); default: the paper's config")
    parser.add_argument("--base_model", default=None, help="existing AV-CPNet checkpoint whose audio encoder to replace")
    args = parser.parse_args(argv)
    model = convert(args.checkpoint, args.output_dir, config=args.config, base_model=args.base_model)
    tensors = len(model.avcpnet.audio_encoder.resnet.state_dict())
    print(f"wrote {args.output_dir}: {tensors} audio-encoder tensors converted from {args.checkpoint}")


if __name__ == "__main__":
    main()
