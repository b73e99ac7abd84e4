"""Native 3-D Video Swin Transformer backbone (Liu et al., "Video Swin Transformer", arXiv 2106.13230).

transformers has no Video Swin, so this file implements it in the style of the library's model files
(`models/swin/modeling_swin.py`). It is numerically interchangeable with torchvision's `SwinTransformer3d` and the
official Video-Swin code: same shifted-window masks, relative position bias, padding, patch merging and window
shrinking, so their checkpoints load through `convert/video_swin_weights.py`.

Layout: features are kept channels-last, `(batch, time, height, width, channels)`, from the patch embedding to the
final LayerNorm. Window attention runs on `(batch, num_windows, window_volume, channels)`.

Module tree (the state-dict keys):

    embeddings.projection (Conv3d), embeddings.norm
    layers.{i}.blocks.{j}.layernorm_before
    layers.{i}.blocks.{j}.attention.{qkv, proj, relative_position_bias_table}   (+ relative_position_index buffer)
    layers.{i}.blocks.{j}.layernorm_after
    layers.{i}.blocks.{j}.mlp.{fc1, fc2}
    layers.{i}.downsample.{norm, reduction}   (all stages but the last)
    layernorm
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput, logging

logger = logging.get_logger(__name__)

# Value added to the logits of token pairs that a shifted window brings together from different regions of the
# feature map. -100 (not -inf) as in the official code and torchvision, so converted checkpoints match exactly.
MASKED_LOGIT = -100.0
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass
class VideoSwinEncoderOutput(ModelOutput):
    r"""
    Output of [`VideoSwinEncoder`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, time, height, width, hidden_size)`):
            Features of the last stage after the final LayerNorm; `time, height, width` is the token grid of the
            last stage (e.g. `(4, 4, 4)` for 8x112x112 clips with Swin-T), `hidden_size = embed_dim * 2**(stages-1)`.
        pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            `last_hidden_state` averaged over time, height and width.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The patch embeddings, then the output of each stage's blocks before its patch merging (a feature
            pyramid), each of shape `(batch_size, time_i, height_i, width_i, embed_dim * 2**i)`; not normalised.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Attention probabilities of every block, in order, each of shape
            `(batch_size, num_windows, num_heads, window_volume, window_volume)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def get_window_and_shift_size(
    input_size: tuple[int, int, int], window_size: tuple[int, int, int], shift_size: tuple[int, int, int]
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Shrink the window to the input along each axis where the input is not larger than the window (no shift then)."""
    window = tuple(size if size <= window else window for size, window in zip(input_size, window_size))
    shift = tuple(0 if size <= window else shift for size, window, shift in zip(input_size, window_size, shift_size))
    return window, shift


def window_partition(hidden_states: torch.Tensor, window_size: tuple[int, int, int]) -> torch.Tensor:
    """`(batch, T, H, W, C)` with sizes divisible by the window -> `(batch, num_windows, window_volume, C)`."""
    batch_size, time, height, width, channels = hidden_states.shape
    wt, wh, ww = window_size
    hidden_states = hidden_states.view(batch_size, time // wt, wt, height // wh, wh, width // ww, ww, channels)
    hidden_states = hidden_states.permute(0, 1, 3, 5, 2, 4, 6, 7)
    return hidden_states.reshape(batch_size, -1, wt * wh * ww, channels)


def window_reverse(windows: torch.Tensor, window_size: tuple[int, int, int], size: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of `window_partition`: `(batch, num_windows, window_volume, C)` -> `(batch, T, H, W, C)`."""
    batch_size, _, _, channels = windows.shape
    (wt, wh, ww), (time, height, width) = window_size, size
    windows = windows.view(batch_size, time // wt, height // wh, width // ww, wt, wh, ww, channels)
    return windows.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(batch_size, time, height, width, channels)


def shifted_window_mask(
    padded_size: tuple[int, int, int],
    window_size: tuple[int, int, int],
    shift_size: tuple[int, int, int],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """Additive mask of shape `(num_windows, window_volume, window_volume)` for shifted-window attention.

    After the cyclic shift, a window can hold tokens of up to 3 regions per axis that were not neighbours in the
    feature map: `[0, size - window)`, `[size - window, size - shift)` and `[size - shift, size)`. Pairs of tokens of
    different regions get `MASKED_LOGIT`, the others 0.
    """
    region_ids = torch.zeros((), dtype=torch.long, device=device)
    for axis, (size, window, shift) in enumerate(zip(padded_size, window_size, shift_size)):
        index = torch.arange(size, device=device)
        region = (index >= size - window).long() + (index >= size - shift).long() if shift > 0 else index * 0
        region_ids = region_ids * 3 + region.view([-1 if a == axis else 1 for a in range(3)])
    region_windows = window_partition(region_ids[None, ..., None], window_size)[0, ..., 0]  # nW, Wvol
    different = region_windows[:, :, None] != region_windows[:, None, :]
    return torch.zeros(different.shape, dtype=dtype, device=device).masked_fill_(different, MASKED_LOGIT)


class VideoSwinDropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability `drop_prob` in training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        keep = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * keep.div_(keep_prob)

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class VideoSwinPatchEmbeddings(nn.Module):
    """Cuts `(batch, C, T, H, W)` clips into non-overlapping 3-D patches and embeds them: `(batch, T', H', W', D)`.

    Clips whose sizes are not divisible by the patch are zero-padded at the end of each axis first.
    """

    def __init__(self, config) -> None:
        super().__init__()
        self.patch_size = tuple(config.patch_size)
        self.num_channels = config.num_channels
        self.projection = nn.Conv3d(config.num_channels, config.embed_dim, self.patch_size, stride=self.patch_size)
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 5 or pixel_values.shape[1] != self.num_channels:
            raise ValueError(
                f"VideoSwinEncoder expects pixel_values of shape (batch, {self.num_channels}, time, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        # Frames arrive in float32; a bfloat16 model takes them in its own dtype here, at its input.
        pixel_values = pixel_values.to(self.projection.weight.dtype)
        time, height, width = pixel_values.shape[2:]
        pad_t, pad_h, pad_w = (-size % patch for size, patch in zip((time, height, width), self.patch_size))
        if pad_t or pad_h or pad_w:
            pixel_values = F.pad(pixel_values, (0, pad_w, 0, pad_h, 0, pad_t))
        embeddings = self.projection(pixel_values).permute(0, 2, 3, 4, 1)
        return self.dropout(self.norm(embeddings))


class VideoSwinAttention(nn.Module):
    """Multi-head self-attention inside 3-D windows, with a learned relative position bias per head.

    The bias table holds one value per head for each of the `(2Wt-1)(2Wh-1)(2Ww-1)` relative offsets inside a window;
    `relative_position_index[i, j]` is the table row of the offset between tokens `i` and `j` of a window (tokens
    numbered t-major, then h, then w).
    """

    def __init__(self, config, dim: int, num_heads: int) -> None:
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.window_size = tuple(config.window_size)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.qkv = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        wt, wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wt - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        # Fully determined by window_size: not saved, re-created by `init_video_swin_weights`.
        self.register_buffer("relative_position_index", self.create_relative_position_index(), persistent=False)

    def create_relative_position_index(self) -> torch.Tensor:
        """`(Wvol, Wvol)` long tensor: row of the bias table for each ordered pair of window tokens."""
        wt, wh, ww = self.window_size
        coords = torch.stack(torch.meshgrid(torch.arange(wt), torch.arange(wh), torch.arange(ww), indexing="ij"))
        coords = coords.flatten(1)  # 3, Wvol
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # Wvol, Wvol, 3: offsets (dt, dh, dw)
        relative = relative + torch.tensor([wt - 1, wh - 1, ww - 1])  # from 0
        return (relative * torch.tensor([(2 * wh - 1) * (2 * ww - 1), 2 * ww - 1, 1])).sum(-1)

    def relative_position_bias(self, window_size: tuple[int, int, int]) -> torch.Tensor:
        """Bias `(num_heads, N, N)` for windows of `N = prod(window_size)` tokens.

        When the window was shrunk to a small input, the first N rows and columns of the full-window index are
        used, exactly as in the official Video-Swin code and torchvision (exact when only the time axis shrinks),
        so that their checkpoints give the same numbers.
        """
        volume = window_size[0] * window_size[1] * window_size[2]
        index = self.relative_position_index[:volume, :volume].reshape(-1)
        return self.relative_position_bias_table[index].view(volume, volume, -1).permute(2, 0, 1)

    def forward(
        self, windows: torch.Tensor, attention_bias: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            windows: `(batch, num_windows, N, dim)` tokens of each window.
            attention_bias: `(num_windows or 1, num_heads, N, N)` relative position bias plus shifted-window mask.
        Returns:
            `(batch, num_windows, N, dim)` and, with `output_attentions`, the probabilities
            `(batch, num_windows, num_heads, N, N)`.
        """
        batch_size, num_windows, volume, dim = windows.shape
        # (3, batch, num_windows, heads, N, head_dim), contiguous so that (batch * windows, heads) and
        # (batch, windows * heads) are both free views of q, k and v.
        qkv = self.qkv(windows).view(batch_size, num_windows, volume, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(3, 0, 1, 4, 2, 5).contiguous().unbind(0)
        dropout = self.attention_dropout if self.training else 0.0

        implementation = getattr(self.config, "_attn_implementation", None) or "sdpa"
        if implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"VideoSwinEncoder supports attn_implementation {ATTENTION_IMPLEMENTATIONS}, got {implementation!r}"
            )
        attention_bias = attention_bias.to(query.dtype)
        attention_probs = None
        if implementation == "sdpa" and not output_attentions:
            if attention_bias.shape[0] == 1:  # one bias for all windows: batch over (batch * windows)
                shape, mask = (batch_size * num_windows, self.num_heads, volume, -1), attention_bias
            else:  # a bias per window: batch over clips, (windows * heads) as the head axis
                shape = (batch_size, num_windows * self.num_heads, volume, -1)
                mask = attention_bias.reshape(1, num_windows * self.num_heads, volume, volume)
            query, key, value = query.view(shape), key.view(shape), value.view(shape)
            if query.is_cuda:
                mask = _memory_efficient_mask(mask)
            if mask.requires_grad and torch.is_grad_enabled() and query.device.type == "cpu" and dropout == 0.0:
                # PyTorch's fused CPU kernel cannot differentiate its attn_mask (it would fall back to the math kernel
                # that keeps the probabilities): fused forward, backward that recomputes them.
                context = _CPUAttentionWithTrainableBias.apply(query, key, value, mask, self.scaling)
            else:
                context = F.scaled_dot_product_attention(
                    query, key, value, attn_mask=mask, dropout_p=dropout, scale=self.scaling
                )
            context = context.view(batch_size, num_windows, self.num_heads, volume, self.head_dim)
        else:
            scores = torch.matmul(query, key.transpose(-2, -1)).mul_(self.scaling)
            scores = scores.add_(attention_bias)  # (num_windows | 1, heads, N, N) broadcast over the batch
            attention_probs = F.softmax(scores, dim=-1)
            if dropout > 0.0:
                context = torch.matmul(F.dropout(attention_probs, p=dropout, training=True), value)
            else:
                context = torch.matmul(attention_probs, value)
            if not output_attentions:
                attention_probs = None
        context = context.transpose(2, 3).reshape(batch_size, num_windows, volume, dim)
        return self.proj(context), attention_probs


def _memory_efficient_mask(mask: torch.Tensor) -> torch.Tensor:
    """`mask` with the memory layout CUDA's memory-efficient SDPA kernel takes: unit stride along keys and rows
    aligned to 16 elements. The relative position bias is a permuted gather (key stride = heads) and windows hold
    196 tokens: given as is, every 196-token window attention of a bf16 training step on an H200 ran SDPA's math
    kernel (the full `N x N` probabilities in memory; benchmarks/bench_gpu.py counts the kernels). Same values; the
    padding columns are never read."""
    length = mask.shape[-1]
    padded = -(-length // 16) * 16
    if padded == length:
        return mask.contiguous()
    return F.pad(mask, (0, padded - length))[..., :length]


class _CPUAttentionWithTrainableBias(torch.autograd.Function):
    """`softmax(q k^T * scale + bias) v` with a gradient for `bias`, memory-lean on CPU.

    The forward is PyTorch's fused (flash) SDPA kernel, which keeps no `N x N` probabilities; the backward recomputes
    them from q, k and the bias. Inputs: q, k, v `(batch, heads, N, head_dim)`, bias broadcastable to
    `(batch, heads, N, N)` with a batch axis of 1.
    """

    @staticmethod
    def forward(ctx, query, key, value, bias, scaling):
        # Detached: SDPA picks its math kernel for inputs flagged requires_grad, even with grad mode off.
        output = F.scaled_dot_product_attention(
            query.detach(), key.detach(), value.detach(), attn_mask=bias.detach(), scale=scaling
        )
        ctx.save_for_backward(query, key, value, bias)
        ctx.scaling = scaling
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        query, key, value, bias = ctx.saved_tensors
        scaling = ctx.scaling
        grad_output = grad_output.contiguous()  # strided gradients send bmm down a slow per-matrix path
        probs = torch.softmax(torch.matmul(query, key.transpose(-2, -1)).mul_(scaling).add_(bias), dim=-1)
        grad_value = torch.matmul(probs.transpose(-2, -1), grad_output)
        grad_scores = torch._softmax_backward_data(
            torch.matmul(grad_output, value.transpose(-2, -1)), probs, -1, probs.dtype
        )
        del probs
        grad_query = torch.matmul(grad_scores, key).mul_(scaling)
        grad_key = torch.matmul(grad_scores.transpose(-2, -1), query).mul_(scaling)
        grad_bias = grad_scores.sum(0, keepdim=True) if ctx.needs_input_grad[3] else None
        return grad_query, grad_key, grad_value, grad_bias, None


class VideoSwinMLP(nn.Module):
    def __init__(self, config, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, int(dim * config.mlp_ratio))
        self.activation = nn.GELU()
        self.fc2 = nn.Linear(int(dim * config.mlp_ratio), dim)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.activation(self.fc1(hidden_states)))
        return self.dropout(self.fc2(hidden_states))


class VideoSwinLayer(GradientCheckpointingLayer):
    """One Swin block: (shifted) window attention then MLP, each pre-normalised with a residual and stochastic depth.

    Whether the windows are shifted is decided by the stage (odd blocks shift by half a window), which passes the
    effective window and shift sizes and the matching mask in.
    """

    def __init__(self, config, dim: int, num_heads: int, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.layernorm_before = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attention = VideoSwinAttention(config, dim, num_heads)
        self.drop_path = VideoSwinDropPath(drop_path_rate)
        self.layernorm_after = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = VideoSwinMLP(config, dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        window_size: tuple[int, int, int],
        shift_size: tuple[int, int, int],
        shift_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            hidden_states: `(batch, T, H, W, dim)`.
            window_size, shift_size: effective sizes for this input (already shrunk to it).
            shift_mask: `(num_windows, N, N)` from `shifted_window_mask` when `shift_size` is not all zero.
        Returns:
            `(batch, T, H, W, dim)` and the attention probabilities or None.
        """
        batch_size, time, height, width, dim = hidden_states.shape
        windows = self.layernorm_before(hidden_states)
        pad_t, pad_h, pad_w = (-size % window for size, window in zip((time, height, width), window_size))
        if pad_t or pad_h or pad_w:
            windows = F.pad(windows, (0, 0, 0, pad_w, 0, pad_h, 0, pad_t))
        padded_size = (time + pad_t, height + pad_h, width + pad_w)
        shifted = any(shift_size)
        if shifted:
            windows = torch.roll(windows, shifts=tuple(-s for s in shift_size), dims=(1, 2, 3))
        windows = window_partition(windows, window_size)

        attention_bias = self.attention.relative_position_bias(window_size).unsqueeze(0)  # 1, heads, N, N
        if shifted:
            attention_bias = attention_bias + shift_mask.unsqueeze(1)  # nW, heads, N, N
        windows, attention_probs = self.attention(windows, attention_bias, output_attentions)

        attention_output = window_reverse(windows, window_size, padded_size)
        if shifted:
            attention_output = torch.roll(attention_output, shifts=shift_size, dims=(1, 2, 3))
        if pad_t or pad_h or pad_w:
            attention_output = attention_output[:, :time, :height, :width]
        hidden_states = hidden_states + self.drop_path(attention_output)
        hidden_states = hidden_states + self.drop_path(self.mlp(self.layernorm_after(hidden_states)))
        return hidden_states, attention_probs


class VideoSwinPatchMerging(nn.Module):
    """Merges each 2x2 spatial neighbourhood: `(batch, T, H, W, C)` -> `(batch, T, ceil(H/2), ceil(W/2), 2C)`.

    Time is not merged. The 4 neighbours are concatenated in the order (h, w) = (0, 0), (1, 0), (0, 1), (1, 1), as in
    the official code and torchvision; odd sizes are zero-padded first.
    """

    def __init__(self, config, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=config.layer_norm_eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch_size, time, height, width, channels = hidden_states.shape
        if height % 2 or width % 2:
            hidden_states = F.pad(hidden_states, (0, 0, 0, width % 2, 0, height % 2))
            height, width = height + height % 2, width + width % 2
        # (b, t, h/2, dh, w/2, dw, c) -> (b, t, h/2, w/2, dw, dh, c): one copy gives the (dh, dw) order above.
        hidden_states = hidden_states.view(batch_size, time, height // 2, 2, width // 2, 2, channels)
        hidden_states = hidden_states.permute(0, 1, 2, 4, 5, 3, 6).reshape(
            batch_size, time, height // 2, width // 2, 4 * channels
        )
        return self.reduction(self.norm(hidden_states))


class VideoSwinStage(nn.Module):
    """`depth` Swin blocks alternating regular and shifted windows, then an optional patch merging."""

    def __init__(self, config, dim: int, depth: int, num_heads: int, drop_path: list[float], downsample: bool) -> None:
        super().__init__()
        self.window_size = tuple(config.window_size)
        self.shift_size = tuple(w // 2 for w in self.window_size)
        self.blocks = nn.ModuleList(
            [VideoSwinLayer(config, dim, num_heads, drop_path_rate=drop_path[i]) for i in range(depth)]
        )
        self.downsample = VideoSwinPatchMerging(config, dim) if downsample else None

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """`(batch, T, H, W, dim)` -> (merged output, output before merging, attention probabilities per block)."""
        size = tuple(hidden_states.shape[1:4])
        window_size, shift_size = get_window_and_shift_size(size, self.window_size, self.shift_size)
        shift_mask = None
        if any(shift_size) and len(self.blocks) > 1:
            # One mask for all the shifted blocks of the stage (they all see the same size).
            padded_size = tuple(s + (-s % w) for s, w in zip(size, window_size))
            shift_mask = shifted_window_mask(padded_size, window_size, shift_size, hidden_states.dtype, hidden_states.device)
        no_shift = (0, 0, 0)
        attentions = ()
        for index, block in enumerate(self.blocks):
            block_shift = shift_size if index % 2 == 1 else no_shift
            hidden_states, probs = block(
                hidden_states, window_size, block_shift, shift_mask if index % 2 == 1 else None, output_attentions
            )
            if output_attentions:
                attentions += (probs,)
        before_downsampling = hidden_states
        if self.downsample is not None:
            hidden_states = self.downsample(hidden_states)
        return hidden_states, before_downsampling, attentions


class VideoSwinEncoder(nn.Module):
    r"""
    Video Swin Transformer backbone: 3-D patch embedding, stages of (shifted) window attention blocks with patch
    merging between them, and a final LayerNorm.

    Reads the Swin fields of the config (`patch_size`, `embed_dim`, `depths`, `num_heads`, `window_size`, `mlp_ratio`,
    `qkv_bias`, `drop_path_rate`, `hidden_dropout_prob`, `attention_probs_dropout_prob`, `layer_norm_eps`,
    `num_channels`) and `config._attn_implementation` (`"sdpa"`, the default, or `"eager"`; only the eager path
    returns attention probabilities, so `output_attentions=True` runs it). The attention is PyTorch's fused SDPA with
    the relative position bias and the shifted-window mask as `attn_mask`; on CPU, where that kernel cannot
    differentiate its mask, training uses the same fused forward with a backward that recomputes the probabilities
    (the eager path would keep them: about 25% more peak memory for Swin-T).

    The weights are initialised by the owning `PreTrainedModel`, whose `_init_weights` calls
    [`init_video_swin_weights`]; a bare encoder keeps PyTorch's defaults (and zero bias tables) until then.

    Example:

    ```python
    >>> import torch
    >>> from modeling_avcpnet import AVCPNetConfig
    >>> from modeling_avcpnet.modeling_video_swin import VideoSwinEncoder
    >>> encoder = VideoSwinEncoder(AVCPNetConfig.tiny()).eval()
    >>> encoder(torch.randn(2, 3, 8, 32, 32)).last_hidden_state.shape
    torch.Size([2, 4, 1, 1, 192])
    ```"""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.num_features = config.embed_dim * 2 ** (len(config.depths) - 1)
        self.embeddings = VideoSwinPatchEmbeddings(config)
        total_blocks = sum(config.depths)
        # Stochastic depth rate rising linearly from 0 to drop_path_rate over all the blocks.
        rates = [config.drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]
        self.layers = nn.ModuleList()
        for stage, (depth, heads) in enumerate(zip(config.depths, config.num_heads)):
            first = sum(config.depths[:stage])
            self.layers.append(
                VideoSwinStage(
                    config,
                    dim=config.embed_dim * 2**stage,
                    depth=depth,
                    num_heads=heads,
                    drop_path=rates[first : first + depth],
                    downsample=stage < len(config.depths) - 1,
                )
            )
        self.layernorm = nn.LayerNorm(self.num_features, eps=config.layer_norm_eps)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> VideoSwinEncoderOutput:
        """
        Args:
            pixel_values: `(batch, num_channels, time, height, width)` float clips.
        Returns:
            [`VideoSwinEncoderOutput`]; with Swin-T on `(N, 3, 8, 112, 112)`, `last_hidden_state` is
            `(N, 4, 4, 4, 768)` and `pooler_output` `(N, 768)`.
        """
        hidden_states = self.embeddings(pixel_values)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for stage in self.layers:
            hidden_states, before_downsampling, attentions = stage(hidden_states, output_attentions)
            if output_hidden_states:
                all_hidden_states += (before_downsampling,)
            if output_attentions:
                all_attentions += attentions
        last_hidden_state = self.layernorm(hidden_states)
        return VideoSwinEncoderOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=last_hidden_state.mean(dim=(1, 2, 3)),
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )


_VIDEO_SWIN_MODULES = (
    VideoSwinEncoder,
    VideoSwinPatchEmbeddings,
    VideoSwinLayer,
    VideoSwinAttention,
    VideoSwinMLP,
    VideoSwinPatchMerging,
)


@torch.no_grad()
def init_video_swin_weights(module: nn.Module, config) -> bool:
    """Initialise one module of a `VideoSwinEncoder`, for a `PreTrainedModel._init_weights`; True if it handled it.

    The Video Swin containers initialise their own direct children (truncated normal with std
    `config.initializer_range` (0.02) for the linear and patch-embedding weights and the relative position bias
    table, zero biases, LayerNorm 1 and 0) and re-create the `relative_position_index` buffer. transformers applies
    `_init_weights` to children before their parents, so these values win over a generic init of the leaves.
    """
    if not isinstance(module, _VIDEO_SWIN_MODULES):
        return False
    std = getattr(config, "initializer_range", 0.02) or 0.02
    for child in module.children():
        if isinstance(child, (nn.Linear, nn.Conv3d)):
            init.trunc_normal_(child.weight, std=std)
            if child.bias is not None:
                init.zeros_(child.bias)
        elif isinstance(child, nn.LayerNorm):
            init.ones_(child.weight)
            init.zeros_(child.bias)
    if isinstance(module, VideoSwinAttention):
        init.trunc_normal_(module.relative_position_bias_table, std=std)
        init.copy_(module.relative_position_index, module.create_relative_position_index())
    return True


__all__ = ["VideoSwinEncoder", "VideoSwinEncoderOutput", "init_video_swin_weights"]
