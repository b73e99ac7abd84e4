"""Configuration of the MER 2023 hierarchical audio-visual fusion system (Wang et al., ACM MM 2023)."""

from __future__ import annotations

from transformers import PreTrainedConfig

from .labels import MER2023_LABELS, MER2023_POLARITY, POLARITIES

FUSION_STRUCTURES = ("parallel", "audio_visual_pairs", "intra_then_inter")
DECODER_TYPES = ("jdev", "baseline")
LOSS_TYPES = ("uncertainty", "sum")
FEATURE_MODALITIES = ("audio", "visual")


class MER2023Config(PreTrainedConfig):
    r"""
    Configuration of the MER 2023 system of Wang et al. ("Hierarchical Audio-Visual Information Fusion with
    Multi-label Joint Decoding for MER 2023"): several pre-extracted deep features per clip are aligned to one width,
    fused by attention-guided feature gathering (AFG, eq. 1-3) in one of three structures, and decoded jointly into
    discrete emotion logits and a valence value (JDEV, eq. 5-8) trained with the uncertainty-weighted loss (eq. 9).

    The model input is one vector per clip: the features named in `feature_names`, concatenated in that order
    (`sum(feature_sizes)` values). `MER2023DeepFeatureExtractor` writes exactly this layout.

    Features:
        feature_names (`list[str]`): names of the deep features, in input order. Defaults to the paper's best set:
            HuBERT-large layers 18, 19, 20 and two visual features (MANet, ResNet-50 FER2013).
        feature_sizes (`list[int]`): width of each feature (defaults 1024, 1024, 1024, 1024, 2048).
        feature_modalities (`list[str]`): `"audio"` or `"visual"` for each feature.

    Fusion:
        hidden_size (`int`, defaults to 256): common width D the features are aligned to (the DA-Mat of fig. 2:
            one Linear + ReLU + dropout per feature).
        fusion_structure (`str`, defaults to `"parallel"`): `"parallel"` (one AFG over all features, structure 1),
            `"audio_visual_pairs"` (each audio feature fused with the visual features, then the pairs fused,
            structure 2) or `"intra_then_inter"` (AFG over the audio features, then AFG of that with the visual
            features, structure 3).
        hidden_dropout_prob (`float`, defaults to 0.3): dropout after alignment and before the decoder (not given in
            the paper; 0.3 is the MER 2023 baseline's value).

    Decoder and loss:
        decoder_type (`str`, defaults to `"jdev"`): `"jdev"` (joint decoding, eq. 5-8) or `"baseline"` (two
            independent linear heads on the fused vector, as the MER 2023 baseline).
        loss_type (`str`, defaults to `"uncertainty"` for JDEV and `"sum"` for the baseline): `"uncertainty"` is
            eq. 9, `L_e / d1^2 + L_v / (2 d2^2) + log(1 + d1) + log(1 + d2)` with trainable d1, d2; `"sum"` is the
            plain `L_e + valence_loss_weight * L_v`.
        uncertainty_init (`float`, defaults to 1.0): initial value of d1 and d2.
        valence_loss_weight (`float`, defaults to 1.0): weight of the MSE in the `"sum"` loss.
        initializer_range (`float`, defaults to 0.02): std of the normal initialiser of the linear layers.
        id2label (`dict[int, str]`): defaults to the six MER 2023 emotions
            (neutral, angry, happy, sad, worried, surprise).

    Example:

    ```python
    >>> from modeling_avcpnet import MER2023Config, MER2023ForEmotionValence
    >>> config = MER2023Config(feature_names=["hubert_l18", "vit"], feature_sizes=[32, 16],
    ...                        feature_modalities=["audio", "visual"], hidden_size=16)
    >>> model = MER2023ForEmotionValence(config)
    ```"""

    model_type = "mer2023"
    # Not gathered by the Trainer at evaluation: only `logits` and `valence` become predictions.
    keys_to_ignore_at_inference = ["emotion_loss", "valence_loss", "hidden_states", "attentions"]

    feature_names: list[str] | tuple[str, ...] = (
        "hubert_large_layer18", "hubert_large_layer19", "hubert_large_layer20", "manet_rafdb", "resnet50_fer2013",
    )
    feature_sizes: list[int] | tuple[int, ...] = (1024, 1024, 1024, 1024, 2048)
    feature_modalities: list[str] | tuple[str, ...] = ("audio", "audio", "audio", "visual", "visual")
    hidden_size: int = 256
    fusion_structure: str = "parallel"
    hidden_dropout_prob: float = 0.3
    decoder_type: str = "jdev"
    loss_type: str | None = None
    uncertainty_init: float = 1.0
    valence_loss_weight: float = 1.0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(MER2023_LABELS))
        super().__post_init__(**kwargs)
        if self.label2id is None or set(self.label2id) != set(self.id2label.values()):
            self.label2id = {label: index for index, label in self.id2label.items()}
        self.feature_names = [str(name) for name in self.feature_names]
        self.feature_sizes = [int(size) for size in self.feature_sizes]
        self.feature_modalities = [str(modality) for modality in self.feature_modalities]
        if self.loss_type is None:
            self.loss_type = "uncertainty" if self.decoder_type == "jdev" else "sum"
        self._validate()

    def _validate(self) -> None:
        def fail(field: str, message: str):
            raise ValueError(f"MER2023Config.{field}: {message}")

        count = len(self.feature_names)
        if count == 0:
            fail("feature_names", "needs at least one feature")
        if len(set(self.feature_names)) != count:
            fail("feature_names", f"names must be unique, got {self.feature_names}")
        if len(self.feature_sizes) != count or min(self.feature_sizes) <= 0:
            fail("feature_sizes", f"must give a positive width for each of the {count} features "
                                  f"{self.feature_names}, got {self.feature_sizes}")
        if len(self.feature_modalities) != count:
            fail("feature_modalities", f"must give a modality for each of the {count} features "
                                       f"{self.feature_names}, got {self.feature_modalities}")
        bad = [m for m in self.feature_modalities if m not in FEATURE_MODALITIES]
        if bad:
            fail("feature_modalities", f"must be 'audio' or 'visual', got {bad}")
        if not isinstance(self.hidden_size, int) or self.hidden_size <= 0:
            fail("hidden_size", f"must be a positive integer, got {self.hidden_size!r}")
        if self.fusion_structure not in FUSION_STRUCTURES:
            fail("fusion_structure", f"must be one of {', '.join(FUSION_STRUCTURES)}, got {self.fusion_structure!r}")
        if self.fusion_structure != "parallel" and not (self.audio_feature_indices and self.visual_feature_indices):
            fail("fusion_structure", f"{self.fusion_structure!r} needs at least one audio and one visual feature, "
                                     f"got modalities {self.feature_modalities}")
        if self.decoder_type not in DECODER_TYPES:
            fail("decoder_type", f"must be one of {', '.join(DECODER_TYPES)}, got {self.decoder_type!r}")
        if self.loss_type not in LOSS_TYPES:
            fail("loss_type", f"must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}")
        if not 0.0 <= self.hidden_dropout_prob < 1.0:
            fail("hidden_dropout_prob", f"must be in [0, 1), got {self.hidden_dropout_prob!r}")
        if self.uncertainty_init <= 0:
            fail("uncertainty_init", f"must be positive (it divides the losses), got {self.uncertainty_init!r}")
        if self.valence_loss_weight < 0:
            fail("valence_loss_weight", f"must be non-negative, got {self.valence_loss_weight!r}")
        if self.num_labels < 2:
            fail("id2label", f"needs at least two emotions, got {self.id2label}")

    @property
    def polarity_ids(self) -> list[int]:
        """Polarity index (into `POLARITIES`) of each label id: `label2polarity` when a config sets one, else the
        challenge labels' map (`labels.MER2023_POLARITY`)."""
        label2polarity = getattr(self, "label2polarity", None) or MER2023_POLARITY
        return [POLARITIES.index(label2polarity.get(self.id2label[i], "neutral")) for i in range(len(self.id2label))]

    @property
    def input_size(self) -> int:
        """Length of the concatenated feature vector the model takes."""
        return sum(self.feature_sizes)

    @property
    def audio_feature_indices(self) -> list[int]:
        return [i for i, modality in enumerate(self.feature_modalities) if modality == "audio"]

    @property
    def visual_feature_indices(self) -> list[int]:
        return [i for i, modality in enumerate(self.feature_modalities) if modality == "visual"]


__all__ = ["MER2023Config", "MER2023_LABELS", "FUSION_STRUCTURES"]
