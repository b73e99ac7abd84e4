"""Model side of `train_hf.py`: build a fresh model or load a checkpoint with the dataset's label set and polarity
map (re-initialising the classification heads the model class declares when the label set changes), and build the
processor."""

from __future__ import annotations

import logging
from typing import Optional

import torch

from ..configuration_avcpnet import BRANCHES
from ..labels import POLARITIES
from ..registration import register_auto_classes
from .arguments import DataArguments, ModelArguments, as_float_mapping, as_str_mapping

logger = logging.getLogger(__name__)


def config_overrides(model_args: ModelArguments) -> dict:
    """Config fields the arguments set: --config_overrides plus the dedicated options."""
    overrides = dict(as_str_mapping(model_args.config_overrides, "config_overrides") or {})
    for name in ("fusion_type", "modalities", "use_cross_attention"):
        if getattr(model_args, name) is not None:
            overrides[name] = getattr(model_args, name)
    gammas = as_float_mapping(model_args.ep_ce_gammas, POLARITIES, "ep_ce_gammas")
    if gammas is not None:
        overrides["ep_ce_gammas"] = gammas
    weights = as_float_mapping(model_args.branch_loss_weights, BRANCHES, "branch_loss_weights")
    if weights is not None:
        overrides["branch_loss_weights"] = weights
    return overrides


def label_fields(model_args: ModelArguments, id2label: dict[int, str], label2polarity: dict[str, str]) -> dict:
    """id2label, label2id and label2polarity (the dataset's map, then --label2polarity) for a config."""
    polarity = dict(label2polarity)
    polarity.update(as_str_mapping(model_args.label2polarity, "label2polarity") or {})
    return dict(id2label=dict(id2label), label2id={name: index for index, name in id2label.items()},
                label2polarity={name: polarity.get(name, "neutral") for name in id2label.values()})


def _with_fields(config, **fields):
    """A new config of the same class with `fields` replaced, built by its constructor (so validated by it)."""
    return type(config).from_dict({**config.to_dict(), **fields})


def build_config_and_model(model_args: ModelArguments, id2label: dict[int, str], label2polarity: dict[str, str],
                           feature_layout: Optional[dict[str, list]] = None):
    """Build a fresh AV-CPNet (or MER 2023 model) or load a checkpoint, with the dataset's labels and polarity map.

    feature_layout: for mer2023, `MER2023DeepFeatureExtractor.config_kwargs()` (feature names, sizes, modalities).
    Returns `(config, model, old_labels)`; old_labels is the checkpoint's label list when it differs (heads new).
    """
    from transformers import AutoConfig, AutoModelForVideoClassification

    from ..configuration_avcpnet import AVCPNetConfig
    from ..configuration_mer2023 import MER2023Config

    register_auto_classes()
    overrides = config_overrides(model_args)
    labels = label_fields(model_args, id2label, label2polarity)
    if model_args.model_name_or_path is None:
        if model_args.model_type == "mer2023":
            config = MER2023Config(**{**overrides, **(feature_layout or {}), **labels},
                                   fusion_structure=model_args.fusion_structure, decoder_type=model_args.decoder_type)
        elif model_args.config_preset == "tiny":
            config = AVCPNetConfig.tiny(**overrides, **labels)
        elif model_args.config_preset == "default":
            config = AVCPNetConfig(**overrides, **labels)
        else:
            raise ValueError(f"--config_preset must be 'default' or 'tiny', got {model_args.config_preset!r}")
        return config, AutoModelForVideoClassification.from_config(config), None

    path = model_args.model_name_or_path
    hub_kwargs = dict(cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code)
    saved = AutoConfig.from_pretrained(path, **hub_kwargs)
    if saved.model_type != model_args.model_type:
        raise ValueError(f"{path} holds a {saved.model_type!r} model: pass --model_type {saved.model_type}")
    for key, value in (feature_layout or {}).items():
        if list(getattr(saved, key)) != list(value):
            raise ValueError(f"{path} was trained on features with {key}={list(getattr(saved, key))}, the backbones "
                             f"give {list(value)}")
    old_labels = [saved.id2label[i] for i in sorted(saved.id2label)]
    new_labels = [id2label[i] for i in sorted(id2label)]
    config = _with_fields(saved, **overrides, **labels)
    if old_labels == new_labels:
        return config, AutoModelForVideoClassification.from_pretrained(path, config=config, **hub_kwargs), None
    if not model_args.ignore_mismatched_sizes:
        raise ValueError(f"{path} was trained on labels {old_labels}, the dataset has {new_labels}: pass "
                         f"--ignore_mismatched_sizes to re-initialise the heads")
    logger.warning("label set changes from %s to %s: classification heads are re-initialised", old_labels, new_labels)
    # Load the checkpoint as it was trained, then move everything but the classification heads into a fresh model
    # of the new label set: the heads keep the model's own initialisation, whatever their size.
    source_config = _with_fields(config, id2label=saved.id2label, label2id=saved.label2id,
                                 label2polarity=getattr(saved, "label2polarity", {}))
    source = AutoModelForVideoClassification.from_pretrained(path, config=source_config, **hub_kwargs)
    model = AutoModelForVideoClassification.from_config(config)
    heads = tuple(f"{name}." for name in classification_heads(model))
    kept = {key: value for key, value in source.state_dict().items() if not key.startswith(heads)}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if unexpected or any(not key.startswith(heads) for key in missing):
        raise ValueError(f"{path}: the checkpoint does not match the model outside its heads (missing {missing}, "
                         f"unexpected {unexpected})")
    return config, model, old_labels


def classification_heads(model) -> dict[str, torch.nn.Module]:
    """The modules whose shape depends on the label set, as the model class declares them in
    `classification_head_names` (dotted module names; a name the configuration does not build is skipped)."""
    heads = {}
    for name in type(model).classification_head_names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        if module is not None:
            heads[name] = module
    return heads


def build_processor(model_args: ModelArguments, data_args: DataArguments, config):
    """The checkpoint's processor, else one built from the model config (with --processor_overrides)."""
    from ..processing_avcpnet import AVCPNetProcessor

    overrides = as_str_mapping(data_args.processor_overrides, "processor_overrides") or {}
    if model_args.model_name_or_path is not None:
        try:
            from transformers import AutoProcessor

            return AutoProcessor.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir,
                                                 trust_remote_code=model_args.trust_remote_code, **overrides)
        except (OSError, ValueError) as error:
            logger.warning("no processor in %s (%s); building one from the model config",
                           model_args.model_name_or_path, error)
    return AVCPNetProcessor.from_model_config(config, **overrides)
