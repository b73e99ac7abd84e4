"""MER 2023 hierarchical audio-visual fusion with joint emotion/valence decoding (Wang et al., ACM MM 2023).

Pipeline: pre-extracted deep features (e.g. HuBERT-large layers 18-20, time-averaged face features) ->
per-feature alignment to one width (DA-Mat) -> attention-guided feature gathering (AFG, eq. 1-3) in one of three
fusion structures -> JDEV decoder (eq. 5-8) or the baseline decoder -> uncertainty-weighted loss (eq. 9) or the
plain CE + MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_mer2023 import MER2023Config


@dataclass
class MER2023ModelOutput(ModelOutput):
    """Output of `MER2023Model`.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, hidden_size)`): the fused vector (eq. 3 of the last
            AFG of the structure).
        aligned_states (`torch.FloatTensor` of shape `(batch, num_features, hidden_size)`): each feature after its
            alignment layer, in `config.feature_names` order.
        attentions (`tuple[torch.FloatTensor]`, returned with `output_attentions=True`): the AFG weights (eq. 2),
            one `(batch, n_inputs)` tensor per AFG in the order described by `MER2023FusionEncoder.afg_names`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    aligned_states: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MER2023EmotionValenceOutput(ModelOutput):
    """Output of `MER2023ForEmotionValence`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, returned when `labels` or `valence_labels` is given): eq. 9 (or the
            plain CE + MSE), a mean over the batch.
        logits (`torch.FloatTensor` of shape `(batch, num_labels)`): emotion logits (pre-softmax of eq. 5).
        valence (`torch.FloatTensor` of shape `(batch,)`): predicted valence (eq. 6).
        emotion_loss, valence_loss (`torch.FloatTensor` of shape `()`): the unweighted CE and MSE terms.
        hidden_states (`torch.FloatTensor` of shape `(batch, hidden_size)`, with `output_hidden_states=True`): the
            fused vector fed to the decoder.
        attentions (`tuple[torch.FloatTensor]`, with `output_attentions=True`): AFG weights, see `MER2023ModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    valence: torch.FloatTensor | None = None
    emotion_loss: torch.FloatTensor | None = None
    valence_loss: torch.FloatTensor | None = None
    hidden_states: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class AttentionGuidedFeatureGathering(nn.Module):
    """AFG (eq. 1-3): N aligned D-dim states -> attention scores over the N states -> their weighted sum.

    Eq. 2 scores the concatenated states, `alpha = softmax(Concat(h^1..h^N) W + b)` with `W` of shape
    `(N * D, N)`, so each weight depends on all the inputs (as in the MER 2023 baseline's attention fusion).
    """

    def __init__(self, num_inputs: int, hidden_size: int):
        super().__init__()
        self.num_inputs = num_inputs
        self.score = nn.Linear(num_inputs * hidden_size, num_inputs)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states `(batch, N, D)` -> fused `(batch, D)`, weights `(batch, N)` (rows sum to one)."""
        if states.dim() != 3 or states.shape[1] != self.num_inputs:
            raise ValueError(f"AFG expects states of shape (batch, {self.num_inputs}, hidden), "
                             f"got {tuple(states.shape)}")
        weights = torch.softmax(self.score(states.flatten(1)), dim=-1)
        fused = torch.einsum("bn,bnd->bd", weights, states)
        return fused, weights


class MER2023FusionEncoder(nn.Module):
    """The three AFG fusion structures of fig. 1 on the aligned features `(batch, N, D)`."""

    def __init__(self, config: MER2023Config):
        super().__init__()
        self.structure = config.fusion_structure
        self.audio_indices = config.audio_feature_indices
        self.visual_indices = config.visual_feature_indices
        size = config.hidden_size
        n_audio, n_visual = len(self.audio_indices), len(self.visual_indices)
        if self.structure == "parallel":
            self.afg = AttentionGuidedFeatureGathering(len(config.feature_names), size)
            self.afg_names = ["all"]
        elif self.structure == "audio_visual_pairs":
            # One AFG per audio feature over [that audio feature, all visual features], then one over the pairs.
            self.pair_afgs = nn.ModuleList(
                AttentionGuidedFeatureGathering(1 + n_visual, size) for _ in self.audio_indices
            )
            self.afg = AttentionGuidedFeatureGathering(n_audio, size)
            self.afg_names = [f"pair:{config.feature_names[i]}" for i in self.audio_indices] + ["pairs"]
        else:  # intra_then_inter
            self.audio_afg = AttentionGuidedFeatureGathering(n_audio, size)
            self.afg = AttentionGuidedFeatureGathering(1 + n_visual, size)
            self.afg_names = ["audio", "audio+visual"]

    def forward(self, aligned: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """aligned `(batch, N, D)` -> fused `(batch, D)`, AFG weights (one tensor per AFG, see `afg_names`)."""
        if self.structure == "parallel":
            fused, weights = self.afg(aligned)
            return fused, (weights,)
        audio = aligned[:, self.audio_indices]
        visual = aligned[:, self.visual_indices]
        if self.structure == "audio_visual_pairs":
            pairs, all_weights = [], []
            for j, afg in enumerate(self.pair_afgs):
                pair, weights = afg(torch.cat([audio[:, j : j + 1], visual], dim=1))
                pairs.append(pair)
                all_weights.append(weights)
            fused, weights = self.afg(torch.stack(pairs, dim=1))
            return fused, (*all_weights, weights)
        audio_fused, audio_weights = self.audio_afg(audio)
        fused, weights = self.afg(torch.cat([audio_fused.unsqueeze(1), visual], dim=1))
        return fused, (audio_weights, weights)


class MER2023JointDecoder(nn.Module):
    """JDEV (eq. 5-8): emotion logits from the fused vector; valence from the fused vector and from
    `tanh` of a linear map of the emotion posterior, combined by a linear layer."""

    def __init__(self, config: MER2023Config):
        super().__init__()
        self.emotion = nn.Linear(config.hidden_size, config.num_labels)  # W_e, b_e (eq. 5)
        self.valence_from_hidden = nn.Linear(config.hidden_size, 1)  # W_v, b_v (eq. 7)
        self.valence_from_emotion = nn.Linear(config.num_labels, 1)  # W_ev, b_ev (eq. 8)
        self.valence_combine = nn.Linear(2, 1)  # W_vv, b_vv (eq. 6)

    def forward(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fused `(batch, D)` -> emotion logits `(batch, C)`, valence `(batch,)`."""
        logits = self.emotion(fused)
        posterior = torch.softmax(logits, dim=-1)
        valence_hidden = self.valence_from_hidden(fused)
        valence_emotion = torch.tanh(self.valence_from_emotion(posterior))
        valence = self.valence_combine(torch.cat([valence_hidden, valence_emotion], dim=-1))
        return logits, valence.squeeze(-1)


class MER2023BaselineDecoder(nn.Module):
    """Two independent linear heads on the fused vector (the MER 2023 baseline)."""

    def __init__(self, config: MER2023Config):
        super().__init__()
        self.emotion = nn.Linear(config.hidden_size, config.num_labels)
        self.valence = nn.Linear(config.hidden_size, 1)

    def forward(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.emotion(fused), self.valence(fused).squeeze(-1)


def uncertainty_weighted_loss(
    emotion_loss: torch.Tensor | None,
    valence_loss: torch.Tensor | None,
    d_emotion: torch.Tensor,
    d_valence: torch.Tensor,
) -> torch.Tensor:
    """Eq. 9: `L_e / d1^2 + L_v / (2 d2^2) + log(1 + d1) + log(1 + d2)`. A missing task drops its two terms."""
    terms = []
    if emotion_loss is not None:
        terms.append(emotion_loss / d_emotion**2 + torch.log1p(d_emotion))
    if valence_loss is not None:
        terms.append(valence_loss / (2 * d_valence**2) + torch.log1p(d_valence))
    if not terms:
        raise ValueError("uncertainty_weighted_loss needs at least one of emotion_loss, valence_loss")
    return sum(terms)


class UncertaintyWeightedLoss(nn.Module):
    """Holds the trainable uncertainty weights d1 (emotion) and d2 (valence) of eq. 9."""

    def __init__(self, initial_value: float = 1.0):
        super().__init__()
        self.initial_value = initial_value
        self.d_emotion = nn.Parameter(torch.tensor(float(initial_value)))
        self.d_valence = nn.Parameter(torch.tensor(float(initial_value)))

    def forward(self, emotion_loss: torch.Tensor | None, valence_loss: torch.Tensor | None) -> torch.Tensor:
        return uncertainty_weighted_loss(emotion_loss, valence_loss, self.d_emotion, self.d_valence)


class MER2023PreTrainedModel(PreTrainedModel):
    config_class = MER2023Config
    config: MER2023Config
    base_model_prefix = "mer2023"
    main_input_name = "input_features"
    input_modalities = ("audio", "video")
    # The loss is a mean over the batch: the Trainer must not rescale it by the number of items.
    accepts_loss_kwargs = False

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, UncertaintyWeightedLoss):
            init.constant_(module.d_emotion, self.config.uncertainty_init)
            init.constant_(module.d_valence, self.config.uncertainty_init)


class MER2023Model(MER2023PreTrainedModel):
    """Feature alignment and AFG fusion: concatenated deep features -> fused vector."""

    def __init__(self, config: MER2023Config):
        super().__init__(config)
        self.align = nn.ModuleList(nn.Linear(size, config.hidden_size) for size in config.feature_sizes)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.fusion = MER2023FusionEncoder(config)
        self.post_init()

    def split_features(self, input_features: torch.Tensor) -> list[torch.Tensor]:
        """`(batch, sum(feature_sizes))` -> one `(batch, size)` tensor per feature, in `feature_names` order."""
        expected = self.config.input_size
        if input_features.dim() != 2 or input_features.shape[-1] != expected:
            layout = ", ".join(f"{n}:{s}" for n, s in zip(self.config.feature_names, self.config.feature_sizes))
            raise ValueError(
                f"input_features must have shape (batch, {expected}) - the features [{layout}] concatenated - "
                f"got {tuple(input_features.shape)}"
            )
        return list(torch.split(input_features, self.config.feature_sizes, dim=-1))

    def forward(
        self,
        input_features: torch.Tensor,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MER2023ModelOutput | tuple:
        """
        Args:
            input_features (`torch.FloatTensor` of shape `(batch, sum(config.feature_sizes))`): the deep features of
                each clip concatenated in `config.feature_names` order.
            output_attentions (`bool`, *optional*): also return the AFG weights.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        features = self.split_features(input_features.to(self.align[0].weight.dtype))
        aligned = torch.stack(
            [self.dropout(F.relu(layer(feature))) for layer, feature in zip(self.align, features)], dim=1
        )
        fused, weights = self.fusion(aligned)
        output = MER2023ModelOutput(
            last_hidden_state=fused, aligned_states=aligned, attentions=weights if output_attentions else None
        )
        return output if return_dict else output.to_tuple()


def _card_text(config: MER2023Config) -> str:
    from .hub_repo_avcpnet import minimal_card

    features = ", ".join(f"{name} ({modality}, {size})" for name, modality, size in
                         zip(config.feature_names, config.feature_modalities, config.feature_sizes))
    return minimal_card(
        config, "MER 2023 hierarchical audio-visual fusion",
        "The MER 2023 system of Wang et al. (ACM MM 2023): deep audio and visual features fused by attention-guided "
        "feature gathering and decoded jointly into discrete emotions and a valence value. The pipeline returns the "
        "emotion scores, their polarity and `valence`; the processor (`MER2023Processor`, with its backbones in "
        "`audio_backbone/` and `vision_backbone/`) computes the features from a video file.",
        tags=["mer2023", "audio-visual", "emotion-recognition", "valence", "video"],
        extra_rows={"features": features, "fusion": config.fusion_structure, "decoder": config.decoder_type},
        pipeline_tag=None)  # only the custom task (with valence) serves it: no standard pipeline tag to advertise


class MER2023ForEmotionValence(MER2023PreTrainedModel):
    """MER 2023 system: AFG fusion + JDEV (or baseline) decoder, with the uncertainty (or plain) multi-task loss.

    `forward` returns its loss, so a plain `transformers.Trainer` trains it; the Trainer finds `labels` and
    `valence_labels` as label columns, and evaluation predictions are `(logits, valence)`.
    """

    # The modules whose shape depends on the label set (W_e and, for JDEV, W_ev): fine-tuning on other labels
    # re-initialises them.
    classification_head_names = ("decoder.emotion", "decoder.valence_from_emotion")

    def __init__(self, config: MER2023Config):
        super().__init__(config)
        self.mer2023 = MER2023Model(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        decoder_class = MER2023JointDecoder if config.decoder_type == "jdev" else MER2023BaselineDecoder
        self.decoder = decoder_class(config)
        self.uncertainty = (
            UncertaintyWeightedLoss(config.uncertainty_init) if config.loss_type == "uncertainty" else None
        )
        self.post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        # With custom code, also name the fusion encoder for `AutoModel` so one checkpoint serves both classes
        # (save_pretrained itself only writes the auto_map entry of the saved class).
        if self._auto_class is not None:
            module = MER2023Model.__module__.rsplit(".", 1)[-1]
            auto_map = getattr(self.config, "auto_map", None) or {}
            self.config.auto_map = {**auto_map, "AutoModel": f"{module}.MER2023Model"}
        # A complete Hub repo: + pipeline file and `custom_pipelines` entry, and a card. The processor (with the
        # feature backbones) is saved by whoever has it: `MER2023Processor.save_pretrained`, the Trainer.
        from .hub_repo_avcpnet import save_complete_repo
        from .pipeline_mer2023 import MER2023Pipeline

        return save_complete_repo(self, super().save_pretrained, save_directory, *args, pipeline_class=MER2023Pipeline,
                                  card_text=_card_text, **kwargs)

    def compute_loss(
        self,
        logits: torch.Tensor,
        valence: torch.Tensor,
        labels: torch.Tensor | None = None,
        valence_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(total, CE, MSE): eq. 9 or `CE + valence_loss_weight * MSE`; a missing target drops its terms."""
        emotion_loss = F.cross_entropy(logits, labels.long()) if labels is not None else None
        valence_loss = (
            F.mse_loss(valence, valence_labels.to(valence.dtype).view_as(valence))
            if valence_labels is not None else None
        )
        if emotion_loss is None and valence_loss is None:
            raise ValueError("compute_loss needs labels, valence_labels or both")
        if self.uncertainty is not None:
            total = self.uncertainty(emotion_loss, valence_loss)
        else:
            total = sum(
                term for term in (
                    emotion_loss,
                    None if valence_loss is None else self.config.valence_loss_weight * valence_loss,
                ) if term is not None
            )
        return total, emotion_loss, valence_loss

    def forward(
        self,
        input_features: torch.Tensor,
        labels: torch.Tensor | None = None,
        valence_labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MER2023EmotionValenceOutput | tuple:
        """
        Args:
            input_features (`torch.FloatTensor` of shape `(batch, sum(config.feature_sizes))`): concatenated deep
                features, see `MER2023Model.forward`.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*): emotion ids.
            valence_labels (`torch.FloatTensor` of shape `(batch,)`, *optional*): valence targets.
            output_attentions (`bool`, *optional*): return the AFG weights.
            output_hidden_states (`bool`, *optional*): return the fused vector.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.mer2023(input_features, output_attentions=output_attentions, return_dict=True)
        fused = encoded.last_hidden_state
        logits, valence = self.decoder(self.dropout(fused))
        loss = emotion_loss = valence_loss = None
        if labels is not None or valence_labels is not None:
            loss, emotion_loss, valence_loss = self.compute_loss(logits, valence, labels, valence_labels)
        output = MER2023EmotionValenceOutput(
            loss=loss,
            logits=logits,
            valence=valence,
            emotion_loss=emotion_loss,
            valence_loss=valence_loss,
            hidden_states=fused if output_hidden_states else None,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "AttentionGuidedFeatureGathering",
    "MER2023BaselineDecoder",
    "MER2023EmotionValenceOutput",
    "MER2023ForEmotionValence",
    "MER2023FusionEncoder",
    "MER2023JointDecoder",
    "MER2023Model",
    "MER2023ModelOutput",
    "MER2023PreTrainedModel",
    "UncertaintyWeightedLoss",
    "uncertainty_weighted_loss",
]
