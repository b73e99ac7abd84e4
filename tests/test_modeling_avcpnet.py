"""AV-CPNet model: behaviour that transformers' common model tests expect of an in-library video classifier, the
audio mask, fusion variants, save/load (also through the Auto classes in a fresh process with the package hidden),
gradient checkpointing, and the ResNet weight conversion. Tiny config throughout."""

import copy
import inspect
import json
import os
import shutil
import textwrap

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification, ResNetConfig, ResNetModel
from transformers.modeling_layers import GradientCheckpointingLayer

from modeling_avcpnet import AVCPNetConfig, AVCPNetForVideoClassification, AVCPNetModel
from modeling_avcpnet.convert.resnet_weights import main as convert_resnet_main
from modeling_avcpnet.loss_avcpnet import compute_multitask_loss

from fresh_process import run_without_package

BRANCH_FIELDS = ("logits", "visual_logits", "audio_logits")


def make_inputs(config, batch_size=2, seed=1):
    generator = torch.Generator().manual_seed(seed)
    videos = torch.randn(batch_size, config.num_segments, config.frames_per_segment, 3, config.image_size,
                         config.image_size, generator=generator)
    time = config.audio_length // config.audio_segments
    audio = torch.randn(batch_size, config.audio_segments, time, config.num_mfcc, generator=generator)
    return {"pixel_values_videos": videos, "input_features": audio}


@pytest.fixture(scope="module")
def config():
    return AVCPNetConfig.tiny()


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    return AVCPNetForVideoClassification(config).eval()


def test_forward_shapes_and_loss(model, config):
    for model_class in (AVCPNetModel, AVCPNetForVideoClassification):  # as transformers' main-input-name check
        assert list(inspect.signature(model_class.forward).parameters)[1] == model_class.main_input_name
    inputs = make_inputs(config)
    labels = torch.tensor([0, 4])
    with torch.no_grad():
        out = model(**inputs, labels=labels)
    for field in BRANCH_FIELDS:
        assert out[field].shape == (2, config.num_labels)
    expected_total, expected = compute_multitask_loss(out, labels, config)
    torch.testing.assert_close(out.loss, expected_total)
    torch.testing.assert_close(out.loss, out.fusion_loss + out.visual_loss + out.audio_loss)
    torch.testing.assert_close(out.audio_loss, expected["audio"])
    # logits are the fused head on the fused representation
    with torch.no_grad():
        base = model.avcpnet(**inputs)
    torch.testing.assert_close(out.logits, model.classifier(base.fused_embeds))


def test_every_parameter_gets_a_gradient_from_the_loss(config):
    model = AVCPNetForVideoClassification(config).train()
    model(**make_inputs(config), labels=torch.tensor([1, 3])).loss.backward()
    missing = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters())


def test_batch_of_one_equals_batch_of_two(model, config):
    inputs = make_inputs(config)
    audio_mask = torch.tensor([True, False])
    with torch.no_grad():
        pair = model(**inputs, audio_mask=audio_mask)
        for row in range(2):
            single = model(**{k: v[row:row + 1] for k, v in inputs.items()}, audio_mask=audio_mask[row:row + 1])
            for field in BRANCH_FIELDS:
                torch.testing.assert_close(single[field], pair[field][row:row + 1], atol=1e-5, rtol=1e-5)


def test_return_dict_false_tuple_matches(model, config):
    inputs = dict(make_inputs(config), labels=torch.tensor([2, 5]), output_hidden_states=True)
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
    assert torch.equal(as_tuple[0], as_dict.loss) and torch.equal(as_tuple[1], as_dict.logits)
    for left, right in zip(as_tuple, as_dict.to_tuple()):
        if isinstance(left, tuple):
            assert all(torch.equal(a, b) for a, b in zip(left, right))
        else:
            assert torch.equal(left, right)


def test_hidden_states_and_attentions_shapes(model, config):
    with torch.no_grad():
        out = model(**make_inputs(config), output_hidden_states=True, output_attentions=True)
    # Video Swin: patch embeddings + one per stage, (B*S, T', H', W', C) with T' = frames / 2, H' = W' = 32 / 4.
    assert len(out.hidden_states) == len(config.depths) + 1
    t, h = config.frames_per_segment // 2, config.image_size // 4
    expected = [(4, t, h, h, 24), (4, t, h, h, 24), (4, t, h // 2, h // 2, 48),
                (4, t, h // 4, h // 4, 96), (4, t, h // 8, h // 8, 192)]
    assert [tuple(s.shape) for s in out.hidden_states] == expected
    # Audio ResNet: stem + one per stage, (B*A, C, time, mfcc); stem stride (2, 1) then max pool /2.
    time = config.audio_length // config.audio_segments
    widths = [config.audio_embedding_size] + config.audio_hidden_sizes
    sizes = [(time // 4, config.num_mfcc // 2)] * 2 + [(time // 8, 8), (time // 16, 4), (time // 32, 2)]
    assert [tuple(s.shape) for s in out.audio_hidden_states] == [
        (2 * config.audio_segments, c, *size) for c, size in zip(widths, sizes)]
    assert len(out.attentions) == sum(config.depths)
    assert out.attentions[0].shape[0] == 4 and out.attentions[0].shape[2] == config.num_heads[0]


@pytest.mark.parametrize("audio_mask", [None, [True, False]])
def test_hidden_states_are_the_tensors_on_the_graph(config, audio_mask):
    """transformers' convention: retain_grad() on a returned hidden state yields its gradient (a reshaped copy
    would be a leaf of nothing and keep grad None)."""
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config)
    mask = None if audio_mask is None else torch.tensor(audio_mask)
    out = model(**make_inputs(config), audio_mask=mask, labels=torch.tensor([1, 3]), output_hidden_states=True,
                output_attentions=True)
    states = out.hidden_states + out.audio_hidden_states + out.attentions
    for state in states:
        state.retain_grad()
    out.loss.backward()
    assert all(state.grad is not None and state.grad.abs().sum() > 0 for state in out.hidden_states)
    assert all(state.grad is not None and state.grad.abs().sum() > 0 for state in out.audio_hidden_states)
    assert all(state.grad is not None for state in out.attentions)
    clips_with_audio = 2 if audio_mask is None else 1
    assert out.audio_hidden_states[0].shape[0] == clips_with_audio * config.audio_segments


def test_eager_attention_matches_sdpa(model, config):
    inputs = make_inputs(config)
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    assert eager.config._attn_implementation == "eager" and model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(eager(**inputs).logits, model(**inputs).logits, atol=1e-5, rtol=1e-4)


def test_audio_mask_classifies_from_vision_alone(config):
    model = AVCPNetForVideoClassification(config).train()  # train mode: batch-norm uses batch statistics
    inputs = make_inputs(config, batch_size=3)
    audio_mask = torch.tensor([True, False, True])
    out = model(**inputs, audio_mask=audio_mask, labels=torch.tensor([0, 1, 2]))
    torch.testing.assert_close(out.logits[1], out.visual_logits[1])
    # Replacing the audio of the clip without audio (even by NaN) changes nothing, for any clip.
    changed = dict(inputs, input_features=inputs["input_features"].clone())
    changed["input_features"][1] = float("nan")
    again = model(**changed, audio_mask=audio_mask, labels=torch.tensor([0, 1, 2]))
    for field in BRANCH_FIELDS + ("loss",):
        assert torch.isfinite(again[field]).all()
        torch.testing.assert_close(again[field], out[field], rtol=0, atol=0)
    # Its audio does count when the mask says it has audio.
    unmasked = model(**inputs)
    assert not torch.allclose(unmasked.logits[1], out.logits[1])
    # No clip has audio: every clip classified from vision, no NaN, fusion/audio losses exactly 0.
    none = model(**changed, audio_mask=torch.zeros(3, dtype=torch.bool), labels=torch.tensor([0, 1, 2]))
    torch.testing.assert_close(none.logits, none.visual_logits)
    assert none.fusion_loss.item() == 0.0 and none.audio_loss.item() == 0.0 and torch.isfinite(none.loss)
    none.loss.backward()


@pytest.mark.parametrize(
    "overrides",
    [dict(fusion_type="concat"), dict(fusion_type="ew_sum"), dict(fusion_type="ew_product"),
     dict(fusion_type="neural"), dict(fusion_type="gated", use_cross_attention=False), dict(use_cross_attention=False),
     dict(fusion_type="gated", unimodal_head="separate")],
)
def test_fusion_variants_run_and_train(overrides):
    config = AVCPNetConfig.tiny(**overrides)
    model = AVCPNetForVideoClassification(config)
    assert (model.avcpnet.fusion.cross_attention is None) == (not config.use_cross_attention)
    out = model(**make_inputs(config), labels=torch.tensor([0, 1]))
    out.loss.backward()
    fusion = model.avcpnet.fusion
    assert all(p.grad is not None for p in fusion.parameters())
    # The fused representation is what the fusion type says (table 8).
    visual, audio = torch.randn(2, config.hidden_size), torch.randn(2, config.hidden_size)
    layer = fusion.modality_fusion
    if config.fusion_type == "ew_sum":  # the plain element-wise sum: no per-modality layers at all
        assert not hasattr(layer, "visual_projection") and not list(layer.parameters())
        torch.testing.assert_close(layer(visual, audio), visual + audio)
        return
    v, a = layer.visual_projection(visual), layer.audio_projection(audio)
    expected = {"concat": lambda: layer.output(torch.cat([v, a], -1)),
                "ew_product": lambda: v * a,
                "neural": lambda: layer.output(F.relu(layer.hidden(torch.cat([v, a], -1)))),
                "gated": lambda: torch.sigmoid(a) * v,  # audio gates visual, as the public GatedFusion call
                "sum": lambda: v + a}[config.fusion_type]()
    torch.testing.assert_close(layer(visual, audio), expected)


@pytest.mark.parametrize("fusion_type", ["sum", "concat", "ew_sum"])
def test_sf_term_unimodal_logits_add_up_to_the_fused_logits(fusion_type):
    config = AVCPNetConfig.tiny(fusion_type=fusion_type)
    assert config.unimodal_head == "sf_terms"
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config).eval()
    assert model.visual_classifier is None and model.audio_classifier is None
    with torch.no_grad():  # non-zero biases everywhere, so that a wrong bias split would show
        for name, parameter in model.named_parameters():
            if name.endswith("bias") and name.startswith(("avcpnet.fusion.", "classifier.")):
                parameter.uniform_(-0.5, 0.5)
        out = model(**make_inputs(config), output_hidden_states=False)
        base = model.avcpnet(**make_inputs(config))
        # Computed another way: the public code's fc_y(v'), fc_x(a') on the CAF outputs, through the classifier.
        visual, audio = model.avcpnet.fusion.cross_attention(base.visual_embeds, base.audio_embeds)
        layer, head = model.avcpnet.fusion.modality_fusion, model.classifier
        if fusion_type == "sum":
            visual_term, audio_term = layer.visual_projection(visual), layer.audio_projection(audio)
        elif fusion_type == "ew_sum":
            visual_term, audio_term = visual, audio
        else:
            zeros = torch.zeros_like(visual)
            bias = layer.output.bias / 2
            visual_term = layer.output(torch.cat([layer.visual_projection(visual), zeros], -1)) - bias
            audio_term = layer.output(torch.cat([zeros, layer.audio_projection(audio)], -1)) - bias
    torch.testing.assert_close(out.visual_logits, head(visual_term) - head.bias / 2)
    torch.testing.assert_close(out.audio_logits, head(audio_term) - head.bias / 2)
    torch.testing.assert_close(out.visual_logits + out.audio_logits, out.logits)
    # ... and both unimodal losses reach the CAF and SF layers (they did not with the separate pre-CAF heads).
    out = model.train()(**make_inputs(config), labels=torch.tensor([0, 1]))
    model.zero_grad()
    (out.visual_loss + out.audio_loss).backward()
    # (Not the queries and keys: with length-1 sequences the attention weight is 1 whatever they are.)
    reached = {name: p.grad is not None and bool(p.grad.abs().sum() > 0)
               for name, p in model.avcpnet.fusion.named_parameters() if not name.split(".")[-2] in ("q_proj", "k_proj")}
    assert reached and all(reached.values()), reached


def test_separate_unimodal_heads_stay_available_and_sit_before_the_fusion():
    config = AVCPNetConfig.tiny(unimodal_head="separate")
    model = AVCPNetForVideoClassification(config).eval()
    with torch.no_grad():
        out = model(**make_inputs(config))
        base = model.avcpnet(**make_inputs(config))
    assert base.visual_fusion_term is None
    torch.testing.assert_close(out.visual_logits, model.visual_classifier(base.visual_embeds))
    torch.testing.assert_close(out.audio_logits, model.audio_classifier(base.audio_embeds))


def test_checkpoints_load_with_their_own_head_placement_and_refuse_the_other(tmp_path):
    import json

    separate = AVCPNetForVideoClassification(AVCPNetConfig.tiny(unimodal_head="separate", fusion_type="ew_product"))
    separate.save_pretrained(tmp_path / "separate")
    # A config saved before the field existed: no unimodal_head, and its "ew_sum" was the element-wise product.
    config_file = tmp_path / "separate" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["unimodal_head"]
    saved["fusion_type"] = "ew_sum"
    config_file.write_text(json.dumps(saved))
    legacy = AVCPNetForVideoClassification.from_pretrained(tmp_path / "separate")
    assert (legacy.config.unimodal_head, legacy.config.fusion_type) == ("separate", "ew_product")
    for name, tensor in separate.state_dict().items():
        assert torch.equal(tensor, legacy.state_dict()[name]), name
    assert AVCPNetConfig.from_json_file(config_file).unimodal_head == "separate"
    # The Auto classes read config.json through the base class: the same upgrade (the pipeline and `predict` load so).
    from transformers import AutoConfig, AutoModelForVideoClassification

    assert AutoConfig.from_pretrained(tmp_path / "separate").unimodal_head == "separate"
    auto_loaded = AutoModelForVideoClassification.from_pretrained(tmp_path / "separate")
    assert (auto_loaded.config.unimodal_head, auto_loaded.config.fusion_type) == ("separate", "ew_product")
    assert torch.equal(auto_loaded.visual_classifier.weight, separate.visual_classifier.weight)
    # A hand-written dict is not a saved config: it keeps the current defaults.
    assert AVCPNetConfig.from_dict({"num_labels": 6}).unimodal_head == "sf_terms"
    with pytest.raises(ValueError, match="unimodal_head='separate'"):
        AVCPNetForVideoClassification.from_pretrained(tmp_path / "separate", unimodal_head="sf_terms")

    AVCPNetForVideoClassification(AVCPNetConfig.tiny()).save_pretrained(tmp_path / "sf_terms")
    assert json.loads((tmp_path / "sf_terms" / "config.json").read_text())["unimodal_head"] == "sf_terms"
    assert AVCPNetForVideoClassification.from_pretrained(tmp_path / "sf_terms").config.unimodal_head == "sf_terms"
    with pytest.raises(ValueError, match="unimodal_head='sf_terms'"):
        AVCPNetForVideoClassification.from_pretrained(tmp_path / "sf_terms", unimodal_head="separate")
    # A bare backbone (AVCPNetModel) still starts any head placement.
    AVCPNetModel(AVCPNetConfig.tiny()).save_pretrained(tmp_path / "backbone")
    AVCPNetForVideoClassification.from_pretrained(tmp_path / "backbone", unimodal_head="separate")


def test_cross_attention_fusion_is_eq_4_to_7(model, config):
    # Length-1 sequences: each attention has one key, so the result is the other modality's projected value.
    caf = model.avcpnet.fusion.cross_attention
    visual, audio = torch.randn(3, config.hidden_size), torch.randn(3, config.hidden_size)
    with torch.no_grad():
        fused_visual, fused_audio = caf(visual, audio)
        attn = caf.visual_attention
        expected_visual = caf.visual_output(attn.o_proj(attn.v_proj(audio))) + visual
        attn = caf.audio_attention
        expected_audio = caf.audio_output(attn.o_proj(attn.v_proj(visual))) + audio
    torch.testing.assert_close(fused_visual, expected_visual)
    torch.testing.assert_close(fused_audio, expected_audio)


@pytest.mark.parametrize("modalities", ["visual", "audio"])
def test_single_modality_runs_without_the_other_input(modalities):
    config = AVCPNetConfig.tiny(modalities=modalities)
    model = AVCPNetForVideoClassification(config)
    inputs = make_inputs(config)
    inputs.pop("input_features" if modalities == "visual" else "pixel_values_videos")
    out = model(**inputs, labels=torch.tensor([0, 1]))
    other = "audio" if modalities == "visual" else "visual"
    assert getattr(out, f"{other}_logits") is None and getattr(out, f"{other}_loss") is None
    assert out.fusion_loss is None
    assert torch.equal(out.logits, getattr(out, f"{modalities}_logits"))
    torch.testing.assert_close(out.loss, getattr(out, f"{modalities}_loss"))
    assert getattr(model.avcpnet, f"{other}_encoder") is None and model.avcpnet.fusion is None
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_inputs_raise_clear_errors(model, config):
    inputs = make_inputs(config)
    with pytest.raises(ValueError, match="needs input_features"):
        model(pixel_values_videos=inputs["pixel_values_videos"])
    with pytest.raises(ValueError, match="needs pixel_values_videos"):
        model(input_features=inputs["input_features"])
    with pytest.raises(ValueError, match="audio_segments=2"):
        model(pixel_values_videos=inputs["pixel_values_videos"], input_features=inputs["input_features"][:, :1])
    with pytest.raises(ValueError, match="pixel_values_videos must be"):
        model(pixel_values_videos=inputs["pixel_values_videos"][0], input_features=inputs["input_features"])
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(pixel_values_videos=inputs["pixel_values_videos"], input_features=inputs["input_features"][:1])
    with pytest.raises(ValueError, match="audio_mask must have shape"):
        model(**inputs, audio_mask=torch.tensor([True]))
    with pytest.raises(TypeError, match="audio_masks"):  # a misspelt input is an error, not silently ignored
        model(**inputs, audio_masks=torch.tensor([True, True]))


def _reset_init_flags(module):
    for submodule in module.modules():
        submodule._is_hf_initialized = False
    for tensor in list(module.parameters()) + list(module.buffers()):
        if hasattr(tensor, "_is_hf_initialized"):
            del tensor._is_hf_initialized


def test_init_weights_covers_every_parameter_and_recreates_every_buffer(config):
    for model_class in (AVCPNetModel, AVCPNetForVideoClassification):
        reference = model_class(copy.deepcopy(config))
        _reset_init_flags(reference)
        torch.manual_seed(123)
        reference.init_weights()
        # Built on the meta device, moved to memory holding garbage (NaN / a sentinel), then only init_weights().
        with torch.device("meta"):
            rebuilt = model_class(copy.deepcopy(config))
        rebuilt.to_empty(device="cpu")
        with torch.no_grad():
            for tensor in list(rebuilt.parameters()) + list(rebuilt.buffers()):
                tensor.fill_(float("nan") if tensor.is_floating_point() else 12345)
        torch.manual_seed(123)
        rebuilt.init_weights()
        expected = dict(reference.named_parameters()) | dict(reference.named_buffers())
        actual = dict(rebuilt.named_parameters()) | dict(rebuilt.named_buffers())
        assert sorted(expected) == sorted(actual)
        assert any("relative_position_index" in name for name in actual)
        different = [name for name in expected if not torch.equal(expected[name], actual[name])]
        assert not different, f"{model_class.__name__}: not (re)initialised by _init_weights: {different}"

    # from_pretrained with every weight missing initialises everything (nothing left on meta, nothing NaN).
    loaded = AVCPNetForVideoClassification.from_pretrained(None, config=copy.deepcopy(config), state_dict={})
    for name, tensor in list(loaded.named_parameters()) + list(loaded.named_buffers()):
        assert tensor.device.type == "cpu", name
        assert not tensor.is_floating_point() or torch.isfinite(tensor).all(), name


def test_gradient_checkpointing_gives_the_same_gradients(config):
    torch.manual_seed(0)
    plain = AVCPNetForVideoClassification(config).train()
    checkpointed = copy.deepcopy(plain)
    enable = getattr(checkpointed, "activation_checkpointing_enable", None) or checkpointed.gradient_checkpointing_enable
    enable()
    layers = [m for m in checkpointed.modules() if isinstance(m, GradientCheckpointingLayer)]
    audio_blocks = list(checkpointed.avcpnet.audio_encoder.modules())
    assert any(m in audio_blocks for m in layers) and all(m.gradient_checkpointing for m in layers)
    # A checkpointed block runs its inside twice (forward, then recomputation in backward; torch stops recomputing
    # once it has every saved tensor, so count a submodule near the start of each block).
    calls = []
    audio_block = checkpointed.avcpnet.audio_encoder.resnet.encoder.stages[0].layers[0]
    audio_block.layer[0].register_forward_hook(lambda *args: calls.append("audio"))
    swin_block = checkpointed.avcpnet.visual_encoder.layers[0].blocks[0]
    swin_block.attention.register_forward_hook(lambda *args: calls.append("visual"))

    inputs, labels = make_inputs(config), torch.tensor([1, 4])
    plain(**inputs, labels=labels).loss.backward()
    loss = checkpointed(**inputs, labels=labels).loss
    loss.backward()
    assert calls.count("audio") == 2 and calls.count("visual") == 2
    disable = getattr(checkpointed, "activation_checkpointing_disable", None) or checkpointed.gradient_checkpointing_disable
    disable()
    assert not any(m.gradient_checkpointing for m in layers)
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_config_json_round_trip(tmp_path):
    config = AVCPNetConfig.tiny(fusion_type="gated", ep_ce_gammas={"positive": 0.1, "neutral": 0.2, "negative": 0.3})
    again = AVCPNetConfig.from_dict(json.loads(config.to_json_string()))
    assert again.to_dict() == config.to_dict()
    config.to_json_file(tmp_path / "config.json")
    assert AVCPNetConfig.from_json_file(tmp_path / "config.json").to_dict() == config.to_dict()
    loaded = AutoConfig.from_pretrained(tmp_path).to_dict()
    assert loaded.pop("_name_or_path") == str(tmp_path)
    assert loaded == {key: value for key, value in config.to_dict().items() if key != "_name_or_path"}


@pytest.mark.smoke
def test_save_load_round_trip_and_auto_classes(model, config, tmp_path):
    inputs = make_inputs(config)
    with torch.no_grad():
        expected = model(**inputs)
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"model.safetensors", "config.json", "configuration_avcpnet.py", "modeling_avcpnet.py",
            "modeling_video_swin.py", "loss_avcpnet.py"} <= files
    assert not any(name.endswith(".bin") for name in files)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_avcpnet.AVCPNetConfig",
                        "AutoModel": "modeling_avcpnet.AVCPNetModel",
                        "AutoModelForVideoClassification": "modeling_avcpnet.AVCPNetForVideoClassification"}
    for loader in (AVCPNetForVideoClassification, AutoModelForVideoClassification):
        reloaded = loader.from_pretrained(tmp_path).eval()
        assert isinstance(reloaded, AVCPNetForVideoClassification)
        with torch.no_grad():
            again = reloaded(**inputs)
        for field in BRANCH_FIELDS:
            assert torch.equal(again[field], expected[field]), field
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(base, AVCPNetModel)
    with torch.no_grad():
        assert torch.equal(base(**inputs).fused_embeds, model.avcpnet(**inputs).fused_embeds)


FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    try:
        import modeling_avcpnet  # noqa: F401
        raise SystemExit("package still importable")
    except ModuleNotFoundError:
        pass
    import torch
    from transformers import AutoModel, AutoModelForVideoClassification
    data = torch.load("expected.pt")
    classifier = AutoModelForVideoClassification.from_pretrained("checkpoint", trust_remote_code=True).eval()
    base = AutoModel.from_pretrained("checkpoint", trust_remote_code=True).eval()
    assert type(classifier).__name__ == "AVCPNetForVideoClassification", type(classifier)
    assert type(base).__name__ == "AVCPNetModel", type(base)
    assert type(classifier).__module__.startswith("transformers_modules."), type(classifier).__module__
    with torch.no_grad():
        out = classifier(**data["inputs"])
        fused = base(**data["inputs"]).fused_embeds
    # Same weights, same inputs, another process: equal up to float32 rounding (the CPU kernels a process picks,
    # e.g. oneDNN's with AMX, may sum in another order).
    for field in ("logits", "visual_logits", "audio_logits"):
        torch.testing.assert_close(out[field], data[field], msg=field)
    torch.testing.assert_close(fused, data["fused_embeds"])
    assert "modeling_avcpnet" not in sys.modules
    print("FRESH-PROCESS-OK")
    """
)


@pytest.mark.smoke
def test_auto_classes_load_in_a_fresh_process_without_the_package(model, config, tmp_path):
    inputs = make_inputs(config)
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    shutil.copytree(saved, workdir / "checkpoint")
    with torch.no_grad():
        out = model(**inputs)
        fused = model.avcpnet(**inputs).fused_embeds
    torch.save({"inputs": inputs, "fused_embeds": fused, **{f: out[f] for f in BRANCH_FIELDS}},
               workdir / "expected.pt")
    result = run_without_package(FRESH_PROCESS_SCRIPT, cwd=workdir, env={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert result.returncode == 0 and "FRESH-PROCESS-OK" in result.stdout, result.stdout + result.stderr[-3000:]


def test_other_num_labels_loads_only_with_ignore_mismatched_sizes(model, tmp_path):
    model.save_pretrained(tmp_path)
    labels = {"id2label": {0: "joy", 1: "neutral", 2: "anger"}, "label2id": {"joy": 0, "neutral": 1, "anger": 2},
              "label2polarity": {"joy": "positive", "neutral": "neutral", "anger": "negative"}}
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        AVCPNetForVideoClassification.from_pretrained(tmp_path, **labels)
    reloaded = AVCPNetForVideoClassification.from_pretrained(tmp_path, ignore_mismatched_sizes=True, **labels)
    assert reloaded.config.num_labels == 3 and reloaded.config.polarity_ids == [0, 1, 2]
    assert reloaded.visual_classifier is None and reloaded.audio_classifier is None  # SF-term placement
    for head in ("classifier",):
        assert getattr(reloaded, head).weight.shape == (3, model.config.hidden_size)
    for name, tensor in reloaded.avcpnet.state_dict().items():
        assert torch.equal(tensor, model.avcpnet.state_dict()[name]), name


def test_convert_resnet_weights(config, tmp_path):
    source_config = ResNetConfig(num_channels=3, embedding_size=config.audio_embedding_size,
                                 hidden_sizes=config.audio_hidden_sizes, depths=config.audio_depths, layer_type="basic")
    torch.manual_seed(3)
    resnet = ResNetModel(source_config).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, to see them carried over
        for module in resnet.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    resnet.save_pretrained(tmp_path / "resnet")
    config.save_pretrained(tmp_path / "target")
    convert_resnet_main(["--checkpoint", str(tmp_path / "resnet"), "--output_dir", str(tmp_path / "out"),
                         "--config", str(tmp_path / "target")])

    converted = AutoModelForVideoClassification.from_pretrained(tmp_path / "out").eval()
    audio = converted.avcpnet.audio_encoder.resnet
    source = resnet.state_dict()
    for name, tensor in audio.state_dict().items():
        if name != "embedder.embedder.convolution.weight":
            assert torch.equal(tensor, source[name]), name
    # The folded stem (sum over RGB, sum over the kernel width) reproduces the 3-channel 7x7 stem on an input that
    # is constant along the MFCC axis, away from the width borders (stride 2 there vs (2, 1) here).
    signal = torch.randn(1, 1, 16, 1).expand(1, 1, 16, 12)
    original = F.conv2d(signal.expand(1, 3, 16, 12), source["embedder.embedder.convolution.weight"], stride=2,
                        padding=3)
    folded = audio.embedder.embedder.convolution(signal)
    assert folded.shape[-1] == 12 and original.shape[-1] == 6
    torch.testing.assert_close(folded[..., 4], original[..., 2], atol=1e-5, rtol=1e-5)

    # Bottleneck ResNets and mismatched widths are refused with a clear message.
    resnet50 = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[16, 16, 16, 16], depths=[1, 1, 1, 1]))
    resnet50.save_pretrained(tmp_path / "bottleneck")
    with pytest.raises(ValueError, match="bottleneck"):
        convert_resnet_main(["--checkpoint", str(tmp_path / "bottleneck"), "--output_dir", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="audio_hidden_sizes"):
        convert_resnet_main(["--checkpoint", str(tmp_path / "resnet"), "--output_dir", str(tmp_path / "x")])


def test_audio_branch_starts_alive_and_learns_a_pitch_like_cue():
    """A fresh audio-only model must learn a cue that lives only in the MFCC features. (With a zero-bias temporal
    attention its ReLU'd weights start at ~0, the audio embedding has no gradient and the loss stays at ln C.)"""
    torch.manual_seed(0)
    config = AVCPNetConfig.tiny(modalities="audio", id2label={0: "low", 1: "high"},
                                label2polarity={"low": "neutral", "high": "neutral"})
    model = AVCPNetForVideoClassification(config)
    weights = model.avcpnet.audio_encoder.temporal_attention(torch.randn(4, config.audio_segments,
                                                                        config.hidden_size))[1]
    assert weights.min() > 0.5, "temporal attention must start as a (near) uniform mean"

    generator = torch.Generator().manual_seed(0)
    time = config.audio_length // config.audio_segments
    labels = torch.arange(32) % 2
    features = torch.randn(32, config.audio_segments, time, config.num_mfcc, generator=generator)
    features[:, :, :, :4] += (labels * 2.0 - 1.0).view(-1, 1, 1, 1)  # the class shifts the low coefficients
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(25):
        loss = model(input_features=features, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(input_features=features).logits.argmax(-1) == labels).float().mean().item()
    assert loss.item() < 0.5 and accuracy == 1.0
