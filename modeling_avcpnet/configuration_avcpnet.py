"""AV-CPNet model configuration."""

from __future__ import annotations

from transformers import PreTrainedConfig
from transformers.utils import logging

from .labels import EMOTIONS_LABELS, EMOTIONS_POLARITY, POLARITIES

logger = logging.get_logger(__name__)

FUSION_TYPES = ("sum", "concat", "ew_sum", "ew_product", "neural", "gated")
# Where `visual_logits` / `audio_logits` come from (see `modeling_avcpnet.py`): "sf_terms" = the SF layer's own
# per-modality terms on the post-CAF features (the public code), "separate" = a classifier per modality on the
# pre-CAF features (this package before the field existed).
UNIMODAL_HEADS = ("sf_terms", "separate")
# What the SF layer outputs: "logits" = its per-modality layers map straight to the classes, no classifier after (the
# public code's SumFusion `fc_x`, `fc_y` / ConcatFusion `fc_out`); "hidden" = they map to `hidden_size` and one
# classifier shared by both modalities follows (this package before the field existed).
FUSION_OUTPUTS = ("logits", "hidden")
# What the CAF layer attends over: "segments" = the segment features of each modality, one attention module shared
# by both directions (the public code); "pooled" = the pooled vectors as length-1 sequences, one attention per
# direction (this package before the field existed).
CAF_SEQUENCES = ("segments", "pooled")
# The audio head after the ResNet: "bn_tanh" = Linear + BatchNorm1d + Tanh, temporal-attention scores by conv + BN +
# Tanh (VAANet and the public code); "linear" = a plain Linear and a bare conv, unit-bias mixer (this package before).
AUDIO_HEADS = ("bn_tanh", "linear")
# The values that a config saved before these fields existed was trained with (see `upgrade_legacy_config_dict`).
LEGACY_STRUCTURE = {"fusion_output": "hidden", "caf_sequence": "pooled", "audio_head": "linear",
                    "visual_dropout_prob": 0.0}
MODALITIES = ("audio_visual", "visual", "audio")
BRANCHES = ("fusion", "visual", "audio")


class AVCPNetConfig(PreTrainedConfig):
    r"""
    Configuration of an AV-CPNet model (eMotions paper, arXiv 2311.17335). Defaults reproduce the paper and its
    public code: a Video Swin-T visual branch on 16 segments x 8 frames at 112x112, a 1-channel ResNet-34 audio
    branch on 16 MFCC segments, and the two-stage cross-modal fusion (TS-CF) module.

    Visual branch (Video Swin):
        patch_size (`list[int]`, defaults to `[2, 4, 4]`): 3-D patch size (time, height, width).
        embed_dim (`int`, defaults to 96): channels after the patch embedding (C).
        depths (`list[int]`, defaults to `[2, 2, 6, 2]`): Swin blocks per stage.
        num_heads (`list[int]`, defaults to `[3, 6, 12, 24]`): attention heads per stage.
        window_size (`list[int]`, defaults to `[8, 7, 7]`): 3-D attention window (time, height, width).
        mlp_ratio (`float`, defaults to 4.0): MLP hidden size / embedding size.
        qkv_bias (`bool`, defaults to `True`): bias on the query/key/value projection.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth rate, increased linearly over the blocks.
        hidden_dropout_prob (`float`, defaults to 0.0): dropout on the Swin MLP and projection outputs.
        attention_probs_dropout_prob (`float`, defaults to 0.0): dropout on the attention probabilities.
        layer_norm_eps (`float`, defaults to 1e-5): LayerNorm epsilon.
        num_channels (`int`, defaults to 3): input channels.
        image_size (`int`, defaults to 112): frame height and width fed to the backbone.
        num_segments (`int`, defaults to 16): segments a clip is split into (s).
        frames_per_segment (`int`, defaults to 8): consecutive frames sampled per segment (k).

    Audio branch (ResNet on MFCC):
        num_mfcc (`int`, defaults to 32): MFCC coefficients.
        audio_length (`int`, defaults to 4096): MFCC frames after centre crop / tiling (q).
        audio_segments (`int`, defaults to 16): segments the MFCC sequence is split into (t).
        audio_embedding_size (`int`, defaults to 64): channels of the ResNet stem.
        audio_hidden_sizes (`list[int]`, defaults to `[64, 128, 256, 512]`): channels per ResNet stage.
        audio_depths (`list[int]`, defaults to `[3, 4, 6, 3]`): basic blocks per stage (ResNet-34).

    Fusion and heads:
        hidden_size (`int`, defaults to 512): fusion width C1.
        num_attention_heads (`int`, defaults to 4): heads of the CAF cross-attention.
        fusion_type (`str`, defaults to `"sum"`): one of `sum`, `concat`, `ew_sum`, `ew_product`, `neural`,
            `gated` (table 8). On the post-CAF vectors v', a': `sum` = P_v v' + P_a a' (eq. 8, a linear layer per
            modality), `ew_sum` = v' + a' (element-wise sum without the per-modality layers), `ew_product` =
            P_v v' * P_a a' (what `ew_sum` computed before; kept under its own name), `concat` = Linear([P_v v';
            P_a a']), `neural` = MLP([P_v v'; P_a a']), `gated` = sigmoid(P_a a') * P_v v' (audio gates visual, as
            the public code's GatedFusion call); see `modeling_avcpnet.py`.
        unimodal_head (`str`, defaults to `"sf_terms"`): where `visual_logits` and `audio_logits` come from in an
            audio-visual model. `sf_terms` (the public code): the SF layer's own per-modality terms on the post-CAF
            features through the fused classifier (for `sum`, `concat`, `ew_sum` they add up to `logits`);
            `separate`: a classifier per modality on the pre-CAF features. A saved config without this field is
            read as `separate` (the placement of every checkpoint saved before the field existed), and its
            `fusion_type="ew_sum"` as `ew_product`. A saved config without `fusion_output` is read with the
            structure it was trained with: `fusion_output="hidden"`, `caf_sequence="pooled"`,
            `audio_head="linear"`, `visual_dropout_prob=0.0`.
        modalities (`str`, defaults to `"audio_visual"`): one of `audio_visual`, `visual`, `audio` (table 7).
        use_cross_attention (`bool`, defaults to `True`): use the CAF layer before the SF layer.
        fusion_output (`str`, defaults to `"logits"`): what the SF layer outputs in an audio-visual model. `logits`
            (the public code): its per-modality layers map straight to the classes and no classifier follows (`sum`
            = `fc_y(v') + fc_x(a')`, `concat` = `fc_out([a'; v'])`); `hidden`: they map to `hidden_size` and one
            classifier shared by both modalities follows (the structure of this package before the field existed).
        caf_sequence (`str`, defaults to `"segments"`): what the CAF layer attends over. `segments` (the public
            code): the `num_segments` visual and `audio_segments` audio segment features, one attention module
            shared by both directions, residual per segment, then the mean over segments; `pooled`: the pooled
            vectors as length-1 sequences, one attention module per direction (this package before).
        audio_head (`str`, defaults to `"bn_tanh"`): `bn_tanh` (VAANet and the public code): `Linear + BatchNorm1d +
            Tanh` after the audio pooling and `Conv1d + BatchNorm1d + Tanh` for the temporal-attention scores;
            `linear`: a plain `Linear` and a bare `Conv1d` (this package before).
        visual_dropout_prob (`float`, defaults to 0.5): dropout on the pooled Video Swin features of each segment,
            before the visual projection (the public AVNet's `Dropout(0.5)`).
        classifier_dropout_prob (`float`, defaults to 0.0): dropout before the classification heads (with
            `fusion_output="logits"`: once on the SF layer's inputs, so the unimodal terms still add up to the fused
            logits).
        initializer_range (`float`, defaults to 0.02): std of the truncated normal initialiser.

    Labels and loss:
        id2label (`dict[int, str]`): defaults to the 6 eMotions classes in the official order.
        label2polarity (`dict[str, str]`): polarity (`positive`, `neutral`, `negative`) of each label, used by the
            EP-CE loss; defaults to the eMotions map.
        ep_ce_gammas (`dict[str, float]`): EP-CE penalty per polarity of the true class, defaults to 0.5 each
            (table 9); all zeros gives plain cross-entropy.
        branch_loss_weights (`dict[str, float]`): weights of the fusion, visual and audio losses in the
            multi-task sum (eq. 10); defaults to 1 each.

    Example:

    ```python
    >>> from transformers import AutoConfig
    >>> import modeling_avcpnet  # registers the "avcpnet" model type
    >>> tiny = AutoConfig.for_model("avcpnet", embed_dim=24, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])
    ```"""

    model_type = "avcpnet"

    # Visual branch: Video Swin-T.
    patch_size: list[int] | tuple[int, ...] = (2, 4, 4)
    embed_dim: int = 96
    depths: list[int] | tuple[int, ...] = (2, 2, 6, 2)
    num_heads: list[int] | tuple[int, ...] = (3, 6, 12, 24)
    window_size: list[int] | tuple[int, ...] = (8, 7, 7)
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.1
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    layer_norm_eps: float = 1e-5
    num_channels: int = 3
    image_size: int = 112
    num_segments: int = 16
    frames_per_segment: int = 8
    # Audio branch: ResNet-34 on MFCC segments.
    num_mfcc: int = 32
    audio_length: int = 4096
    audio_segments: int = 16
    audio_embedding_size: int = 64
    audio_hidden_sizes: list[int] | tuple[int, ...] = (64, 128, 256, 512)
    audio_depths: list[int] | tuple[int, ...] = (3, 4, 6, 3)
    # Fusion.
    hidden_size: int = 512
    num_attention_heads: int = 4
    fusion_type: str = "sum"
    unimodal_head: str = "sf_terms"
    fusion_output: str = "logits"
    caf_sequence: str = "segments"
    audio_head: str = "bn_tanh"
    visual_dropout_prob: float = 0.5
    modalities: str = "audio_visual"
    use_cross_attention: bool = True
    classifier_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    # Labels and loss.
    label2polarity: dict[str, str] | None = None
    ep_ce_gammas: dict[str, float] | None = None
    branch_loss_weights: dict[str, float] | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(EMOTIONS_LABELS))
        super().__post_init__(**kwargs)
        if self.label2id is None or set(self.label2id) != set(self.id2label.values()):
            self.label2id = {label: index for index, label in self.id2label.items()}
        labels = set(self.id2label.values())
        if self.label2polarity is None:
            # The eMotions map by default; other label sets must bring their own (unknown labels: neutral).
            self.label2polarity = {label: EMOTIONS_POLARITY.get(label, "neutral") for label in sorted(labels)}
        elif set(self.label2polarity) != labels:
            # A stored map that no longer matches the labels (e.g. `from_pretrained(..., num_labels=3)`): keep what
            # still applies and say which labels the EP-CE loss will treat as neutral.
            missing = sorted(labels - set(self.label2polarity))
            if missing:
                logger.warning(f"AVCPNetConfig.label2polarity has no polarity for {missing}: treated as neutral by "
                               "the EP-CE loss. Pass label2polarity with the new labels to set them.")
            self.label2polarity = {label: self.label2polarity.get(label, "neutral") for label in sorted(labels)}
        if self.ep_ce_gammas is None:
            self.ep_ce_gammas = {polarity: 0.5 for polarity in POLARITIES}
        if self.branch_loss_weights is None:
            self.branch_loss_weights = {branch: 1.0 for branch in BRANCHES}
        for name in ("patch_size", "depths", "num_heads", "window_size", "audio_hidden_sizes", "audio_depths"):
            setattr(self, name, [int(value) for value in getattr(self, name)])
        self.ep_ce_gammas = {key: float(value) for key, value in self.ep_ce_gammas.items()}
        self.branch_loss_weights = {key: float(value) for key, value in self.branch_loss_weights.items()}
        self._validate()

    def _validate(self) -> None:
        def fail(field: str, message: str):
            raise ValueError(f"AVCPNetConfig.{field}: {message}")

        for field in ("embed_dim", "image_size", "num_segments", "frames_per_segment", "num_mfcc", "audio_length",
                      "audio_segments", "audio_embedding_size", "hidden_size", "num_attention_heads", "num_channels"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(field, f"must be a positive integer, got {value!r}")
        for field, length in (("patch_size", 3), ("window_size", 3)):
            value = getattr(self, field)
            if len(value) != length or min(value) <= 0:
                fail(field, f"must be {length} positive integers (time, height, width), got {value!r}")
        if not self.depths or min(self.depths) <= 0:
            fail("depths", f"must be a non-empty list of positive integers, got {self.depths!r}")
        if len(self.num_heads) != len(self.depths) or min(self.num_heads) <= 0:
            fail("num_heads", f"must give a positive head count for each of the {len(self.depths)} stages, "
                              f"got {self.num_heads!r}")
        for stage, heads in enumerate(self.num_heads):
            channels = self.embed_dim * 2**stage
            if channels % heads:
                fail("num_heads", f"stage {stage} has {channels} channels, not divisible by {heads} heads")
        if len(self.audio_depths) != len(self.audio_hidden_sizes) or min(self.audio_depths + self.audio_hidden_sizes) <= 0:
            fail("audio_depths", f"audio_depths {self.audio_depths!r} and audio_hidden_sizes "
                                 f"{self.audio_hidden_sizes!r} must be positive and of the same length")
        if self.audio_length % self.audio_segments:
            fail("audio_length", f"{self.audio_length} is not divisible by audio_segments={self.audio_segments}")
        if self.hidden_size % self.num_attention_heads:
            fail("num_attention_heads", f"hidden_size {self.hidden_size} is not divisible by "
                                        f"{self.num_attention_heads} heads")
        if self.mlp_ratio <= 0:
            fail("mlp_ratio", f"must be positive, got {self.mlp_ratio!r}")
        for field in ("drop_path_rate", "hidden_dropout_prob", "attention_probs_dropout_prob",
                      "classifier_dropout_prob", "visual_dropout_prob"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                fail(field, f"must be in [0, 1), got {value!r}")
        if self.fusion_type not in FUSION_TYPES:
            fail("fusion_type", f"must be one of {', '.join(FUSION_TYPES)}, got {self.fusion_type!r}")
        if self.unimodal_head not in UNIMODAL_HEADS:
            fail("unimodal_head", f"must be one of {', '.join(UNIMODAL_HEADS)}, got {self.unimodal_head!r}")
        for field, choices in (("fusion_output", FUSION_OUTPUTS), ("caf_sequence", CAF_SEQUENCES),
                               ("audio_head", AUDIO_HEADS)):
            if getattr(self, field) not in choices:
                fail(field, f"must be one of {', '.join(choices)}, got {getattr(self, field)!r}")
        if self.modalities not in MODALITIES:
            fail("modalities", f"must be one of {', '.join(MODALITIES)}, got {self.modalities!r}")
        unknown = {label: p for label, p in self.label2polarity.items() if p not in POLARITIES}
        if unknown:
            fail("label2polarity", f"polarities must be one of {POLARITIES}, got {unknown}")
        if set(self.ep_ce_gammas) != set(POLARITIES) or min(self.ep_ce_gammas.values()) < 0:
            fail("ep_ce_gammas", f"must give a non-negative gamma for each of {POLARITIES}, got {self.ep_ce_gammas}")
        if set(self.branch_loss_weights) != set(BRANCHES) or min(self.branch_loss_weights.values()) < 0:
            fail("branch_loss_weights", f"must give a non-negative weight for each of {BRANCHES}, "
                                        f"got {self.branch_loss_weights}")

    # Configs saved before `unimodal_head` / `fusion_output` existed are upgraded on load, so old checkpoints keep
    # their meaning (and their weights fit). Two
    # doors: `from_json_file` reads through `_dict_from_json_file`; `from_pretrained` and `AutoConfig` (which reads
    # the file through the base class) build through `from_dict`. A dict counts as saved when it carries
    # `transformers_version` (every saved config does), so `from_dict` on a hand-written dict keeps the defaults.
    @classmethod
    def _dict_from_json_file(cls, json_file) -> dict:
        return upgrade_legacy_config_dict(super()._dict_from_json_file(json_file))

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        if "transformers_version" in config_dict:
            config_dict = upgrade_legacy_config_dict(config_dict)
        return super().from_dict(config_dict, **kwargs)

    @property
    def num_frames(self) -> int:
        """Frames per clip fed to the visual branch (segments x frames per segment)."""
        return self.num_segments * self.frames_per_segment

    @property
    def visual_hidden_size(self) -> int:
        """Channels of the last Video Swin stage (768 for Swin-T)."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def polarity_ids(self) -> list[int]:
        """Polarity index (into `POLARITIES`) of each label id, in label-id order."""
        return [POLARITIES.index(self.label2polarity.get(self.id2label[i], "neutral")) for i in range(len(self.id2label))]

    @classmethod
    def tiny(cls, **kwargs) -> "AVCPNetConfig":
        """A tiny preset for tests and demos: same code path, a few thousand parameters per branch."""
        defaults = dict(
            embed_dim=24, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=[2, 4, 4], image_size=32,
            num_segments=2, frames_per_segment=4, drop_path_rate=0.0,
            audio_length=64, audio_segments=2, audio_embedding_size=8, audio_hidden_sizes=[8, 16, 16, 32],
            audio_depths=[1, 1, 1, 1], hidden_size=32, num_attention_heads=4,
        )
        defaults.update(kwargs)
        return cls(**defaults)


def upgrade_legacy_config_dict(config_dict: dict) -> dict:
    """States the structure a saved AV-CPNet config was trained with, where it predates the fields that name it.

    - without `unimodal_head`: its unimodal heads were separate pre-CAF classifiers and its `fusion_type="ew_sum"`
      was the element-wise product;
    - without `fusion_output`: the SF layer output `hidden_size` features into a shared classifier, the CAF layer
      ran on length-1 sequences with one attention per direction, the audio head was a plain Linear / bare conv,
      and no dropout acted on the visual features (`LEGACY_STRUCTURE`).
    Returns the dict with those values stated (fields the dict has are kept as they are)."""
    if config_dict.get("model_type", "avcpnet") != "avcpnet":
        return config_dict
    upgraded = dict(config_dict)
    if "unimodal_head" not in upgraded:
        upgraded["unimodal_head"] = "separate"
        if upgraded.get("fusion_type") == "ew_sum":
            upgraded["fusion_type"] = "ew_product"
    if "fusion_output" not in upgraded:
        for field, value in LEGACY_STRUCTURE.items():
            upgraded.setdefault(field, value)
    return upgraded


__all__ = ["AVCPNetConfig"]
