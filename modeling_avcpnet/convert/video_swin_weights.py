"""Convert pretrained Swin weights into the AV-CPNet visual backbone (`VideoSwinEncoder`).

Three sources:

- `torchvision`: a state dict of torchvision's `swin3d_t` (`SwinTransformer3d`: `patch_embed.*`, `features.{k}.*`,
  `norm.*`, `head.*`).
- `official`: a checkpoint of the official Video-Swin code (mmaction2 layout: `backbone.layers.{i}.blocks.{j}.*`,
  `backbone.layers.{i}.downsample.*`, `cls_head.*`), usually wrapped as `{"state_dict": ...}`.
- `swin2d`: 2-D image Swin weights in transformers' `SwinModel` layout (either the transformers 5 names `q_proj` /
  `k_proj` / `v_proj` / `o_proj` or the older `attention.self.query` ... names found on the Hub), inflated over time
  as in the Video Swin paper: the patch kernel is repeated over the temporal patch size and divided by it, and the
  relative position bias table is tiled over the `2 * Wt - 1` temporal offsets (valid because our 3-D table index is
  `t_offset * (2Wh-1)(2Ww-1) + spatial_index_2d`, see `inflate_relative_position_bias_table`).

Classification heads are dropped; the `relative_position_index` buffers are dropped (they are re-created from the
window size). Any other unrecognised key is an error.

Usage:

    python -m modeling_avcpnet.convert.video_swin_weights --source torchvision --checkpoint swin3d_t-7615ae03.pth \
        --output_dir avcpnet-swin3d_t [--config path/to/config.json | --base_model avcpnet-resnet34]

writes an AV-CPNet checkpoint folder (safetensors) whose visual encoder holds the converted weights; the config's
Swin fields must match the checkpoint (the default config is the paper's Swin-T = torchvision's swin3d_t).
`--base_model` starts from an existing AV-CPNet folder (e.g. the output of `resnet_weights`) instead of a
fresh model, so that both branches can come from pretrained weights.
"""

from __future__ import annotations

import argparse
import os
import re

import torch

from ..configuration_avcpnet import AVCPNetConfig

SOURCES = ("torchvision", "official", "swin2d")

# torchvision block keys (inside `features.{2i}.{j}.`) -> ours (inside `layers.{i}.blocks.{j}.`).
_TORCHVISION_BLOCK_KEYS = {
    "norm1": "layernorm_before",
    "attn.qkv": "attention.qkv",
    "attn.proj": "attention.proj",
    "attn.relative_position_bias_table": "attention.relative_position_bias_table",
    "norm2": "layernorm_after",
    "mlp.0": "mlp.fc1",
    "mlp.3": "mlp.fc2",
}
# Official block keys -> torchvision block keys (only the MLP differs).
_OFFICIAL_TO_TORCHVISION_BLOCK_KEYS = {"mlp.fc1": "mlp.0", "mlp.fc2": "mlp.3"}


def _split_parameter_name(key: str) -> tuple[str, str]:
    module, _, parameter = key.rpartition(".")
    return module, parameter


def _rename_prefix(name: str, mapping: dict[str, str]) -> str | None:
    """Replace the leading module path of `name` by its entry in `mapping`; None when no entry matches."""
    for source, target in mapping.items():
        if name == source or name.startswith(source + "."):
            return target + name[len(source) :]
    return None


def _fail_on_unknown(unknown: list[str], source: str) -> None:
    if unknown:
        raise ValueError(
            f"convert_video_swin_weights: {len(unknown)} key(s) of the {source} checkpoint are not recognised, "
            f"e.g. {unknown[:5]}; is --source right?"
        )


def convert_torchvision_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision `SwinTransformer3d` state dict to `VideoSwinEncoder` keys (head and index buffers dropped)."""
    converted, unknown = {}, []
    for key, value in state_dict.items():
        module, parameter = _split_parameter_name(key)
        if key.startswith("head.") or key.endswith("relative_position_index"):
            continue
        if module in ("patch_embed.proj", "patch_embed.norm"):
            converted[f"embeddings.{'projection' if module.endswith('proj') else 'norm'}.{parameter}"] = value
        elif module == "norm":
            converted[f"layernorm.{parameter}"] = value
        elif match := re.fullmatch(r"features\.(\d+)\.(\d+)\.(.+)", key):
            stage, block, name = int(match[1]), int(match[2]), _rename_prefix(match[3], _TORCHVISION_BLOCK_KEYS)
            if stage % 2 or name is None:
                unknown.append(key)
                continue
            converted[f"layers.{stage // 2}.blocks.{block}.{name}"] = value
        elif match := re.fullmatch(r"features\.(\d+)\.(reduction|norm)", module):
            stage = int(match[1])
            if stage % 2 == 0:
                unknown.append(key)
                continue
            converted[f"layers.{stage // 2}.downsample.{match[2]}.{parameter}"] = value
        else:
            unknown.append(key)
    _fail_on_unknown(unknown, "torchvision")
    return converted


def official_to_torchvision_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official Video-Swin (mmaction2) state dict to torchvision's `SwinTransformer3d` keys.

    `backbone.layers.i.blocks.j -> features.{2i}.j`, `backbone.layers.i.downsample -> features.{2i+1}`,
    `mlp.fc1/fc2 -> mlp.0/3`, `backbone.patch_embed/norm -> patch_embed/norm`, `cls_head.fc_cls -> head`.
    """
    renamed, unknown = {}, []
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        if key.startswith("cls_head."):
            renamed["head." + key.rpartition(".")[2]] = value
            continue
        if not key.startswith("backbone."):
            unknown.append(key)
            continue
        key = key[len("backbone.") :]
        if match := re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)\.(\w+)", key):
            name = _OFFICIAL_TO_TORCHVISION_BLOCK_KEYS.get(match[3], match[3])
            renamed[f"features.{2 * int(match[1])}.{match[2]}.{name}.{match[4]}"] = value
        elif match := re.fullmatch(r"layers\.(\d+)\.downsample\.(.+)", key):
            renamed[f"features.{2 * int(match[1]) + 1}.{match[2]}"] = value
        elif key.startswith(("patch_embed.", "norm.")):
            renamed[key] = value
        else:
            unknown.append("backbone." + key)
    _fail_on_unknown(unknown, "official Video-Swin")
    return renamed


def convert_official_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an official Video-Swin checkpoint state dict to `VideoSwinEncoder` keys."""
    return convert_torchvision_state_dict(official_to_torchvision_state_dict(state_dict))


def inflate_patch_embedding(weight: torch.Tensor, temporal_patch_size: int) -> torch.Tensor:
    """Conv2d kernel `(D, C, ph, pw)` -> Conv3d kernel `(D, C, pt, ph, pw)`, repeated over time and divided by `pt`,
    so that a clip of identical frames gets the 2-D model's patch embedding."""
    return weight.unsqueeze(2).repeat(1, 1, temporal_patch_size, 1, 1) / temporal_patch_size


def inflate_relative_position_bias_table(table: torch.Tensor, temporal_window_size: int) -> torch.Tensor:
    """2-D table `((2Wh-1)(2Ww-1), heads)` -> 3-D table `((2Wt-1)(2Wh-1)(2Ww-1), heads)`.

    The 3-D index of offset `(dt, dh, dw)` is `(dt+Wt-1) * S + (dh+Wh-1)(2Ww-1) + (dw+Ww-1)` with
    `S = (2Wh-1)(2Ww-1)`, whose remainder modulo `S` is the 2-D index of `(dh, dw)`. Stacking `2Wt-1` copies of the
    2-D table therefore gives every temporal offset the 2-D bias of its spatial offset.
    """
    return table.repeat(2 * temporal_window_size - 1, 1)


# 2-D Swin (transformers) block keys, both layouts -> ours. q/k/v are gathered separately and concatenated.
_SWIN2D_BLOCK_KEYS = {
    "layernorm_before": "layernorm_before",
    "layernorm_after": "layernorm_after",
    "attention.o_proj": "attention.proj",
    "attention.output.dense": "attention.proj",
    "mlp.fc1": "mlp.fc1",
    "intermediate.dense": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "output.dense": "mlp.fc2",
}
_SWIN2D_QKV = {
    "attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2,
    "attention.self.query": 0, "attention.self.key": 1, "attention.self.value": 2,
}
_SWIN2D_TABLES = (
    "attention.relative_position_bias.relative_position_bias_table",
    "attention.self.relative_position_bias_table",
)


def convert_swin2d_state_dict(state_dict: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """Inflate a transformers 2-D `SwinModel` / `SwinForImageClassification` state dict to `VideoSwinEncoder` keys.

    `config` gives the temporal patch size (`patch_size[0]`) and temporal window (`window_size[0]`).
    """
    temporal_patch, temporal_window = config.patch_size[0], config.window_size[0]
    converted, qkv, unknown = {}, {}, []
    for key, value in state_dict.items():
        if key.startswith("swin."):
            key = key[len("swin.") :]
        module, parameter = _split_parameter_name(key)
        if key.startswith("classifier.") or key.endswith("relative_position_index"):
            continue
        if module == "embeddings.patch_embeddings.projection":
            converted[f"embeddings.projection.{parameter}"] = (
                inflate_patch_embedding(value, temporal_patch) if parameter == "weight" else value
            )
        elif module == "embeddings.norm":
            converted[key] = value
        elif module == "layernorm":
            converted[key] = value
        elif match := re.fullmatch(r"encoder\.layers\.(\d+)\.downsample\.(reduction|norm)", module):
            converted[f"layers.{match[1]}.downsample.{match[2]}.{parameter}"] = value
        elif match := re.fullmatch(r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)", key):
            prefix, name = f"layers.{match[1]}.blocks.{match[2]}", match[3]
            if name in _SWIN2D_TABLES:
                converted[f"{prefix}.attention.relative_position_bias_table"] = inflate_relative_position_bias_table(
                    value, temporal_window
                )
                continue
            block_module, parameter = _split_parameter_name(name)
            if block_module in _SWIN2D_QKV:
                qkv.setdefault((prefix, parameter), [None, None, None])[_SWIN2D_QKV[block_module]] = value
            elif block_module in _SWIN2D_BLOCK_KEYS:
                converted[f"{prefix}.{_SWIN2D_BLOCK_KEYS[block_module]}.{parameter}"] = value
            else:
                unknown.append(key)
        else:
            unknown.append(key)
    _fail_on_unknown(unknown, "2-D Swin (transformers SwinModel)")
    for (prefix, parameter), parts in qkv.items():
        if any(part is None for part in parts):
            raise ValueError(f"convert_video_swin_weights: {prefix} lacks one of the query/key/value {parameter}s")
        converted[f"{prefix}.attention.qkv.{parameter}"] = torch.cat(parts, dim=0)
    return converted


def convert_state_dict(state_dict: dict[str, torch.Tensor], source: str, config=None) -> dict[str, torch.Tensor]:
    """Dispatch on `source` (one of `SOURCES`); `config` (an `AVCPNetConfig`) is needed for `swin2d`."""
    if source == "torchvision":
        return convert_torchvision_state_dict(state_dict)
    if source == "official":
        return convert_official_state_dict(state_dict)
    if source == "swin2d":
        return convert_swin2d_state_dict(state_dict, config if config is not None else AVCPNetConfig())
    raise ValueError(f"convert_video_swin_weights: source must be one of {SOURCES}, got {source!r}")


def load_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """Read a state dict from a `.safetensors` file, a torch `.pth`/`.pt`/`.bin` file (plain or wrapped in
    `state_dict` / `model`), or a folder holding `model.safetensors` or `pytorch_model.bin`."""
    if os.path.isdir(path):
        for name in ("model.safetensors", "pytorch_model.bin"):
            if os.path.isfile(os.path.join(path, name)):
                return load_checkpoint(os.path.join(path, name))
        raise FileNotFoundError(f"{path}: folder has neither model.safetensors nor pytorch_model.bin")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return checkpoint


def load_into_visual_encoder(model, backbone_state_dict: dict[str, torch.Tensor]) -> None:
    """Copy converted weights into `model.avcpnet.visual_encoder` (an `AVCPNetForVideoClassification` or
    `AVCPNetModel`, or a bare `VideoSwinEncoder`); every parameter must be covered and every key used."""
    encoder = model
    for attribute in ("avcpnet", "visual_encoder"):
        encoder = getattr(encoder, attribute, encoder)
    expected = encoder.state_dict()
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in backbone_state_dict.items()
        if key in expected and value.shape != expected[key].shape
    ]
    missing = sorted(set(expected) - set(backbone_state_dict))
    unexpected = sorted(set(backbone_state_dict) - set(expected))
    if missing or unexpected or mismatched:
        raise ValueError(
            "convert_video_swin_weights: the converted weights do not fit the visual encoder of this config: "
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}, "
            f"shape mismatches {mismatched[:5]}{' ...' if len(mismatched) > 5 else ''}"
        )
    encoder.load_state_dict(backbone_state_dict, strict=True)


def write_avcpnet_checkpoint(
    backbone_state_dict: dict[str, torch.Tensor], config, output_dir: str, base_model: str | None = None
):
    """Build `AVCPNetForVideoClassification(config)` (or load it from the AV-CPNet folder `base_model`, e.g. the
    output of `resnet_weights`), load the backbone weights strictly into its visual encoder and
    `save_pretrained(output_dir)`. The other branches keep their initialisation. Returns the model."""
    from ..modeling_avcpnet import AVCPNetForVideoClassification

    if base_model is not None:
        model = AVCPNetForVideoClassification.from_pretrained(base_model)
    else:
        model = AVCPNetForVideoClassification(config)
    load_into_visual_encoder(model, backbone_state_dict)
    model.save_pretrained(output_dir)
    return model


def _load_config(path: str | None) -> AVCPNetConfig:
    if path is None:
        return AVCPNetConfig()
    if os.path.isdir(path) or path.endswith(".json"):
        return AVCPNetConfig.from_json_file(os.path.join(path, "config.json") if os.path.isdir(path) else path)
    raise ValueError(f"--config {path}: expected a config.json file or a folder holding one")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_avcpnet.convert.video_swin_weights",
        description="Convert Swin weights (torchvision swin3d_t, official Video-Swin, or 2-D transformers Swin "
        "inflated over time) into an AV-CPNet checkpoint folder.",
    )
    parser.add_argument("--source", required=True, choices=SOURCES)
    parser.add_argument("--checkpoint", required=True, help="state dict file (.pth/.pt/.bin/.safetensors) or folder")
    parser.add_argument("--output_dir", required=True, help="folder to write the AV-CPNet checkpoint to")
    parser.add_argument("--config", default=None, help="AVCPNetConfig json (or folder); default: the paper's config")
    parser.add_argument("--base_model", default=None,
                        help="an AV-CPNet checkpoint folder to start from (its visual encoder is replaced)")
    args = parser.parse_args(argv)
    if args.config is not None and args.base_model is not None:
        parser.error("give --config or --base_model, not both")

    config = AVCPNetConfig.from_pretrained(args.base_model) if args.base_model else _load_config(args.config)
    backbone = convert_state_dict(load_checkpoint(args.checkpoint), args.source, config)
    write_avcpnet_checkpoint(backbone, config, args.output_dir, base_model=args.base_model)
    print(f"wrote {args.output_dir}: {len(backbone)} visual-encoder tensors converted from {args.source}")


if __name__ == "__main__":
    main()
