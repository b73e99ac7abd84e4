"""AV-CPNet (eMotions paper, arXiv 2311.17335, section 4) as a transformers model.

    pixel_values_videos (B, S, F, 3, H, W) -> Video Swin per segment -> mean over space, time -> Dropout(0.5) -> FC
                                               = visual segments (B, S, C1); their mean = visual_embeds (B, C1)
    input_features (B, A, T, n_mfcc)        -> 1-channel ResNet-34 per segment -> spatial mean -> FC + BN + Tanh
                                               -> temporal attention (1x1 conv + BN + Tanh, FC, ReLU) weights
                                               = weighted audio segments (B, A, C1); their mean = audio_embeds (B, C1)
    TS-CF: CAF layer (one 4-head cross-attention over the segments, both ways; linear, residual, mean; eq. 4-7)
                                                                             -> v', a' (B, C1)
           SF layer  (`config.fusion_type`; eq. 8 for "sum": fc_y(v') + fc_x(a'), straight to the classes)
    heads: the SF layer is the classifier -> logits; visual_logits / audio_logits = its per-modality terms
           (`config.unimodal_head`, below); loss = multi-task EP-CE (eq. 9-10)

The defaults are the public code's structure (`config.fusion_output="logits"`, `caf_sequence="segments"`,
`audio_head="bn_tanh"`, `visual_dropout_prob=0.5`); the structure this package had before (SF layer to C1 and a
classifier shared by both modalities, CAF on length-1 sequences, plain audio head, no visual dropout) stays
selectable under those fields, and a config saved before they existed loads with it (see `configuration_avcpnet`).

Where the implementation chooses between readings of the paper and its public code (XuecWu/eMotions, AV-CANet:
`models/AVNet.py`, `models/fusion_modules.py`, `main_final_delay.py`), the default being the paper's/public code's:

- SF layer output, `config.fusion_output`: `"logits"` (default, the public code): the public code calls
  `fusion_module(audio, visual)`, SumFusion `fc_x(a') + fc_y(v')` with fc_x, fc_y mapping 512 -> classes; no
  classifier follows. Here that layer is the classification head, `AVCPNetForVideoClassification.classifier` (an
  `AVCPNetFusionClassifier`), and `AVCPNetModel.fused_embeds` is None (there is no fused feature vector).
  `"hidden"`: the SF layer outputs C1 features and one classifier W_c shared by both modalities follows (this
  package before; its SF terms through W_c left the class rows of W_c to align, and training on the sample set sat
  at ~0.64 in 3 of 8 seeds).
- Unimodal logits (eq. 10's L_v, L_a), `config.unimodal_head`:
  `"sf_terms"` (default, the public code): the SF layer's own per-modality terms on the post-CAF features. The
  public training loop takes `out_v = fc_y(v')`, `out_a = fc_x(a')` (each with the full bias of its layer; they add
  up to the fused logits); for concat it splits `fc_out`'s weight by input half and gives each half `fc_out.b / 2`
  (also how `ew_sum`'s single output layer is split here). With `fusion_output="hidden"` the terms go through W_c
  with half its bias each. For `ew_product`, `neural` and `gated`, which are not a sum of per-modality terms
  (the public loop has no working branch for them), a term is the SF output with the other modality's input set
  to zeros. `"separate"`: a classifier per modality on the pre-CAF features (what this package did before the
  field existed; a saved config without the field loads as `"separate"`, and `from_pretrained` refuses weights
  whose heads or fusion structure do not match the config, naming the fields).
- Classifier dropout (`classifier_dropout_prob`, default 0): with `fusion_output="logits"` applied once to v', a',
  so the terms still add up to the fused logits; with `"hidden"` (as before) to each head's input separately.
- `fusion_type` (table 8), as `fusion_output="logits"` builds them (straight to the classes): `sum` = fc_y(v') +
  fc_x(a') (eq. 8); `concat` = fc_out([a'; v']) (the public ConcatFusion: one layer, no per-modality projections);
  `ew_sum` ("EW-SumFusion", "EW" = element-wise): the public code defines no such module, so it is the plain
  element-wise sum, out(v' + a'); `ew_product` = out(P_v v' * P_a a') (the element-wise product that `ew_sum`
  computed before; a config saved before `unimodal_head` existed with `fusion_type="ew_sum"` loads as
  `ew_product`); `neural` = Linear, ReLU, Linear on [a'; v'] (not in the public code); `gated` = fc_out(sigmoid(
  P_a a') * P_v v'): the public code's GatedFusion (x_gate=True) gates its `y` by `sigmoid(fc_x(x))` and AVNet
  calls the fusion module as `(audio, visual)`, so the audio features gate the visual ones (Kiela et al. 2018,
  the paper's [28], defines the gate generically). With `fusion_output="hidden"` each maps to C1 instead (`sum` =
  P_v v' + P_a a', `concat` = Linear([P_v v'; P_a a']), ...) before W_c.
- `hidden_states` / `audio_hidden_states` / `attentions` are the encoders' own tensors, on the autograd graph, in
  the encoders' batch layout (`batch * segments` rows; audio: the clips with audio only), as transformers models
  that fold frames into the batch (X-CLIP) do; a `(batch, segments, ...)` reshape would be a copy off the graph.

Design decisions where the paper is silent (documented here and in the docstrings below):

- Audio encoder: built from transformers' ResNet blocks (`ResNetBasicLayer`, `ResNetShortCut`, ...) with the same
  parameter names as `transformers.ResNetModel` (so a `ResNetModel` state dict maps one to one, see
  `convert/resnet_weights.py`), rather than `ResNetModel` itself, because (1) `ResNetEmbeddings` hard-codes a square
  7x7 stride-2 stem while the public code uses a (7, 1) stride-(2, 1) stem that keeps the MFCC axis at full
  resolution, (2) `ResNetModel` has no gradient checkpointing, whereas our blocks are `GradientCheckpointingLayer`s,
  and (3) a nested `PreTrainedModel` would initialise itself on its own during construction.
- Clips without audio (`audio_mask[i] == False`) do not count in the audio encoder (their MFCCs are replaced by zeros,
  and in training every batch norm of the audio branch takes its statistics over the clips with audio only,
  `masked_batch_norm`: the numbers of encoding those clips alone, without a host sync) and are classified from vision
  alone: their `logits` are their `visual_logits` and (with `fusion_output="hidden"`) their `fused_embeds` are their
  `visual_embeds`; their SF input v' is their pre-CAF `visual_embeds` (with no audio there is nothing to attend to).
  With `fusion_output="logits"` and `unimodal_head="sf_terms"` their visual logits are the SF output without the audio
  part: fc_y(v) for `sum`, the visual weight part plus the whole output bias for `concat` / `ew_sum` (with `"hidden"`,
  as before, the visual term with half of W_c's bias). Their `audio_embeds` are zeros and their `audio_logits` (the
  audio head's bias) carry no information; the loss leaves them out of the fusion and audio terms (see
  `loss_avcpnet.py`). An audio-only config cannot classify such clips: their `logits` are that bias too, and they are
  left out of its loss.
- The CAF layer (`config.caf_sequence`): `"segments"` (default, the public code): the cross-attention runs over the
  segment features of each modality (the paper writes the visual representation as the series of segment features
  f_v^1..f_v^s), with one attention module for both directions (the public `attention_module`, called both ways);
  the audio sequence is the temporal attention's weighted segments, whose mean is F_a^2 (the public code feeds its
  MPAM outputs instead, a module that is not in this paper version and that it never constructs). `"pooled"`: the
  paper's "unsqueezing" read literally, length-1 sequences (each attention then has one key and returns the
  projected value of the other modality, a linear residual), one attention per direction (this package before).
- Audio head (`config.audio_head`): `"bn_tanh"` (default): VAANet's and the public code's `a_fc = Linear +
  BatchNorm1d + Tanh` and `aa_net.conv = Conv1d + BatchNorm1d + Tanh`, the mixer starting from torch's default
  `nn.Linear` initialisation as theirs; `"linear"`: a plain Linear and a bare conv with a unit-bias mixer (before).
  The other layers keep transformers' initialisation (normal, std `initializer_range`), not torch's defaults.
- Visual dropout (`config.visual_dropout_prob`, default 0.5): the public AVNet's `Dropout(0.5)` on each segment's
  pooled Video Swin features, before `v_fc` (0.0 before).
- Under gradient checkpointing the audio ResNet's batch-norm layers are run twice in training (forward and
  recomputation), so their running statistics take two momentum steps per batch; outputs and gradients are exact.

Why one file of ~800 lines: transformers keeps a model's modules in its `modeling_` file, and this file is copied
into Hub repos as it is; the Video Swin backbone already lives in its own `modeling_video_swin.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.resnet.modeling_resnet import ResNetBasicLayer, ResNetShortCut
from transformers.utils import ModelOutput

from .configuration_avcpnet import AVCPNetConfig
from .loss_avcpnet import compute_multitask_loss, normalize_audio_mask
from .modeling_video_swin import VideoSwinEncoder, init_video_swin_weights

# The Auto classes that a saved folder maps to our classes (see `AVCPNetPreTrainedModel.save_pretrained`).
_AUTO_MAP = {"AutoModel": "AVCPNetModel", "AutoModelForVideoClassification": "AVCPNetForVideoClassification"}


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class AVCPNetModelOutput(ModelOutput):
    r"""
    Output of [`AVCPNetModel`].

    Args:
        fused_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*):
            The TS-CF fused representation (audio-visual configs with `fusion_output="hidden"`); clips without audio
            carry their `visual_embeds`. None with `fusion_output="logits"` (the default: the SF layer maps straight
            to the classes in the classification head, there is no fused feature vector; use
            `visual_attended_embeds` / `audio_attended_embeds`, its inputs). Single-modality configs: that modality's
            embeddings.
        visual_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*):
            Video Swin features averaged over space and time, dropped out (`visual_dropout_prob`), projected and
            averaged over the segments (F_v^1 of the paper).
        audio_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*):
            Audio features after the temporal attention and temporal pooling (F_a^2); zeros for clips without audio.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            Video Swin hidden states (patch embeddings, then each stage), each of shape
            `(batch_size * num_segments, time_i, height_i, width_i, channels_i)` (row `b * num_segments + s` is
            segment `s` of clip `b`): the encoder's own tensors, on the autograd graph (`retain_grad()` works), not
            reshaped copies; `.view(batch_size, num_segments, ...)` for a per-clip view.
        visual_fusion_term, audio_fusion_term (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*):
            The SF layer's own term of each modality on the post-CAF features (audio-visual configs with
            `unimodal_head="sf_terms"` and `fusion_output="hidden"`); for `sum`, `ew_sum`, `concat` fusion they add
            up to `fused_embeds` (clips with audio). A clip without audio has its visual term computed on its
            pre-CAF `visual_embeds`. (With `fusion_output="logits"` the terms are the unimodal logits themselves.)
        visual_attended_embeds, audio_attended_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`,
            *optional*): the SF layer's inputs v', a' (audio-visual configs): the CAF outputs F'_v2, F'_a2 (the
            pooled embeddings when `use_cross_attention=False`); a clip without audio has its `visual_embeds`.
        audio_hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            Audio ResNet hidden states (stem, then each stage), each of shape
            `(clips_with_audio * audio_segments, channels_i, time_i, mfcc_i)`: the ResNet's own tensors (on the
            autograd graph), rows `c * audio_segments + s` for the `c`-th clip with audio (`audio_mask` True, in
            batch order); None when no clip of the batch has audio.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Video Swin attention probabilities of every block, each of shape
            `(batch_size * num_segments, num_windows, num_heads, window_volume, window_volume)` (on the graph).
    """

    fused_embeds: torch.FloatTensor | None = None
    visual_embeds: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    visual_fusion_term: torch.FloatTensor | None = None
    audio_fusion_term: torch.FloatTensor | None = None
    visual_attended_embeds: torch.FloatTensor | None = None
    audio_attended_embeds: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    audio_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class AVCPNetVideoClassifierOutput(ModelOutput):
    r"""
    Output of [`AVCPNetForVideoClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Multi-task EP-CE loss (paper eq. 10): weighted sum of `fusion_loss`, `visual_loss`, `audio_loss`.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            The model's prediction: the fused head (audio-visual configs; the visual head for clips without audio),
            or the single modality's head.
        visual_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            Visual head (None for `modalities="audio"`).
        audio_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            Audio head (None for `modalities="visual"`); uninformative for clips without audio.
        fusion_loss, visual_loss, audio_loss (`torch.FloatTensor` of shape `()`, *optional*):
            The EP-CE loss of each branch present (see `loss_avcpnet.compute_multitask_loss`).
        hidden_states, audio_hidden_states, attentions: as in [`AVCPNetModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    visual_logits: torch.FloatTensor | None = None
    audio_logits: torch.FloatTensor | None = None
    fusion_loss: torch.FloatTensor | None = None
    visual_loss: torch.FloatTensor | None = None
    audio_loss: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    audio_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------
# Audio branch: 1-channel ResNet-34 on MFCC segments, temporal attention, temporal pooling
# ----------------------------------------------------------------------------------------------------------------


def masked_batch_norm(norm: nn.modules.batchnorm._BatchNorm, hidden_state: torch.Tensor,
                      sample_mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""`norm(hidden_state)` with the batch statistics taken over the samples where `sample_mask` is True only.

    `sample_mask` (`(N,)` bool, one flag per row of `hidden_state`, `(N, C, ...)`): None, or a `norm` that uses its
    running statistics (eval mode), is the plain `norm(hidden_state)`. Otherwise (training) the mean and the biased
    variance that normalise, and the unbiased variance that enters `running_var`, are those of the kept rows (what
    `norm(hidden_state[sample_mask])` computes), by masked sums: no host sync and no data-dependent shape, so one
    graph under `torch.compile`. The running statistics take `norm`'s momentum step (`momentum=None`: the cumulative
    average) and `num_batches_tracked` counts the batch only when a row is kept; with none kept they stay unchanged.
    The rows left out come out as zeros (so they stay finite and pass no gradient into the statistics). One
    difference from `norm`: a single kept value per channel gives running_var the biased variance 0 instead of
    raising (telling would need a host sync).
    """
    if sample_mask is None or not (norm.training or norm.running_mean is None):
        return norm(hidden_state)
    keep = sample_mask.view(-1, *([1] * (hidden_state.ndim - 1)))
    reduce = [0, *range(2, hidden_state.ndim)]
    channels = [1, -1, *([1] * (hidden_state.ndim - 2))]
    # Statistics in float32 at least (as torch's batch norm keeps them for half-precision inputs).
    values = hidden_state.to(torch.promote_types(hidden_state.dtype, torch.float32))
    count = sample_mask.sum() * math.prod(hidden_state.shape[2:])
    denominator = count.clamp(min=1).to(values.dtype)
    mean = torch.where(keep, values, 0).sum(reduce, keepdim=True) / denominator
    centered = values - mean
    variance = torch.where(keep, centered, 0).square().sum(reduce, keepdim=True) / denominator
    normalized = centered * torch.rsqrt(variance + norm.eps)
    if norm.weight is not None:
        normalized = normalized * norm.weight.view(channels) + norm.bias.view(channels)
    normalized = torch.where(keep, normalized, 0).to(hidden_state.dtype)

    if norm.training and norm.running_mean is not None:
        with torch.no_grad():
            any_kept = count > 0
            norm.num_batches_tracked.add_(any_kept.to(norm.num_batches_tracked.dtype))
            if norm.momentum is None:  # cumulative moving average, as nn.BatchNorm: 1 / num_batches_tracked
                factor = 1.0 / norm.num_batches_tracked.clamp(min=1).to(values.dtype)
            else:
                factor = norm.momentum
            unbiased = variance * (denominator / (denominator - 1).clamp(min=1))
            for running, batch in ((norm.running_mean, mean), (norm.running_var, unbiased)):
                updated = factor * batch.flatten() + (1 - factor) * running
                running.copy_(torch.where(any_kept, updated.to(running.dtype), running))
    return normalized


def _convolve_normalize(layer: nn.Module, hidden_state: torch.Tensor, sample_mask: torch.Tensor | None,
                        activation: bool = True) -> torch.Tensor:
    """A `convolution` + `normalization` (+ `activation`) module (transformers' `ResNetConvLayer`,
    `ResNetShortCut`, our stem) run with `masked_batch_norm`."""
    hidden_state = masked_batch_norm(layer.normalization, layer.convolution(hidden_state), sample_mask)
    return layer.activation(hidden_state) if activation else hidden_state


class AVCPNetAudioStemConvolution(nn.Module):
    """The (7, 1) stride-(2, 1) convolution + BatchNorm + ReLU of the public code's audio stem (time x MFCC)."""

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.convolution = nn.Conv2d(
            1, config.audio_embedding_size, kernel_size=(7, 1), stride=(2, 1), padding=(3, 0), bias=False
        )
        self.normalization = nn.BatchNorm2d(config.audio_embedding_size)
        self.activation = nn.ReLU()

    def forward(self, hidden_state: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
        return _convolve_normalize(self, hidden_state, sample_mask)


class AVCPNetAudioStem(nn.Module):
    """Stem convolution then 3x3 stride-2 max pooling (names as `transformers.ResNetEmbeddings`)."""

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.embedder = AVCPNetAudioStemConvolution(config)
        self.pooler = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, input_features: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
        # MFCC arrive in float32; a bfloat16 model takes them in its own dtype here, at its input.
        input_features = input_features.to(self.embedder.convolution.weight.dtype)
        return self.pooler(self.embedder(input_features, sample_mask))


class AVCPNetAudioResNetBlock(ResNetBasicLayer, GradientCheckpointingLayer):
    """transformers' ResNet basic block (two 3x3 convolutions and a shortcut), checkpointable. With `sample_mask`
    (training with clips without audio) its batch norms run as `masked_batch_norm` (the same modules, called
    through their parts); without, it is transformers' forward."""

    def forward(self, hidden_state: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
        if sample_mask is None:
            return ResNetBasicLayer.forward(self, hidden_state)
        residual = hidden_state
        first, second = self.layer
        hidden_state = _convolve_normalize(second, _convolve_normalize(first, hidden_state, sample_mask), sample_mask)
        if isinstance(self.shortcut, ResNetShortCut):
            residual = _convolve_normalize(self.shortcut, residual, sample_mask, activation=False)
        return self.activation(hidden_state + residual)


class AVCPNetAudioResNetStage(nn.Module):
    """A ResNet stage of basic blocks, the first one changing width and stride (names as `ResNetStage`)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, depth: int):
        super().__init__()
        self.layers = nn.Sequential(
            AVCPNetAudioResNetBlock(in_channels, out_channels, stride=stride),
            *[AVCPNetAudioResNetBlock(out_channels, out_channels) for _ in range(depth - 1)],
        )

    def forward(self, hidden_state: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            hidden_state = layer(hidden_state, sample_mask)
        return hidden_state


class AVCPNetAudioResNetEncoder(nn.Module):
    """The ResNet stages (names as `ResNetEncoder`): stride 1 for the first stage, 2 for the others."""

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        widths = [config.audio_embedding_size] + list(config.audio_hidden_sizes)
        self.stages = nn.ModuleList(
            AVCPNetAudioResNetStage(widths[i], widths[i + 1], stride=1 if i == 0 else 2, depth=depth)
            for i, depth in enumerate(config.audio_depths)
        )

    def forward(self, hidden_state: torch.Tensor, output_hidden_states: bool = False,
                sample_mask: torch.Tensor | None = None):
        hidden_states = (hidden_state,) if output_hidden_states else None
        for stage in self.stages:
            hidden_state = stage(hidden_state, sample_mask)
            if output_hidden_states:
                hidden_states += (hidden_state,)
        return hidden_state, hidden_states


class AVCPNetAudioResNet(nn.Module):
    r"""
    1-channel ResNet (ResNet-34 by default) on one MFCC segment; the parameter names are those of
    `transformers.ResNetModel` (`embedder.embedder.convolution`, `encoder.stages.{i}.layers.{j}...`).

    Input `(N, 1, time, num_mfcc)`; output the spatially averaged features `(N, audio_hidden_sizes[-1])` (the public
    code's final (8, 2) average pool for 256 x 32 segments) and, when asked, the stem and stage outputs.
    `sample_mask` (`(N,)` bool, optional): the segments whose batch-norm statistics count in training (see
    `masked_batch_norm`).
    """

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.embedder = AVCPNetAudioStem(config)
        self.encoder = AVCPNetAudioResNetEncoder(config)
        self.pooler = nn.AdaptiveAvgPool2d(1)

    def forward(self, input_features: torch.Tensor, output_hidden_states: bool = False,
                sample_mask: torch.Tensor | None = None):
        hidden_state, hidden_states = self.encoder(self.embedder(input_features, sample_mask), output_hidden_states,
                                                   sample_mask)
        return self.pooler(hidden_state).flatten(1), hidden_states


class AVCPNetSegmentMixer(nn.Linear):
    """The fully connected layer of the temporal attention, mixing the segment scores; its own class so that
    `_init_weights` can give it its initialisation (see there)."""


class AVCPNetAudioTemporalAttention(nn.Module):
    r"""
    Temporal attention over the audio segments (paper section 4.1, VAANet's `aa_net`): a 1x1 convolution scores each
    segment from its channels (with `config.audio_head="bn_tanh"`, VAANet's and the public code's form, followed by
    BatchNorm1d and Tanh: `score`, `score_norm`), a fully connected layer mixes the scores across segments
    (`mixer`), a ReLU makes them non-negative weights; each segment is multiplied by its weight.

    Input `(N, audio_segments, hidden_size)`; output the weighted segments `(N, audio_segments, hidden_size)` (their
    mean over the segments is the temporally pooled F_a^2) and the weights `(N, audio_segments)`. `sample_mask`
    (`(N,)` bool, optional): the clips whose scores count in the batch-norm statistics (`masked_batch_norm`).
    """

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.score = nn.Conv1d(config.hidden_size, 1, kernel_size=1, bias=False)
        bn_tanh = config.audio_head == "bn_tanh"
        self.score_norm = nn.BatchNorm1d(1) if bn_tanh else None
        self.score_activation = nn.Tanh() if bn_tanh else None
        self.mixer = AVCPNetSegmentMixer(config.audio_segments, config.audio_segments)
        self.activation = nn.ReLU()

    def forward(self, segments: torch.Tensor,
                sample_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(segments.transpose(1, 2))  # (N, 1, segments)
        if self.score_norm is not None:
            scores = self.score_activation(masked_batch_norm(self.score_norm, scores, sample_mask))
        weights = self.activation(self.mixer(scores.squeeze(1)))
        return segments * weights.unsqueeze(-1), weights


class AVCPNetAudioEncoder(nn.Module):
    r"""
    Audio branch: each MFCC segment through the 1-channel ResNet, spatial pooling, a linear layer to `hidden_size`
    (with `config.audio_head="bn_tanh"` followed by BatchNorm1d and Tanh, VAANet's and the public code's `a_fc`:
    `projection`, `projection_norm`), then the temporal attention module.

    Input `input_features (N, audio_segments, time, num_mfcc)`; output the attention-weighted segment features
    `(N, audio_segments, hidden_size)` (their mean over the segments is F_a^2 of the paper, the temporal pooling) and,
    when asked, the ResNet hidden states as computed, each `(N * audio_segments, channels, time_i, mfcc_i)`.

    `has_audio` (`(N,)` bool, optional): the clips whose audio counts. Their batch-norm statistics in training are
    those of these clips alone (every batch norm of the branch runs as `masked_batch_norm`: the ResNet's, the
    projection's and the scores'); the others are encoded from zero features (so that no value of theirs, NaN
    included, reaches a gradient) and their outputs are not zeroed here (the caller does).
    """

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.resnet = AVCPNetAudioResNet(config)
        self.projection = nn.Linear(config.audio_hidden_sizes[-1], config.hidden_size)
        bn_tanh = config.audio_head == "bn_tanh"
        self.projection_norm = nn.BatchNorm1d(config.hidden_size) if bn_tanh else None
        self.projection_activation = nn.Tanh() if bn_tanh else None
        self.temporal_attention = AVCPNetAudioTemporalAttention(config)

    def forward(self, input_features: torch.Tensor, output_hidden_states: bool = False,
                has_audio: torch.Tensor | None = None):
        batch_size, segments, time, num_mfcc = input_features.shape
        segment_mask = None
        if has_audio is not None:
            input_features = torch.where(has_audio.view(-1, 1, 1, 1), input_features, 0)
            segment_mask = has_audio.unsqueeze(1).expand(batch_size, segments).reshape(-1)
        pooled, hidden_states = self.resnet(
            input_features.reshape(batch_size * segments, 1, time, num_mfcc), output_hidden_states, segment_mask
        )
        projected = self.projection(pooled)
        if self.projection_norm is not None:
            projected = self.projection_activation(masked_batch_norm(self.projection_norm, projected, segment_mask))
        weighted_segments, _ = self.temporal_attention(projected.view(batch_size, segments, -1), has_audio)
        return weighted_segments, hidden_states


# ----------------------------------------------------------------------------------------------------------------
# TS-CF fusion: CAF layer (cross-attention fusion) + SF layer (modality fusion)
# ----------------------------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention on `(B, heads, L, head_dim)`; returns `(B, Lq, heads, head_dim)` and the weights."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class AVCPNetCrossAttention(nn.Module):
    r"""
    Multi-head attention of `queries (B, Lq, C)` on `context (B, Lk, C)` (paper eq. 4-5): queries from one
    modality, keys and values from the other; `config.num_attention_heads` heads (4), output `(B, Lq, C)`.
    Dispatches on `config._attn_implementation` through transformers' attention interface (SDPA by default).
    """

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_probs_dropout_prob
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        return states.view(*states.shape[:2], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        query = self._heads(self.q_proj(queries))
        key, value = self._heads(self.k_proj(context)), self._heads(self.v_proj(context))
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attended, _ = attention_interface(
            self, query, key, value, None, scaling=self.scaling, dropout=self.dropout if self.training else 0.0,
            is_causal=False,
        )
        return self.o_proj(attended.reshape(queries.shape))


class AVCPNetCrossAttentionFusion(nn.Module):
    r"""
    CAF layer (paper eq. 4-7): visual queries attend to the audio keys/values and audio queries to the visual ones;
    each result goes through a linear layer, is added to its input (residual) and is average-pooled over the sequence.

    `config.caf_sequence="segments"` (the public code's `CrossAttentionFusion_Layer`): the sequences are the segment
    features of each modality (`num_segments` visual, `audio_segments` audio), and one attention module (`attention`,
    the public `attention_module`) serves both directions; `visual_output` / `audio_output` are its `linear_v` /
    `linear_a`. `"pooled"` (this package before): the pooled vectors as length-1 sequences (each attention then has
    one key and returns the other modality's projected value), one attention per direction (`visual_attention`,
    `audio_attention`).

    Inputs `visual (B, Lv, hidden_size)`, `audio (B, La, hidden_size)` (`(B, hidden_size)` is read as length 1);
    outputs `(F'_v2, F'_a2)`, each `(B, hidden_size)`.
    """

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        if config.caf_sequence == "segments":
            self.attention = AVCPNetCrossAttention(config)
        else:
            self.visual_attention = AVCPNetCrossAttention(config)
            self.audio_attention = AVCPNetCrossAttention(config)
        self.visual_output = nn.Linear(config.hidden_size, config.hidden_size)
        self.audio_output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        visual = visual.unsqueeze(1) if visual.ndim == 2 else visual
        audio = audio.unsqueeze(1) if audio.ndim == 2 else audio
        visual_attention = getattr(self, "visual_attention", None) or self.attention
        audio_attention = getattr(self, "audio_attention", None) or self.attention
        visual_attended = visual_attention(visual, audio)
        audio_attended = audio_attention(audio, visual)
        # The public order: linear per position, residual, mean over the sequence (the linear commutes with the mean).
        visual = (self.visual_output(visual_attended) + visual).mean(dim=1)
        audio = (self.audio_output(audio_attended) + audio).mean(dim=1)
        return visual, audio


# SF-layer variants that are a sum of a visual and an audio term (so the unimodal logits add up to the fused ones).
ADDITIVE_FUSION_TYPES = ("sum", "ew_sum", "concat")


class AVCPNetModalityFusion(nn.Module):
    r"""
    SF layer: the fusion of `config.fusion_type` (see the module docstring; `sum` is eq. 8). Inputs `visual, audio
    (B, hidden_size)` (the CAF outputs); output `(B, hidden_size)`.

    `modality_terms(visual, audio)` gives each modality's own term `(B, hidden_size)` x 2 (the public code's
    `fc_y(v')`, `fc_x(a')`): for the additive types (`sum`, `ew_sum`, `concat`) the two terms add up to the fused
    output exactly (`concat` splits its output layer by input half and its bias in two); for `ew_product`,
    `neural`, `gated` a term is the layer's output with the other modality's input set to zeros.
    """

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.fusion_type = config.fusion_type
        if self.fusion_type != "ew_sum":  # ew_sum adds the two vectors as they are, without per-modality layers
            self.visual_projection = nn.Linear(config.hidden_size, config.hidden_size)
            self.audio_projection = nn.Linear(config.hidden_size, config.hidden_size)
        if self.fusion_type == "concat":
            self.output = nn.Linear(2 * config.hidden_size, config.hidden_size)
        elif self.fusion_type == "neural":
            self.hidden = nn.Linear(2 * config.hidden_size, config.hidden_size)
            self.activation = nn.ReLU()
            self.output = nn.Linear(config.hidden_size, config.hidden_size)

    @property
    def is_additive(self) -> bool:
        return self.fusion_type in ADDITIVE_FUSION_TYPES

    def _additive_terms(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fusion_type == "ew_sum":
            return visual, audio
        visual, audio = self.visual_projection(visual), self.audio_projection(audio)
        if self.fusion_type == "sum":
            return visual, audio
        width = visual.shape[-1]  # concat: Linear([v; a]) = W[:, :C] v + W[:, C:] a + b, the bias split in two
        weight, half_bias = self.output.weight, self.output.bias / 2
        return (nn.functional.linear(visual, weight[:, :width], half_bias),
                nn.functional.linear(audio, weight[:, width:], half_bias))

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        if self.is_additive:
            visual_term, audio_term = self._additive_terms(visual, audio)
            return visual_term + audio_term
        visual, audio = self.visual_projection(visual), self.audio_projection(audio)
        if self.fusion_type == "ew_product":
            return visual * audio
        if self.fusion_type == "gated":
            return torch.sigmoid(audio) * visual  # the audio features gate the visual ones (public GatedFusion call)
        return self.output(self.activation(self.hidden(torch.cat([visual, audio], dim=-1))))  # neural

    def modality_terms(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.is_additive:
            return self._additive_terms(visual, audio)
        return self(visual, torch.zeros_like(audio)), self(torch.zeros_like(visual), audio)


class AVCPNetFusionClassifier(nn.Module):
    r"""
    SF layer mapping straight to the classes (`config.fusion_output="logits"`, the public code's fusion modules); it
    is the classification head of an audio-visual [`AVCPNetForVideoClassification`] (`classifier`). On the CAF
    outputs v', a' (public name in brackets):

    - `sum` (SumFusion): `visual_output(v') + audio_output(a')` (`fc_y`, `fc_x`), each `Linear(hidden_size,
      num_labels)`;
    - `concat` (ConcatFusion): `output([a'; v'])` (`fc_out`, `Linear(2 * hidden_size, num_labels)`, audio half first);
    - `ew_sum`: `output(v' + a')`; `ew_product`: `output(P_v v' * P_a a')`; `gated` (GatedFusion, x_gate):
      `output(sigmoid(P_a a') * P_v v')` (`fc_out`, `fc_x` = `audio_projection`, `fc_y` = `visual_projection`);
      `neural`: `output(ReLU(hidden([a'; v'])))` (not in the public code).

    `modality_logits` gives each modality's own term (the unimodal logits of eq. 10): for `sum` the public training
    loop's `fc_y(v')`, `fc_x(a')` (each with its own bias); for `concat` and `ew_sum` the output layer's weight part
    of each modality plus half its bias (the public loop's concat split); they add up to the fused logits exactly.
    For `ew_product`, `gated`, `neural` (not a sum of terms) a term is the output with the other input zeroed.
    """

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.fusion_type = config.fusion_type
        hidden, labels = config.hidden_size, config.num_labels
        if self.fusion_type == "sum":
            self.visual_output = nn.Linear(hidden, labels)
            self.audio_output = nn.Linear(hidden, labels)
        elif self.fusion_type == "concat":
            self.output = nn.Linear(2 * hidden, labels)
        elif self.fusion_type == "neural":
            self.hidden = nn.Linear(2 * hidden, hidden)
            self.activation = nn.ReLU()
            self.output = nn.Linear(hidden, labels)
        else:
            if self.fusion_type != "ew_sum":
                self.visual_projection = nn.Linear(hidden, hidden)
                self.audio_projection = nn.Linear(hidden, hidden)
            self.output = nn.Linear(hidden, labels)

    @property
    def is_additive(self) -> bool:
        return self.fusion_type in ADDITIVE_FUSION_TYPES

    def _additive_terms(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fusion_type == "sum":
            return self.visual_output(visual), self.audio_output(audio)
        weight, half_bias = self.output.weight, self.output.bias / 2
        if self.fusion_type == "ew_sum":
            return nn.functional.linear(visual, weight, half_bias), nn.functional.linear(audio, weight, half_bias)
        width = audio.shape[-1]  # concat: fc_out([a'; v']) = W[:, :C] a' + W[:, C:] v' + b
        return (nn.functional.linear(visual, weight[:, width:], half_bias),
                nn.functional.linear(audio, weight[:, :width], half_bias))

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        if self.is_additive:
            visual_term, audio_term = self._additive_terms(visual, audio)
            return visual_term + audio_term
        if self.fusion_type == "neural":
            return self.output(self.activation(self.hidden(torch.cat([audio, visual], dim=-1))))
        visual, audio = self.visual_projection(visual), self.audio_projection(audio)
        if self.fusion_type == "ew_product":
            return self.output(visual * audio)
        return self.output(torch.sigmoid(audio) * visual)  # gated: the audio features gate the visual ones

    def modality_logits(self, visual: torch.Tensor, audio: torch.Tensor,
                        has_audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(visual_logits, audio_logits)`. A clip without audio gets as visual logits the SF output without the
        audio features' part: for `concat` / `ew_sum` its visual term plus the whole output bias (not half)."""
        if not self.is_additive:
            return self(visual, torch.zeros_like(audio)), self(torch.zeros_like(visual), audio)
        visual_term, audio_term = self._additive_terms(visual, audio)
        if self.fusion_type != "sum":
            visual_term = visual_term + torch.where(has_audio.unsqueeze(-1), 0.0, self.output.bias / 2)
        return visual_term, audio_term


class AVCPNetFusion(nn.Module):
    """TS-CF module: the CAF layer (when `config.use_cross_attention`) then, with `config.fusion_output="hidden"`,
    the SF layer (`modality_fusion`, to `hidden_size`). With `fusion_output="logits"` the SF layer maps to the classes
    and is the classification head ([`AVCPNetFusionClassifier`]), so this module is the CAF layer only.

    `attend(visual, audio, has_audio)`: sequences `(B, Lv, C1)`, `(B, La, C1)` -> the SF inputs v', a' `(B, C1)` each
    (the CAF outputs; the mean over the sequence without CAF). `forward` (`fusion_output="hidden"`): `(B, C1)` fused,
    with `return_terms=True` also the SF layer's per-modality terms (`AVCPNetModalityFusion.modality_terms`)."""

    def __init__(self, config: AVCPNetConfig):
        super().__init__()
        self.cross_attention = AVCPNetCrossAttentionFusion(config) if config.use_cross_attention else None
        self.modality_fusion = AVCPNetModalityFusion(config) if config.fusion_output == "hidden" else None

    def attend(self, visual: torch.Tensor, audio: torch.Tensor,
               has_audio: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        visual = visual.unsqueeze(1) if visual.ndim == 2 else visual
        audio = audio.unsqueeze(1) if audio.ndim == 2 else audio
        pooled_visual = visual.mean(dim=1)
        if self.cross_attention is None:
            return pooled_visual, audio.mean(dim=1)
        attended_visual, audio = self.cross_attention(visual, audio)
        # A clip without audio has nothing to attend to: its visual vector skips the CAF layer.
        visual = attended_visual if has_audio is None else torch.where(has_audio.unsqueeze(-1), attended_visual,
                                                                       pooled_visual)
        return visual, audio

    def forward(self, visual: torch.Tensor, audio: torch.Tensor, has_audio: torch.Tensor | None = None,
                return_terms: bool = False):
        visual, audio = self.attend(visual, audio, has_audio)
        fused = self.modality_fusion(visual, audio)
        if not return_terms:
            return fused
        return fused, self.modality_fusion.modality_terms(visual, audio)


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


def _card_text(config: AVCPNetConfig) -> str:
    from .hub_repo_avcpnet import minimal_card

    return minimal_card(
        config, "AV-CPNet", "AV-CPNet (Audio-Visual Cooperatively enhanced Perception Network, arXiv 2311.17335): "
        "a Video Swin visual branch and an MFCC ResNet audio branch fused into emotion logits; the pipeline also "
        "reports the polarity of the predicted emotions.",
        tags=["avcpnet", "audio-visual", "emotion-recognition", "video"])


class AVCPNetPreTrainedModel(PreTrainedModel):
    """Weight initialisation, Auto-class saving and shared input checks of the AV-CPNet models."""

    config_class = AVCPNetConfig
    config: AVCPNetConfig
    base_model_prefix = "avcpnet"
    main_input_name = "pixel_values_videos"
    input_modalities = ("video", "audio")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["VideoSwinLayer", "AVCPNetAudioResNetBlock", "AVCPNetFusion"]
    # The loss is a mean over the batch (EP-CE weights per sample), not a sum over items to be normalised.
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """transformers' default initialisation (normal linear and convolution weights with std
        `initializer_range`, zero biases, unit norms with reset running statistics), plus the special modules: the
        Video Swin's own (delegated to `init_video_swin_weights`), He normal (fan-out, as torchvision's and
        transformers' ResNet) for the audio ResNet's 2-D convolutions, and the audio temporal attention's mixer:
        with `audio_head="bn_tanh"` torch's default `nn.Linear` initialisation (what VAANet and the public code
        train from), with `"linear"` a unit bias (so that it starts as a temporal mean rather than dead)."""
        super()._init_weights(module)
        if init_video_swin_weights(module, self.config):
            return
        if isinstance(module, AVCPNetSegmentMixer):
            if self.config.audio_head == "bn_tanh":
                # Scores in [-1, 1] (Tanh) mixed by weights of scale 1/sqrt(segments): a start of order 1, as public.
                init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                bound = 1 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
            else:
                # With a zero bias the ReLU'd attention weights start at ~1e-5 (half exactly 0): the audio embedding
                # and its gradient vanish and the audio branch never learns. A unit bias starts the temporal attention
                # as a plain mean over the segments, which the scores then learn to reweight.
                init.ones_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers writes one `auto_map` entry per saved class (its own `_auto_class`): add the other model
        # class too, so that a folder saved from either class loads with AutoModel and
        # AutoModelForVideoClassification alike (trust_remote_code=True, package not installed).
        if type(self)._auto_class is not None:
            module_name = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.update({auto: f"{module_name}.{name}" for auto, name in _AUTO_MAP.items()})
            self.config.auto_map = auto_map
        # A complete Hub repo: + pipeline file and `custom_pipelines` entry, processor (if none yet) and card.
        from .hub_repo_avcpnet import save_complete_repo
        from .pipeline_avcpnet import AVCPNetPipeline
        from .processing_avcpnet import AVCPNetProcessor

        return save_complete_repo(self, super().save_pretrained, save_directory, *args, pipeline_class=AVCPNetPipeline,
                                  make_processor=AVCPNetProcessor.from_model_config, card_text=_card_text, **kwargs)

    def _audio_mask(self, audio_mask: torch.Tensor | None, batch_size: int, device: torch.device) -> torch.Tensor:
        """`audio_mask` as a `(batch,)` bool tensor (None = every clip has audio), checked."""
        return normalize_audio_mask(audio_mask, batch_size, device, type(self).__name__)


class AVCPNetModel(AVCPNetPreTrainedModel):
    r"""
    AV-CPNet without heads: the visual branch (`visual_encoder`, a Video Swin, + `visual_projection`), the audio
    branch (`audio_encoder`) and the TS-CF module (`fusion`). Modules of a modality that `config.modalities` leaves
    out are not built (None).

    Example:

    ```python
    >>> import torch
    >>> from modeling_avcpnet import AVCPNetConfig, AVCPNetModel
    >>> config = AVCPNetConfig.tiny()
    >>> model = AVCPNetModel(config).eval()
    >>> videos = torch.randn(2, config.num_segments, config.frames_per_segment, 3, 32, 32)
    >>> audio = torch.randn(2, config.audio_segments, config.audio_length // config.audio_segments, config.num_mfcc)
    >>> model(pixel_values_videos=videos, input_features=audio).fused_embeds.shape
    torch.Size([2, 32])
    ```"""

    def __init__(self, config: AVCPNetConfig):
        super().__init__(config)
        self.uses_visual = config.modalities in ("audio_visual", "visual")
        self.uses_audio = config.modalities in ("audio_visual", "audio")
        self.visual_encoder = VideoSwinEncoder(config) if self.uses_visual else None
        # The public AVNet's Dropout(0.5) on the pooled Video Swin features of each segment, before its `v_fc`.
        self.visual_dropout = nn.Dropout(config.visual_dropout_prob) if self.uses_visual else None
        self.visual_projection = (
            nn.Linear(config.visual_hidden_size, config.hidden_size) if self.uses_visual else None
        )
        self.audio_encoder = AVCPNetAudioEncoder(config) if self.uses_audio else None
        self.fusion = AVCPNetFusion(config) if self.uses_visual and self.uses_audio else None
        self.post_init()

    def _check_inputs(self, pixel_values_videos, input_features) -> int:
        name, config = type(self).__name__, self.config
        batch_sizes = {}
        if self.uses_visual:
            if pixel_values_videos is None:
                raise ValueError(f"{name} (modalities={config.modalities!r}) needs pixel_values_videos of shape "
                                 "(batch, segments, frames, channels, height, width)")
            if pixel_values_videos.ndim != 6 or pixel_values_videos.shape[3] != config.num_channels:
                raise ValueError(f"{name}: pixel_values_videos must be (batch, segments, frames, "
                                 f"{config.num_channels}, height, width), got {tuple(pixel_values_videos.shape)}")
            if not pixel_values_videos.is_floating_point():
                raise ValueError(f"{name}: pixel_values_videos must be a float tensor (normalised frames), got "
                                 f"{pixel_values_videos.dtype}; use the AV-CPNet processor")
            batch_sizes["pixel_values_videos"] = pixel_values_videos.shape[0]
        if self.uses_audio:
            if input_features is None:
                raise ValueError(f"{name} (modalities={config.modalities!r}) needs input_features of shape "
                                 "(batch, audio_segments, time, num_mfcc); for clips without audio pass zeros and "
                                 "audio_mask=False")
            expected = (config.audio_segments, config.num_mfcc)
            if input_features.ndim != 4 or (input_features.shape[1], input_features.shape[3]) != expected:
                raise ValueError(f"{name}: input_features must be (batch, audio_segments={expected[0]}, time, "
                                 f"num_mfcc={expected[1]}), got {tuple(input_features.shape)}")
            if not input_features.is_floating_point():
                raise ValueError(f"{name}: input_features must be a float tensor, got {input_features.dtype}")
            batch_sizes["input_features"] = input_features.shape[0]
        if len(set(batch_sizes.values())) > 1:
            raise ValueError(f"{name}: batch sizes differ between inputs: {batch_sizes}")
        return next(iter(batch_sizes.values()))

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        audio_mask: torch.BoolTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> AVCPNetModelOutput | tuple:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch, segments, frames, 3, height, width)`):
                Normalised frames, `segments` snippets of `frames` consecutive frames per clip (the processor's
                output). Needed unless `modalities="audio"` (then ignored).
            input_features (`torch.FloatTensor` of shape `(batch, audio_segments, time, num_mfcc)`):
                MFCC segments, `time = audio_length // audio_segments`. Needed unless `modalities="visual"` (then
                ignored).
            audio_mask (`torch.BoolTensor` of shape `(batch,)`, *optional*):
                True where the clip has an audio track; clips without audio are classified from vision alone (see
                the module docstring). None = every clip has audio.
            output_hidden_states, output_attentions (`bool`, *optional*): return the encoders' hidden states / the
                Video Swin attention probabilities.
            return_dict (`bool`, *optional*): return an [`AVCPNetModelOutput`] (default) or a tuple.
        """
        config = self.config
        output_hidden_states = output_hidden_states if output_hidden_states is not None else config.output_hidden_states
        output_attentions = output_attentions if output_attentions is not None else config.output_attentions
        return_dict = return_dict if return_dict is not None else config.return_dict
        batch_size = self._check_inputs(pixel_values_videos, input_features)

        # Segment sequences go into the CAF layer with caf_sequence="segments"; otherwise the pooled vectors do.
        over_segments = self.fusion is not None and config.caf_sequence == "segments"
        visual_embeds = visual_sequence = hidden_states = attentions = None
        if self.uses_visual:
            segments = pixel_values_videos.shape[1]
            clips = pixel_values_videos.flatten(0, 1).transpose(1, 2)  # (B*S, 3, F, H, W)
            encoded = self.visual_encoder(
                clips, output_hidden_states=output_hidden_states, output_attentions=output_attentions
            )
            # Mean over space and time (pooler_output), dropout, FC per segment, then mean over segments (the FC
            # commutes with the mean: without the sequence, the mean goes first).
            pooled = self.visual_dropout(encoded.pooler_output).view(batch_size, segments, -1)
            if over_segments:
                visual_sequence = self.visual_projection(pooled)
                visual_embeds = visual_sequence.mean(dim=1)
            else:
                visual_embeds = self.visual_projection(pooled.mean(dim=1))
                visual_sequence = visual_embeds.unsqueeze(1)
            # The encoder's own tensors (a reshaped copy would be off the autograd graph: no retain_grad()).
            hidden_states, attentions = encoded.hidden_states, encoded.attentions

        audio_embeds = audio_sequence = audio_hidden_states = None
        has_audio = None
        if self.uses_audio:
            has_audio = self._audio_mask(audio_mask, batch_size, input_features.device)
            audio_segments, audio_hidden_states = self._encode_audio(
                input_features, has_audio, output_hidden_states, every_clip_has_audio=audio_mask is None
            )
            audio_embeds = audio_segments.mean(dim=1)  # temporal pooling of the weighted segments
            audio_sequence = audio_segments if over_segments else audio_embeds.unsqueeze(1)

        visual_term = audio_term = visual_attended = audio_attended = fused_embeds = None
        if self.fusion is not None:
            visual_attended, audio_attended = self.fusion.attend(visual_sequence, audio_sequence, has_audio)
            if self.fusion.modality_fusion is not None:  # fusion_output="hidden": the SF layer to hidden_size
                fused_embeds = self.fusion.modality_fusion(visual_attended, audio_attended)
                if config.unimodal_head == "sf_terms":
                    visual_term, audio_term = self.fusion.modality_fusion.modality_terms(visual_attended,
                                                                                         audio_attended)
                fused_embeds = torch.where(has_audio.unsqueeze(-1), fused_embeds, visual_embeds)
        else:
            fused_embeds = visual_embeds if self.uses_visual else audio_embeds

        output = AVCPNetModelOutput(
            fused_embeds=fused_embeds,
            visual_embeds=visual_embeds,
            audio_embeds=audio_embeds,
            visual_fusion_term=visual_term,
            audio_fusion_term=audio_term,
            visual_attended_embeds=visual_attended,
            audio_attended_embeds=audio_attended,
            hidden_states=hidden_states,
            audio_hidden_states=audio_hidden_states,
            attentions=attentions,
        )
        return output if return_dict else output.to_tuple()

    def _encode_audio(self, input_features: torch.Tensor, has_audio: torch.Tensor, output_hidden_states: bool,
                      every_clip_has_audio: bool = False):
        """Run the audio encoder; clips without audio get zeros. Returns the weighted segment features
        `(batch, audio_segments, hidden_size)` and the hidden states of the clips with audio (None when no clip of
        the batch has audio).

        No host sync (so no graph break under `torch.compile`) unless hidden states are asked for with an
        `audio_mask`: with `audio_mask=None` every clip has audio; otherwise the encoder runs on the whole batch
        and the silent clips are zeroed afterwards. Their features are replaced by zeros at the input and, in
        training, every batch norm of the audio branch takes its statistics over the clips with audio only
        (`masked_batch_norm`), so the outputs, the gradients and the running statistics are those of encoding the
        clips with audio alone (float rounding aside); a batch without audio leaves the running statistics and
        `num_batches_tracked` as they were (its audio parameters get zero gradients rather than None). In eval mode
        batch norm uses its running statistics anyway.

        With `output_hidden_states=True` and an `audio_mask`, the hidden states are those of the clips with audio
        only (their number is data-dependent): that case encodes `input_features[has_audio]` as before, with host
        syncs (a graph break under `torch.compile`)."""
        if every_clip_has_audio:
            return self.audio_encoder(input_features, output_hidden_states)
        if not output_hidden_states:
            segments, _ = self.audio_encoder(input_features, False, has_audio)
            return torch.where(has_audio.view(-1, 1, 1), segments, torch.zeros_like(segments)), None
        if bool(has_audio.all()):
            return self.audio_encoder(input_features, output_hidden_states)
        batch_size = input_features.shape[0]
        if not bool(has_audio.any()):
            return input_features.new_zeros(batch_size, self.config.audio_segments, self.config.hidden_size), None
        present, hidden_states = self.audio_encoder(input_features[has_audio], output_hidden_states)
        embeds = present.new_zeros(batch_size, *present.shape[1:]).index_put((has_audio,), present)
        return embeds, hidden_states


class AVCPNetForVideoClassification(AVCPNetPreTrainedModel):
    r"""
    AV-CPNet with its three classification heads (fused, visual, audio) and the multi-task EP-CE loss.

    Example:

    ```python
    >>> import torch
    >>> from modeling_avcpnet import AVCPNetConfig, AVCPNetForVideoClassification
    >>> config = AVCPNetConfig.tiny()
    >>> model = AVCPNetForVideoClassification(config)
    >>> videos = torch.randn(2, config.num_segments, config.frames_per_segment, 3, 32, 32)
    >>> audio = torch.randn(2, config.audio_segments, config.audio_length // config.audio_segments, config.num_mfcc)
    >>> out = model(pixel_values_videos=videos, input_features=audio, labels=torch.tensor([0, 4]))
    >>> out.logits.shape, out.loss.shape
    (torch.Size([2, 6]), torch.Size([]))
    ```"""

    # The modules whose shape depends on the label set: fine-tuning on other labels re-initialises them.
    classification_head_names = ("classifier", "visual_classifier", "audio_classifier")

    def __init__(self, config: AVCPNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.avcpnet = AVCPNetModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        both = self.avcpnet.uses_visual and self.avcpnet.uses_audio
        # Audio-visual: with fusion_output="logits" the classifier is the SF layer itself (to the classes, the public
        # code); with "hidden" a Linear shared by both modalities after the SF layer.
        self.classifier = None
        if both:
            self.classifier = (AVCPNetFusionClassifier(config) if config.fusion_output == "logits"
                               else nn.Linear(config.hidden_size, config.num_labels))
        # Single-modality configs classify with their modality's head; audio-visual ones have per-modality heads
        # only with unimodal_head="separate" (otherwise the unimodal logits are the SF terms).
        separate = not both or config.unimodal_head == "separate"
        self.visual_classifier = (
            nn.Linear(config.hidden_size, config.num_labels) if self.avcpnet.uses_visual and separate else None
        )
        self.audio_classifier = (
            nn.Linear(config.hidden_size, config.num_labels) if self.avcpnet.uses_audio and separate else None
        )
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, output_loading_info: bool = False, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing weights whose unimodal heads do not match
        `config.unimodal_head` (which transformers would only warn about, leaving random heads or unused weights)."""
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        head_keys = ("visual_classifier.", "audio_classifier.")
        unexpected = [key for key in info["unexpected_keys"] if key.startswith(head_keys)]
        missing = [key for key in info["missing_keys"] if key.startswith(head_keys)]
        has_heads = not any(key.startswith("classifier.") for key in info["missing_keys"])  # not a bare backbone
        # The TS-CF / audio-head structure (fusion_type, fusion_output, caf_sequence, audio_head): weights of another
        # structure would leave modules random, which transformers only warns about. A module group that the
        # checkpoint fills in part only (or weights it has that fit nowhere) shows such a mismatch; a group missing
        # entirely is a checkpoint without it (e.g. a bare backbone), which starts from the initialisation.
        structure_keys = ("classifier.", "avcpnet.fusion.", "avcpnet.audio_encoder.projection",
                          "avcpnet.audio_encoder.temporal_attention.")
        mismatched = [key for key in info["unexpected_keys"] if key.startswith(structure_keys)]
        all_missing, model_keys = set(info["missing_keys"]), list(model.state_dict())
        for prefix in structure_keys:
            group = [key for key in model_keys if key.startswith(prefix)]
            gone = [key for key in group if key in all_missing]
            if 0 < len(gone) < len(group):
                mismatched += gone
        if mismatched and not (unexpected or missing):
            config = model.config
            raise ValueError(
                f"{cls.__name__}.from_pretrained({str(pretrained_model_name_or_path)!r}): the checkpoint's fusion or "
                f"audio-head weights do not fit config.fusion_type={config.fusion_type!r}, "
                f"fusion_output={config.fusion_output!r}, "
                f"caf_sequence={config.caf_sequence!r}, audio_head={config.audio_head!r} (e.g. {mismatched[0]}); "
                "load it without overriding these fields (a config saved before they existed loads with the "
                "structure it was trained with)"
            )
        if unexpected or (missing and has_heads):
            saved = "separate per-modality heads" if unexpected else "no per-modality heads (SF-term placement)"
            fix = "separate" if unexpected else "sf_terms"
            raise ValueError(
                f"{cls.__name__}.from_pretrained({str(pretrained_model_name_or_path)!r}): the checkpoint has {saved} "
                f"({(unexpected or missing)[0]}, ...) but config.unimodal_head={model.config.unimodal_head!r}; load "
                f"it with unimodal_head={fix!r} (the placement it was trained with)"
            )
        return (model, info) if output_loading_info else model

    def _term_logits(self, term: torch.Tensor) -> torch.Tensor:
        """`fusion_output="hidden"`: a modality's SF term through the shared classifier; for the additive fusions
        each term takes half the bias, so that visual + audio logits = fused logits."""
        bias = self.classifier.bias
        if self.avcpnet.fusion.modality_fusion.is_additive:
            bias = bias / 2
        return nn.functional.linear(self.dropout(term), self.classifier.weight, bias)

    def forward(
        self,
        pixel_values_videos: torch.FloatTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        audio_mask: torch.BoolTensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> AVCPNetVideoClassifierOutput | tuple:
        r"""
        Args:
            pixel_values_videos, input_features, audio_mask, output_hidden_states, output_attentions:
                as in [`AVCPNetModel.forward`].
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*): class ids; when given, `loss` is the
                multi-task EP-CE loss (`loss_avcpnet.compute_multitask_loss`) and the branch losses are returned.
            return_dict (`bool`, *optional*): return an [`AVCPNetVideoClassifierOutput`] (default) or a tuple.

        Returns:
            `logits (batch, num_labels)`, `visual_logits`, `audio_logits` (None for a modality the config leaves out),
            the losses when `labels` is given, and the hidden states / attentions when asked.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.avcpnet(
            pixel_values_videos=pixel_values_videos,
            input_features=input_features,
            audio_mask=audio_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        visual_logits = audio_logits = logits = None
        if isinstance(self.classifier, AVCPNetFusionClassifier):  # fusion_output="logits": the SF layer is the head
            has_audio = self._audio_mask(audio_mask, outputs.visual_embeds.shape[0], outputs.visual_embeds.device)
            # One dropout on the SF inputs, so that the unimodal terms still add up to the fused logits.
            visual, audio = self.dropout(outputs.visual_attended_embeds), self.dropout(outputs.audio_attended_embeds)
            logits = self.classifier(visual, audio)
            if self.config.unimodal_head == "sf_terms":
                visual_logits, audio_logits = self.classifier.modality_logits(visual, audio, has_audio)
        elif outputs.visual_fusion_term is not None:  # fusion_output="hidden", unimodal_head="sf_terms"
            visual_logits = self._term_logits(outputs.visual_fusion_term)
            audio_logits = self._term_logits(outputs.audio_fusion_term)
        if self.visual_classifier is not None:
            visual_logits = self.visual_classifier(self.dropout(outputs.visual_embeds))
        if self.audio_classifier is not None:
            audio_logits = self.audio_classifier(self.dropout(outputs.audio_embeds))
        if logits is None and self.classifier is not None:
            logits = self.classifier(self.dropout(outputs.fused_embeds))
        if self.classifier is not None:
            has_audio = self._audio_mask(audio_mask, logits.shape[0], logits.device)
            logits = torch.where(has_audio.unsqueeze(-1), logits, visual_logits)  # no audio: vision alone
        else:
            logits = visual_logits if visual_logits is not None else audio_logits

        loss = branch_losses = None
        if labels is not None:
            branch_logits = {"logits": logits, "visual_logits": visual_logits, "audio_logits": audio_logits}
            loss, branch_losses = compute_multitask_loss(branch_logits, labels, self.config, audio_mask=audio_mask)
        branch_losses = branch_losses or {}
        output = AVCPNetVideoClassifierOutput(
            loss=loss,
            logits=logits,
            visual_logits=visual_logits,
            audio_logits=audio_logits,
            fusion_loss=branch_losses.get("fusion"),
            visual_loss=branch_losses.get("visual"),
            audio_loss=branch_losses.get("audio"),
            hidden_states=outputs.hidden_states,
            audio_hidden_states=outputs.audio_hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "AVCPNetForVideoClassification",
    "AVCPNetModel",
    "AVCPNetModelOutput",
    "AVCPNetPreTrainedModel",
    "AVCPNetVideoClassifierOutput",
]
