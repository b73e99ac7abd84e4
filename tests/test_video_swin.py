"""The native Video Swin backbone against torchvision's SwinTransformer3d and transformers' 2-D SwinModel, and its
weight conversions. Models are small and randomly initialised; nothing is downloaded."""

from functools import partial

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.models.video.swin_transformer import SwinTransformer3d, swin3d_t
from transformers import PreTrainedModel, SwinConfig, SwinModel

from modeling_avcpnet.configuration_avcpnet import AVCPNetConfig
from modeling_avcpnet.convert.video_swin_weights import (
    convert_official_state_dict,
    convert_swin2d_state_dict,
    convert_torchvision_state_dict,
    load_checkpoint,
    load_into_visual_encoder,
)
from modeling_avcpnet.modeling_video_swin import VideoSwinAttention, VideoSwinEncoder, init_video_swin_weights

TOLERANCE = 1e-4
# Small Video Swin: 4 stages with a shifted block each, several heads, a window that does not divide typical sizes.
SMALL = dict(patch_size=[2, 4, 4], embed_dim=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=[4, 5, 5])
SHAPES = {
    "not_divisible_by_window": (2, 3, 6, 50, 70),  # tokens (3, 13, 18): padding and shifted masks on every axis
    "smaller_than_window": (1, 3, 3, 12, 14),  # tokens (2, 3, 4) < window (4, 5, 5): window shrinks, no shift
    "temporal_shift": (1, 3, 16, 40, 40),  # tokens (8, 10, 10): shifted windows along time too
}


def randomize_(model: nn.Module) -> nn.Module:
    """Random values in every parameter (norms and bias tables included), so that each one matters."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1).add_(1.0 if parameter.ndim == 1 and parameter.shape[0] > 0 else 0.0)
    return model


def torchvision_features(model: SwinTransformer3d, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = model.norm(model.features(model.patch_embed(clips)))
    return features, features.mean(dim=(1, 2, 3))


def make_config(attn_implementation: str = "sdpa", **overrides) -> AVCPNetConfig:
    config = AVCPNetConfig(**{**SMALL, "drop_path_rate": 0.0, **overrides})
    config._attn_implementation = attn_implementation
    return config


def encoder_from_torchvision(torchvision_model, attn_implementation="sdpa", **overrides) -> VideoSwinEncoder:
    encoder = VideoSwinEncoder(make_config(attn_implementation, **overrides))
    encoder.load_state_dict(convert_torchvision_state_dict(torchvision_model.state_dict()), strict=True)
    return encoder.eval()


@pytest.fixture(scope="module")
def small_torchvision():
    torch.manual_seed(0)
    return randomize_(SwinTransformer3d(stochastic_depth_prob=0.0, num_classes=5, **SMALL)).eval()


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_parity_with_torchvision(small_torchvision, attn_implementation, shape):
    encoder = encoder_from_torchvision(small_torchvision, attn_implementation)
    clips = torch.randn(shape)
    with torch.no_grad():
        expected, expected_pooled = torchvision_features(small_torchvision, clips)
        outputs = encoder(clips)
    assert outputs.last_hidden_state.shape == expected.shape
    assert (outputs.last_hidden_state - expected).abs().max() < TOLERANCE
    assert (outputs.pooler_output - expected_pooled).abs().max() < TOLERANCE


def test_parity_with_torchvision_gradients(small_torchvision):
    """Training-mode parity: the same gradients as torchvision for every converted parameter, through the eager
    path, through SDPA with trainable bias tables (fused forward, recomputing backward) and through SDPA with frozen
    tables (PyTorch's own fused backward)."""
    clips = torch.randn(SHAPES["not_divisible_by_window"])[:1]
    reference = small_torchvision.train()
    reference.zero_grad()
    torchvision_features(reference, clips)[1].square().sum().backward()
    expected = convert_torchvision_state_dict({name: p.grad for name, p in reference.named_parameters()
                                               if not name.startswith("head.")})
    reference.eval()
    for attn_implementation, freeze_tables in (("eager", False), ("sdpa", False), ("sdpa", True)):
        encoder = encoder_from_torchvision(small_torchvision, attn_implementation).train()
        for name, parameter in encoder.named_parameters():
            parameter.requires_grad_(not (freeze_tables and name.endswith("relative_position_bias_table")))
        encoder(clips).pooler_output.square().sum().backward()
        for name, parameter in encoder.named_parameters():
            if parameter.requires_grad:
                assert torch.allclose(parameter.grad, expected[name], atol=1e-4, rtol=1e-3), (attn_implementation, name)


def test_parity_with_swin3d_t():
    """The real Swin-T configuration (AVCPNetConfig defaults) against torchvision's swin3d_t, inference, one shape."""
    torch.manual_seed(0)
    reference = swin3d_t().eval()
    encoder = VideoSwinEncoder(AVCPNetConfig()).eval()
    encoder.load_state_dict(convert_torchvision_state_dict(reference.state_dict()), strict=True)
    clips = torch.randn(1, 3, 8, 56, 72)  # tokens (4, 14, 18): window (8, 7, 7) shrinks in time, pads in width
    with torch.no_grad():
        expected, expected_pooled = torchvision_features(reference, clips)
        outputs = encoder(clips)
    assert (outputs.last_hidden_state - expected).abs().max() < TOLERANCE
    assert (outputs.pooler_output - expected_pooled).abs().max() < TOLERANCE


def torchvision_to_official(state_dict: dict) -> dict:
    """The inverse of the official -> torchvision renaming, written independently of the converter."""
    official = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[0] == "features":
            stage = int(parts[1])
            if stage % 2 == 0:
                rest = ".".join(parts[3:]).replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
                key = f"backbone.layers.{stage // 2}.blocks.{parts[2]}.{rest}"
            else:
                key = f"backbone.layers.{stage // 2}.downsample.{'.'.join(parts[2:])}"
        elif parts[0] == "head":
            key = "cls_head.fc_cls." + parts[1]
        else:
            key = "backbone." + key
        official[key] = value
    return official


def test_official_layout_round_trip(small_torchvision, tmp_path):
    official = torchvision_to_official(small_torchvision.state_dict())
    assert "backbone.layers.1.blocks.1.mlp.fc2.weight" in official and "backbone.layers.2.downsample.reduction.weight" in official
    # mmaction2 checkpoints wrap the weights in {"meta": ..., "state_dict": ...}.
    path = tmp_path / "swin_tiny_official.pth"
    torch.save({"meta": {"epoch": 30}, "state_dict": official}, path)
    converted = convert_official_state_dict(load_checkpoint(str(path)))
    direct = convert_torchvision_state_dict(small_torchvision.state_dict())
    assert converted.keys() == direct.keys()
    assert all(torch.equal(converted[key], direct[key]) for key in direct)
    encoder = VideoSwinEncoder(make_config())
    load_into_visual_encoder(encoder, converted)
    clips = torch.randn(SHAPES["not_divisible_by_window"])
    with torch.no_grad():
        expected = torchvision_features(small_torchvision, clips)[0]
        assert (encoder.eval()(clips).last_hidden_state - expected).abs().max() < TOLERANCE


def test_conversion_rejects_unknown_and_missing_keys(small_torchvision):
    state_dict = dict(small_torchvision.state_dict())
    state_dict["features.0.0.attn.unexpected.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="not recognised.*features.0.0.attn.unexpected.weight"):
        convert_torchvision_state_dict(state_dict)
    converted = convert_torchvision_state_dict(small_torchvision.state_dict())
    del converted["layers.0.blocks.1.attention.qkv.weight"]
    with pytest.raises(ValueError, match=r"missing \['layers.0.blocks.1.attention.qkv.weight'\]"):
        load_into_visual_encoder(VideoSwinEncoder(make_config()), converted)
    converted = convert_torchvision_state_dict(small_torchvision.state_dict())
    with pytest.raises(ValueError, match="shape mismatches"):  # a config with another embed_dim
        load_into_visual_encoder(VideoSwinEncoder(make_config(embed_dim=32)), converted)


# 2-D inflation ------------------------------------------------------------------------------------------------------

SWIN2D = dict(image_size=32, patch_size=4, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4)


def test_relative_position_index_2d_and_3d_line_up():
    """The 3-D table row of an offset (dt, dh, dw), modulo the 2-D table size, is the 2-D row of (dh, dw): what makes
    tiling the 2-D table over the temporal offsets exact."""
    window = 4
    attention_3d = VideoSwinAttention(make_config(window_size=[3, window, window], num_heads=[2, 2, 2, 4]), 16, 2)
    swin_2d = SwinModel(SwinConfig(**SWIN2D))
    index_2d = swin_2d.encoder.layers[0].blocks[0].attention.relative_position_bias.relative_position_index
    index_2d = index_2d.view(window * window, window * window)
    spatial = (2 * window - 1) ** 2
    index_3d = attention_3d.relative_position_index.view(3, window * window, 3, window * window)
    for t in range(3):
        for t_other in range(3):
            assert torch.equal(index_3d[t, :, t_other, :] % spatial, index_2d)
            assert torch.all(index_3d[t, :, t_other, :] // spatial == t - t_other + 2)


@pytest.mark.parametrize("old_names", [False, True], ids=["transformers5_names", "hub_names"])
def test_swin2d_inflation_matches_2d_model_on_static_clip(old_names):
    """On a clip of identical frames, the 3-D model inflated from a 2-D Swin computes the 2-D model's features at
    every temporal position: the inflated patch kernel sums the repeated frame back to the 2-D embedding, and every
    key of a 3-D window is one of the 2-D window's keys repeated the same number of times (also inside shifted
    temporal windows) with the same bias, so the softmax weights per 2-D key are unchanged."""
    torch.manual_seed(0)
    model_2d = randomize_(SwinModel(SwinConfig(**SWIN2D))).eval()
    state_dict = model_2d.state_dict()
    if old_names:  # the layout of the Swin checkpoints on the Hub (transformers 4.x)
        renames = {"attention.q_proj": "attention.self.query", "attention.k_proj": "attention.self.key",
                   "attention.v_proj": "attention.self.value", "attention.o_proj": "attention.output.dense",
                   "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense",
                   "attention.relative_position_bias.relative_position_bias_table":
                       "attention.self.relative_position_bias_table"}
        for new, old in renames.items():
            state_dict = {key.replace(new, old): value for key, value in state_dict.items()}
        state_dict = {"swin." + key: value for key, value in state_dict.items()}  # SwinForImageClassification
    config = make_config(embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=[2, 4, 4])
    encoder = VideoSwinEncoder(config).eval()
    load_into_visual_encoder(encoder, convert_swin2d_state_dict(state_dict, config))

    image = torch.randn(2, 3, 32, 32)
    clip = image.unsqueeze(2).expand(-1, -1, 8, -1, -1)  # 8 frames -> 4 token steps, windows of 2, shifted by 1
    with torch.no_grad():
        outputs_2d = model_2d(image)
        outputs = encoder(clip, output_hidden_states=True)
        embedding_2d = model_2d.embeddings(image)[0].view(2, 8, 8, 16)
    assert outputs.last_hidden_state.shape == (2, 4, 4, 4, 32)
    for t in range(4):
        assert (outputs.hidden_states[0][:, t] - embedding_2d).abs().max() < TOLERANCE
        assert (outputs.last_hidden_state[:, t] - outputs_2d.last_hidden_state.view(2, 4, 4, 32)).abs().max() < TOLERANCE
    assert (outputs.pooler_output - outputs_2d.pooler_output).abs().max() < TOLERANCE


# Training machinery and initialisation ------------------------------------------------------------------------------

@pytest.mark.parametrize("use_reentrant", [False, True])
def test_gradient_checkpointing_gives_same_gradients(use_reentrant):
    config = make_config(drop_path_rate=0.1, attention_probs_dropout_prob=0.1)
    encoder = randomize_(VideoSwinEncoder(config)).train()
    clips = torch.randn(3, 3, 4, 24, 24)  # tokens (2, 6, 6): shifted and padded windows (2, 5, 5)

    def gradients():
        encoder.zero_grad()
        torch.manual_seed(1)  # stochastic depth and dropout draw the same masks (checkpoint replays the RNG state)
        encoder(clips).pooler_output.square().sum().backward()
        return {name: parameter.grad.clone() for name, parameter in encoder.named_parameters()}

    expected = gradients()
    # transformers' own switch, as `PreTrainedModel.gradient_checkpointing_enable` calls it.
    PreTrainedModel._set_gradient_checkpointing(
        encoder, enable=True, gradient_checkpointing_func=partial(checkpoint, use_reentrant=use_reentrant)
    )
    assert all(block.gradient_checkpointing for stage in encoder.layers for block in stage.blocks)
    checkpointed = gradients()
    for name, gradient in expected.items():
        assert gradient.abs().sum() > 0, name
        assert torch.allclose(checkpointed[name], gradient, atol=1e-6), name


def test_init_video_swin_weights_recreates_buffers_and_initialises_parameters():
    config = make_config()
    encoder = VideoSwinEncoder(config)
    attention = encoder.layers[1].blocks[1].attention
    expected_index = attention.relative_position_index.clone()
    for module in encoder.modules():
        if isinstance(module, VideoSwinAttention):
            module.relative_position_index.fill_(-1)
    randomize_(encoder)
    handled = set()
    for module in encoder.modules():  # any order: each container initialises its own direct children
        if init_video_swin_weights(module, config):
            handled.add(type(module).__name__)
    assert handled == {"VideoSwinEncoder", "VideoSwinPatchEmbeddings", "VideoSwinLayer", "VideoSwinAttention",
                       "VideoSwinMLP", "VideoSwinPatchMerging"}
    assert not init_video_swin_weights(nn.Linear(2, 2), config)
    assert torch.equal(attention.relative_position_index, expected_index)
    assert (attention.relative_position_index >= 0).all()
    for name, parameter in encoder.named_parameters():
        if name.endswith(("norm.weight", "layernorm.weight", "layernorm_before.weight", "layernorm_after.weight")):
            assert torch.equal(parameter, torch.ones_like(parameter)), name
        elif name.endswith("bias"):
            assert torch.equal(parameter, torch.zeros_like(parameter)), name
        else:  # weights and bias tables: truncated normal, std 0.02 (cut at +-2)
            assert parameter.abs().max() <= 2.0 and 0.005 < parameter.std() < 0.04, name


def test_outputs_attentions_and_errors():
    encoder = randomize_(VideoSwinEncoder(make_config("sdpa"))).eval()
    clips = torch.randn(1, 3, 6, 50, 70)
    with torch.no_grad():
        plain = encoder(clips)
        outputs = encoder(clips, output_hidden_states=True, output_attentions=True)  # runs the eager path
    assert torch.allclose(outputs.last_hidden_state, plain.last_hidden_state, atol=1e-5)
    assert [tuple(h.shape) for h in outputs.hidden_states] == [
        (1, 3, 13, 18, 16), (1, 3, 13, 18, 16), (1, 3, 7, 9, 32), (1, 3, 4, 5, 64), (1, 3, 2, 3, 128)
    ]
    assert len(outputs.attentions) == 8
    # Stage 0 block 1: tokens (3, 13, 18); the window shrinks to 3 in time: (3, 5, 5), padded grid (3, 15, 20),
    # 12 windows of 75 tokens.
    shifted = outputs.attentions[1]
    assert shifted.shape == (1, 12, 1, 75, 75)
    assert torch.allclose(shifted.sum(-1), torch.ones(()), atol=1e-5)
    # The last window holds tokens that the cyclic shift brought together: most pairs get (almost) no weight.
    assert (shifted[0, -1] < 1e-30).float().mean() > 0.5
    with pytest.raises(ValueError, match=r"pixel_values of shape \(batch, 3, time, height, width\), got \(1, 4, 6, 50, 70\)"):
        encoder(torch.randn(1, 4, 6, 50, 70))
    encoder.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="attn_implementation"):
        encoder(clips)


def test_command_line_writes_avcpnet_checkpoint(tmp_path):
    """`python -m modeling_avcpnet.convert.video_swin_weights` (its `main`) writes an AV-CPNet folder whose visual
    encoder reproduces the source torchvision model."""
    from modeling_avcpnet.convert.video_swin_weights import main
    from modeling_avcpnet.modeling_avcpnet import AVCPNetForVideoClassification

    config = AVCPNetConfig.tiny()
    torch.manual_seed(0)
    source = randomize_(SwinTransformer3d(
        patch_size=config.patch_size, embed_dim=config.embed_dim, depths=config.depths, num_heads=config.num_heads,
        window_size=config.window_size, stochastic_depth_prob=0.0, num_classes=7,
    )).eval()
    torch.save(source.state_dict(), tmp_path / "swin3d.pth")
    config.to_json_file(tmp_path / "config.json")
    output_dir = tmp_path / "avcpnet"
    main(["--source", "torchvision", "--checkpoint", str(tmp_path / "swin3d.pth"), "--output_dir", str(output_dir),
          "--config", str(tmp_path / "config.json")])
    assert (output_dir / "model.safetensors").is_file()
    model = AVCPNetForVideoClassification.from_pretrained(output_dir).eval()
    clips = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        expected = torchvision_features(source, clips)[1]
        assert (model.avcpnet.visual_encoder(clips).pooler_output - expected).abs().max() < TOLERANCE
    # --base_model: start from that folder, replace the visual encoder (here by the same weights, official layout).
    torch.save({"state_dict": torchvision_to_official(source.state_dict())}, tmp_path / "official.pth")
    main(["--source", "official", "--checkpoint", str(tmp_path / "official.pth"),
          "--output_dir", str(tmp_path / "again"), "--base_model", str(output_dir)])
    again = AVCPNetForVideoClassification.from_pretrained(tmp_path / "again")
    assert all(torch.equal(tensor, again.state_dict()[name]) for name, tensor in model.state_dict().items())
    AVCPNetConfig.tiny(embed_dim=32).to_json_file(tmp_path / "wider.json")
    with pytest.raises(ValueError, match="do not fit the visual encoder"):
        main(["--source", "torchvision", "--checkpoint", str(tmp_path / "swin3d.pth"),
              "--output_dir", str(tmp_path / "wrong"), "--config", str(tmp_path / "wider.json")])
    assert not (tmp_path / "wrong").exists()


def test_the_cuda_attention_mask_has_the_memory_efficient_kernels_layout():
    """`_memory_efficient_mask` (applied on CUDA): the same values, unit stride along keys, rows aligned to 16
    elements; SDPA gives the same attention with it."""
    from modeling_avcpnet.modeling_video_swin import _memory_efficient_mask

    for tokens in (196, 64):
        bias = torch.randn(tokens, tokens, 3).permute(2, 0, 1).unsqueeze(0)  # as the bias table gather gives it
        mask = _memory_efficient_mask(bias)
        assert torch.equal(mask, bias) and mask.stride(-1) == 1 and mask.stride(-2) % 16 == 0, tokens
        query, key, value = (torch.randn(2, 3, tokens, 32) for _ in range(3))
        torch.testing.assert_close(torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask),
                                   torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=bias))
