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
from modeling_avcpnet.configuration_avcpnet import LEGACY_STRUCTURE
from modeling_avcpnet.convert.resnet_weights import main as convert_resnet_main
from modeling_avcpnet.loss_avcpnet import compute_multitask_loss
from modeling_avcpnet.modeling_avcpnet import masked_batch_norm

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
    # logits are the SF layer (to the classes) on the CAF outputs
    with torch.no_grad():
        base = model.avcpnet(**inputs)
    assert base.fused_embeds is None  # fusion_output="logits": no fused feature vector
    torch.testing.assert_close(out.logits, model.classifier(base.visual_attended_embeds, base.audio_attended_embeds))


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


@pytest.mark.parametrize("audio_mask", [None, [True, False, True]])
def test_hidden_states_are_the_tensors_on_the_graph(config, audio_mask):
    """transformers' convention: retain_grad() on a returned hidden state yields its gradient (a reshaped copy
    would be a leaf of nothing and keep grad None). (Two clips with audio at least: with one clip of 2 tiny segments,
    the audio head's batch norm maps its 2 rows to +-1 whatever they are, and passes no gradient back.)"""
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config)
    mask = None if audio_mask is None else torch.tensor(audio_mask)
    out = model(**make_inputs(config, batch_size=3), audio_mask=mask, labels=torch.tensor([1, 3, 0]),
                output_hidden_states=True, output_attentions=True)
    states = out.hidden_states + out.audio_hidden_states + out.attentions
    for state in states:
        state.retain_grad()
    out.loss.backward()
    assert all(state.grad is not None and state.grad.abs().sum() > 0 for state in out.hidden_states)
    assert all(state.grad is not None and state.grad.abs().sum() > 0 for state in out.audio_hidden_states)
    assert all(state.grad is not None for state in out.attentions)
    clips_with_audio = 3 if audio_mask is None else 2
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
    torch.manual_seed(0)  # the same visual-dropout mask in each forward
    out = model(**inputs, audio_mask=audio_mask, labels=torch.tensor([0, 1, 2]))
    torch.testing.assert_close(out.logits[1], out.visual_logits[1])
    # Replacing the audio of the clip without audio (even by NaN) changes nothing, for any clip.
    changed = dict(inputs, input_features=inputs["input_features"].clone())
    changed["input_features"][1] = float("nan")
    torch.manual_seed(0)
    again = model(**changed, audio_mask=audio_mask, labels=torch.tensor([0, 1, 2]))
    for field in BRANCH_FIELDS + ("loss",):
        assert torch.isfinite(again[field]).all()
        torch.testing.assert_close(again[field], out[field], rtol=0, atol=0)
    # Its audio does count when the mask says it has audio.
    torch.manual_seed(0)
    unmasked = model(**inputs)
    assert not torch.allclose(unmasked.logits[1], out.logits[1])
    # No clip has audio: every clip classified from vision, no NaN, fusion/audio losses exactly 0.
    none = model(**changed, audio_mask=torch.zeros(3, dtype=torch.bool), labels=torch.tensor([0, 1, 2]))
    torch.testing.assert_close(none.logits, none.visual_logits)
    assert none.fusion_loss.item() == 0.0 and none.audio_loss.item() == 0.0 and torch.isfinite(none.loss)
    none.loss.backward()


LEGACY = dict(LEGACY_STRUCTURE)


@pytest.mark.parametrize(
    "overrides",
    [dict(fusion_type="concat"), dict(fusion_type="ew_sum"), dict(fusion_type="ew_product"),
     dict(fusion_type="neural"), dict(fusion_type="gated", use_cross_attention=False), dict(use_cross_attention=False),
     dict(fusion_type="gated", unimodal_head="separate"), dict(unimodal_head="separate")],
)
def test_fusion_variants_run_and_train(overrides):
    """The SF layer of each fusion type with `fusion_output="logits"` (the default): straight to the classes."""
    config = AVCPNetConfig.tiny(**overrides)
    model = AVCPNetForVideoClassification(config)
    assert (model.avcpnet.fusion.cross_attention is None) == (not config.use_cross_attention)
    assert model.avcpnet.fusion.modality_fusion is None
    out = model(**make_inputs(config), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert all(p.grad is not None for p in list(model.avcpnet.fusion.parameters()) + list(model.classifier.parameters()))
    visual, audio = torch.randn(2, config.hidden_size), torch.randn(2, config.hidden_size)
    head = model.classifier
    if config.fusion_type == "sum":  # public SumFusion: fc_y(v') + fc_x(a')
        expected = head.visual_output(visual) + head.audio_output(audio)
    elif config.fusion_type == "ew_sum":
        expected = head.output(visual + audio)
    elif config.fusion_type == "concat":  # public ConcatFusion: fc_out(cat(a', v'))
        expected = head.output(torch.cat([audio, visual], -1))
    elif config.fusion_type == "neural":
        expected = head.output(F.relu(head.hidden(torch.cat([audio, visual], -1))))
    else:
        v, a = head.visual_projection(visual), head.audio_projection(audio)
        expected = head.output({"ew_product": v * a, "gated": torch.sigmoid(a) * v}[config.fusion_type])
    torch.testing.assert_close(head(visual, audio), expected)


@pytest.mark.parametrize(
    "overrides",
    [dict(fusion_type="concat"), dict(fusion_type="ew_sum"), dict(fusion_type="ew_product"),
     dict(fusion_type="neural"), dict(fusion_type="gated", use_cross_attention=False), dict(use_cross_attention=False),
     dict(fusion_type="gated", unimodal_head="separate")],
)
def test_hidden_fusion_output_variants_run_and_train(overrides):
    """`fusion_output="hidden"` (the structure before): the SF layer to hidden_size, then a shared classifier."""
    config = AVCPNetConfig.tiny(fusion_output="hidden", **overrides)
    model = AVCPNetForVideoClassification(config)
    assert isinstance(model.classifier, torch.nn.Linear)
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


def _nonzero_biases(model):
    with torch.no_grad():  # non-zero biases everywhere, so that a wrong bias split would show
        for name, parameter in model.named_parameters():
            if name.endswith("bias") and name.startswith(("avcpnet.fusion.", "classifier.")):
                parameter.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("fusion_type", ["sum", "concat", "ew_sum"])
def test_sf_term_unimodal_logits_are_the_public_training_loops_terms(fusion_type):
    """The public loop: `out_v = fc_y(v')`, `out_a = fc_x(a')` (sum), halves of `fc_out` with `bias / 2` (concat);
    they add up to the fused logits; a clip without audio is classified by its visual part with the whole bias."""
    config = AVCPNetConfig.tiny(fusion_type=fusion_type)
    assert (config.unimodal_head, config.fusion_output) == ("sf_terms", "logits")
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config).eval()
    assert model.visual_classifier is None and model.audio_classifier is None
    _nonzero_biases(model)
    audio_mask = torch.tensor([True, False])
    with torch.no_grad():
        out = model(**make_inputs(config), audio_mask=audio_mask)
        base = model.avcpnet(**make_inputs(config), audio_mask=audio_mask)
    visual, audio, head = base.visual_attended_embeds, base.audio_attended_embeds, model.classifier
    if fusion_type == "sum":
        visual_logits, audio_logits = head.visual_output(visual), head.audio_output(audio)
        no_audio = head.visual_output(visual[1])
    else:
        width, weight, bias = config.hidden_size, head.output.weight, head.output.bias
        v_weight, a_weight = (weight[:, width:], weight[:, :width]) if fusion_type == "concat" else (weight, weight)
        visual_logits, audio_logits = visual @ v_weight.T + bias / 2, audio @ a_weight.T + bias / 2
        no_audio = visual[1] @ v_weight.T + bias
    torch.testing.assert_close(out.visual_logits[0], visual_logits[0])
    torch.testing.assert_close(out.audio_logits, audio_logits)
    torch.testing.assert_close(out.visual_logits[0] + out.audio_logits[0], out.logits[0])
    # The clip without audio: its visual part with the whole bias, as logits and as visual logits.
    torch.testing.assert_close(out.logits[1], no_audio)
    torch.testing.assert_close(out.visual_logits[1], no_audio)
    torch.testing.assert_close(visual[1], base.visual_embeds[1])  # it skipped the CAF layer
    # ... and both unimodal losses reach every CAF parameter (over segment sequences the queries and keys count).
    out = model.train()(**make_inputs(config), labels=torch.tensor([0, 1]))
    model.zero_grad()
    (out.visual_loss + out.audio_loss).backward()
    reached = {name: p.grad is not None and bool(p.grad.abs().sum() > 0)
               for name, p in model.avcpnet.fusion.named_parameters()}
    assert reached and all(reached.values()), reached


def test_classifier_dropout_keeps_the_terms_adding_up():
    config = AVCPNetConfig.tiny(classifier_dropout_prob=0.5)
    model = AVCPNetForVideoClassification(config).train()
    _nonzero_biases(model)
    out = model(**make_inputs(config))
    torch.testing.assert_close(out.visual_logits + out.audio_logits, out.logits)


@pytest.mark.parametrize("fusion_type", ["sum", "concat", "ew_sum"])
def test_hidden_sf_term_unimodal_logits_add_up_to_the_fused_logits(fusion_type):
    """`fusion_output="hidden"`, `caf_sequence="pooled"` (the structure before): the SF terms through the shared
    classifier, half its bias each."""
    config = AVCPNetConfig.tiny(fusion_type=fusion_type, **LEGACY)
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config).eval()
    assert model.visual_classifier is None and model.audio_classifier is None
    _nonzero_biases(model)
    with torch.no_grad():
        out = model(**make_inputs(config), output_hidden_states=False)
        base = model.avcpnet(**make_inputs(config))
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


def _save_as_before_the_fields(model, folder, *fields):
    """Save `model`, then drop `fields` from its config.json: a config saved before those fields existed."""
    model.save_pretrained(folder)
    config_file = folder / "config.json"
    saved = json.loads(config_file.read_text())
    for field in fields:
        del saved[field]
    config_file.write_text(json.dumps(saved))
    return saved


def test_checkpoints_load_with_their_own_head_placement_and_refuse_the_other(tmp_path):
    separate = AVCPNetForVideoClassification(AVCPNetConfig.tiny(unimodal_head="separate", fusion_type="ew_product",
                                                                **LEGACY))
    # A config saved before unimodal_head existed (nor the structure fields): its "ew_sum" was the element-wise product.
    saved = _save_as_before_the_fields(separate, tmp_path / "separate", "unimodal_head", *LEGACY)
    config_file = tmp_path / "separate" / "config.json"
    saved["fusion_type"] = "ew_sum"
    config_file.write_text(json.dumps(saved))
    legacy = AVCPNetForVideoClassification.from_pretrained(tmp_path / "separate")
    assert (legacy.config.unimodal_head, legacy.config.fusion_type) == ("separate", "ew_product")
    for name, tensor in separate.state_dict().items():
        assert torch.equal(tensor, legacy.state_dict()[name]), name
    assert AVCPNetConfig.from_json_file(config_file).unimodal_head == "separate"
    # The Auto classes read config.json through the base class: the same upgrade (the pipeline and `predict` load so).
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


def test_checkpoints_saved_before_the_structure_fields_load_as_trained(tmp_path):
    """A folder saved with the previous structure (SF layer to hidden_size + shared classifier, CAF on length-1
    sequences, plain audio head, no visual dropout) and without the fields that name it loads with that structure,
    every weight in place and the same outputs; overriding the structure is refused, naming the fields."""
    torch.manual_seed(0)
    old = AVCPNetForVideoClassification(AVCPNetConfig.tiny(**LEGACY)).eval()
    _save_as_before_the_fields(old, tmp_path / "old", *LEGACY)
    inputs = make_inputs(old.config)
    for loader in (AVCPNetForVideoClassification, AutoModelForVideoClassification):
        loaded = loader.from_pretrained(tmp_path / "old").eval()
        assert {field: getattr(loaded.config, field) for field in LEGACY} == LEGACY
        assert loaded.state_dict().keys() == old.state_dict().keys()
        with torch.no_grad():
            for field in BRANCH_FIELDS:
                assert torch.equal(loaded(**inputs)[field], old(**inputs)[field]), field
    for override in (dict(fusion_output="logits"), dict(caf_sequence="segments"), dict(audio_head="bn_tanh")):
        with pytest.raises(ValueError, match="fusion_output='|caf_sequence='|audio_head='"):
            AVCPNetForVideoClassification.from_pretrained(tmp_path / "old", **override)
    # A folder saved now states its structure and loads as it is.
    new = AVCPNetForVideoClassification(AVCPNetConfig.tiny())
    new.save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "config.json").read_text())
    assert {field: saved[field] for field in LEGACY} == {"fusion_output": "logits", "caf_sequence": "segments",
                                                         "audio_head": "bn_tanh", "visual_dropout_prob": 0.5}
    assert AVCPNetForVideoClassification.from_pretrained(tmp_path / "new").config.fusion_output == "logits"


def test_cross_attention_fusion_over_segments_is_eq_4_to_7(model, config):
    """The public CrossAttentionFusion_Layer: one attention module for both directions over the segment features,
    `linear(attn) + input` per segment, then the mean over the segments."""
    caf = model.avcpnet.fusion.cross_attention
    assert not hasattr(caf, "visual_attention") and not hasattr(caf, "audio_attention")
    visual, audio = torch.randn(3, 4, config.hidden_size), torch.randn(3, 5, config.hidden_size)
    attn = caf.attention

    def attention(queries, context):  # eq. 4-5 written out
        heads, dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
        split = lambda x: x.view(*x.shape[:2], heads, dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(attn.q_proj(queries)), split(attn.k_proj(context)), split(attn.v_proj(context))
        weights = torch.softmax(q @ k.transpose(-1, -2) / dim**0.5, dim=-1)
        return attn.o_proj((weights @ v).transpose(1, 2).reshape(queries.shape))

    with torch.no_grad():
        fused_visual, fused_audio = caf(visual, audio)
        expected_visual = (caf.visual_output(attention(visual, audio)) + visual).mean(1)
        expected_audio = (caf.audio_output(attention(audio, visual)) + audio).mean(1)
    torch.testing.assert_close(fused_visual, expected_visual)
    torch.testing.assert_close(fused_audio, expected_audio)


def test_cross_attention_fusion_pooled_is_the_previous_length_1_form():
    config = AVCPNetConfig.tiny(caf_sequence="pooled")
    caf = AVCPNetForVideoClassification(config).avcpnet.fusion.cross_attention
    # Length-1 sequences: each attention has one key, so the result is the other modality's projected value.
    visual, audio = torch.randn(3, config.hidden_size), torch.randn(3, config.hidden_size)
    with torch.no_grad():
        fused_visual, fused_audio = caf(visual, audio)
        attn = caf.visual_attention
        expected_visual = caf.visual_output(attn.o_proj(attn.v_proj(audio))) + visual
        attn = caf.audio_attention
        expected_audio = caf.audio_output(attn.o_proj(attn.v_proj(visual))) + audio
    torch.testing.assert_close(fused_visual, expected_visual)
    torch.testing.assert_close(fused_audio, expected_audio)


def test_the_caf_layer_sees_the_segment_sequences(config):
    """With caf_sequence="segments" the model feeds the CAF layer the per-segment visual features (v_fc of each
    segment's pooled Swin features) and the attention-weighted audio segments, whose means are the embeddings."""
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config).eval()
    seen = {}
    model.avcpnet.fusion.cross_attention.register_forward_hook(lambda module, args, out: seen.update(args=args))
    with torch.no_grad():
        out = model.avcpnet(**make_inputs(config))
    visual, audio = seen["args"]
    assert visual.shape == (2, config.num_segments, config.hidden_size)
    assert audio.shape == (2, config.audio_segments, config.hidden_size)
    torch.testing.assert_close(visual.mean(1), out.visual_embeds)
    torch.testing.assert_close(audio.mean(1), out.audio_embeds)
    assert not torch.allclose(visual[:, 0], visual[:, 1])


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
    torch.manual_seed(0)  # the same visual-dropout mask in both models
    plain(**inputs, labels=labels).loss.backward()
    torch.manual_seed(0)
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
        assert torch.equal(base(**inputs).visual_attended_embeds, model.avcpnet(**inputs).visual_attended_embeds)


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
        fused = base(**data["inputs"]).audio_attended_embeds
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
        fused = model.avcpnet(**inputs).audio_attended_embeds
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
    for head in (reloaded.classifier.visual_output, reloaded.classifier.audio_output):  # the SF layer, to the classes
        assert head.weight.shape == (3, model.config.hidden_size)
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


@pytest.mark.parametrize("audio_head", ["bn_tanh", "linear"])
def test_audio_branch_starts_alive_and_learns_a_pitch_like_cue(audio_head):
    """A fresh audio-only model must learn a cue that lives only in the MFCC features. (With a zero-bias temporal
    attention its ReLU'd weights start at ~0, the audio embedding has no gradient and the loss stays at ln C.)"""
    torch.manual_seed(0)
    config = AVCPNetConfig.tiny(modalities="audio", id2label={0: "low", 1: "high"},
                                label2polarity={"low": "neutral", "high": "neutral"}, audio_head=audio_head)
    model = AVCPNetForVideoClassification(config)
    weights = model.avcpnet.audio_encoder.temporal_attention(torch.randn(4, config.audio_segments,
                                                                        config.hidden_size))[1]
    if audio_head == "linear":
        assert weights.min() > 0.5, "temporal attention must start as a (near) uniform mean"
    else:  # torch's default Linear init on Tanh'd scores (the public code's): weights of order 1, not ~0
        assert weights.max() > 0.1

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


# ---------------------------------------------------------------------------------------------------------------
# The structure pinned to the public code (XuecWu/eMotions AV-CANet: models/AVNet.py, models/fusion_modules.py,
# models/CrossAttentionFusion_Module.py; VAANet's audio head), at the paper's sizes (C1 = 512, 6 classes, 16 + 16
# segments). Built on the meta device: shapes only, no memory.
# ---------------------------------------------------------------------------------------------------------------


def _full_size(**overrides):
    with torch.device("meta"):
        return AVCPNetForVideoClassification(AVCPNetConfig(**overrides))


def _shapes(model, prefix):
    return {name[len(prefix):]: tuple(p.shape) for name, p in model.named_parameters() if name.startswith(prefix)}


def test_sf_layer_is_the_public_sumfusion_and_concatfusion():
    # SumFusion(input_dim=512, output_dim=n_classes): fc_x (audio), fc_y (visual), straight to the classes; no
    # classifier after it, no per-modality classifiers besides it.
    model = _full_size()
    assert _shapes(model, "classifier.") == {  # public name:
        "visual_output.weight": (6, 512), "visual_output.bias": (6,),  # fc_y
        "audio_output.weight": (6, 512), "audio_output.bias": (6,),  # fc_x
    }
    assert model.visual_classifier is None and model.audio_classifier is None
    assert model.avcpnet.fusion.modality_fusion is None and not _shapes(model, "avcpnet.fusion.modality_fusion")
    # ConcatFusion(input_dim=1024, output_dim=n_classes): one fc_out on cat(a', v'), nothing else.
    assert _shapes(_full_size(fusion_type="concat"), "classifier.") == {"output.weight": (6, 1024),
                                                                        "output.bias": (6,)}
    # GatedFusion(input_dim=512, dim=512, output_dim=n_classes): fc_x, fc_y (512 -> 512), fc_out (512 -> classes).
    assert _shapes(_full_size(fusion_type="gated"), "classifier.") == {
        "audio_projection.weight": (512, 512), "audio_projection.bias": (512,),  # fc_x
        "visual_projection.weight": (512, 512), "visual_projection.bias": (512,),  # fc_y
        "output.weight": (6, 512), "output.bias": (6,),  # fc_out
    }


def test_caf_layer_is_the_public_cross_attention_fusion_layer():
    # CrossAttentionFusion_Layer(input_dim=512): one 4-head attention module (nn.MultiheadAttention(512, 4): in_proj
    # 3 x 512 x 512 + out_proj) shared by both directions, linear_v and linear_a (512 -> 512).
    shapes = _shapes(_full_size(), "avcpnet.fusion.cross_attention.")
    square, vector = (512, 512), (512,)
    assert shapes == {
        **{f"attention.{p}_proj.{k}": (square if k == "weight" else vector) for p in "qkvo" for k in ("weight", "bias")},
        "visual_output.weight": square, "visual_output.bias": vector,  # linear_v
        "audio_output.weight": square, "audio_output.bias": vector,  # linear_a
    }
    model = _full_size()
    assert model.config.num_attention_heads == 4 and model.avcpnet.fusion.cross_attention.attention.num_heads == 4


def test_audio_head_is_vaanets_bn_tanh_and_the_visual_dropout_is_public():
    model = _full_size()
    audio = model.avcpnet.audio_encoder
    # a_fc = Sequential(Linear(512, 512), BatchNorm1d(512), Tanh())
    assert _shapes(model, "avcpnet.audio_encoder.projection") == {
        ".weight": (512, 512), ".bias": (512,), "_norm.weight": (512,), "_norm.bias": (512,)}
    assert isinstance(audio.projection_norm, torch.nn.BatchNorm1d) and isinstance(audio.projection_activation,
                                                                                  torch.nn.Tanh)
    # aa_net: conv = Sequential(Conv1d(512, 1, 1, bias=False), BatchNorm1d(1), Tanh()), fc = Linear(16, 16), ReLU
    attention = audio.temporal_attention
    assert _shapes(model, "avcpnet.audio_encoder.temporal_attention.") == {
        "score.weight": (1, 512, 1), "score_norm.weight": (1,), "score_norm.bias": (1,),
        "mixer.weight": (16, 16), "mixer.bias": (16,)}
    assert isinstance(attention.score_norm, torch.nn.BatchNorm1d) and isinstance(attention.score_activation,
                                                                                 torch.nn.Tanh)
    assert isinstance(attention.activation, torch.nn.ReLU)
    # AVNet: self.dropout = nn.Dropout(p=0.5) on the pooled Video Swin features, then v_fc = Linear(768, 512).
    assert isinstance(model.avcpnet.visual_dropout, torch.nn.Dropout) and model.avcpnet.visual_dropout.p == 0.5
    assert _shapes(model, "avcpnet.visual_projection.") == {"weight": (512, 768), "bias": (512,)}
    # The structure before (kept under its own names): no BN / Tanh, no dropout, SF to hidden + shared classifier.
    old = _full_size(**LEGACY)
    assert old.avcpnet.audio_encoder.projection_norm is None
    assert old.avcpnet.audio_encoder.temporal_attention.score_norm is None
    assert old.avcpnet.visual_dropout.p == 0.0
    assert _shapes(old, "classifier.") == {"weight": (6, 512), "bias": (6,)}
    assert {"visual_attention.q_proj.weight", "audio_attention.q_proj.weight"} <= set(
        _shapes(old, "avcpnet.fusion.cross_attention."))


def test_visual_dropout_acts_in_training_only(config):
    model = AVCPNetModel(config)
    inputs = make_inputs(config)
    model.train()
    torch.manual_seed(0)
    first = model(**inputs).visual_embeds
    torch.manual_seed(1)
    assert not torch.allclose(first, model(**inputs).visual_embeds)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**inputs).visual_embeds, model(**inputs).visual_embeds)


def test_the_sync_free_audio_paths_give_the_numbers_of_the_per_clip_path(model, config):
    """Eval mode encodes every clip and zeroes the silent ones (no host sync, one graph under torch.compile);
    `audio_mask=None` means every clip has audio. Both give what encoding the clips with audio alone gives."""
    inputs = make_inputs(config, batch_size=3, seed=4)
    with torch.no_grad():
        mixed = model(**inputs, audio_mask=torch.tensor([True, False, True]))
        for position in range(3):  # each clip alone: a silent clip takes the vision-only path
            alone = model(**{key: value[position:position + 1] for key, value in inputs.items()},
                          audio_mask=torch.tensor([position != 1]))
            torch.testing.assert_close(mixed.logits[position:position + 1], alone.logits)
        every = model(**inputs, audio_mask=None)
        torch.testing.assert_close(every.logits, model(**inputs, audio_mask=torch.ones(3, dtype=torch.bool)).logits)
        encoded, _ = model.avcpnet._encode_audio(inputs["input_features"], torch.tensor([True, False, True]), True)
        sync_free, _ = model.avcpnet._encode_audio(inputs["input_features"], torch.tensor([True, False, True]), False)
    torch.testing.assert_close(sync_free, encoded)  # hidden states asked for: the per-clip path
    assert not sync_free[1].any()


def _encode_audio_per_clip(self, input_features, has_audio, output_hidden_states, every_clip_has_audio=False):
    """The reference: `AVCPNetModel._encode_audio` as it was, encoding the clips with audio alone (host syncs)."""
    if every_clip_has_audio or bool(has_audio.all()):
        return self.audio_encoder(input_features, output_hidden_states)
    batch_size = input_features.shape[0]
    if not bool(has_audio.any()):
        return input_features.new_zeros(batch_size, self.config.audio_segments, self.config.hidden_size), None
    present, hidden_states = self.audio_encoder(input_features[has_audio], output_hidden_states)
    return present.new_zeros(batch_size, *present.shape[1:]).index_put((has_audio,), present), hidden_states


def _batch_norm_state(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()
            if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}


@pytest.mark.parametrize("audio_mask", [[False, True, True, False, True], [False, False, False]])
def test_the_sync_free_training_path_gives_the_numbers_of_the_per_clip_path(config, audio_mask):
    """Training with a partial audio_mask encodes the whole batch, every batch norm of the audio branch taking its
    statistics over the clips with audio (`masked_batch_norm`): outputs, loss, gradients and running statistics are
    those of encoding the clips with audio alone. A batch without audio leaves the running statistics as they were."""
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config).train()
    reference = copy.deepcopy(model)
    reference.avcpnet._encode_audio = _encode_audio_per_clip.__get__(reference.avcpnet)
    before = _batch_norm_state(model)
    mask = torch.tensor(audio_mask)
    inputs = make_inputs(config, batch_size=len(audio_mask), seed=4)
    inputs["input_features"][~mask] = float("nan")  # never read: the silent clips are encoded from zeros
    labels = torch.arange(len(audio_mask)) % config.num_labels
    outputs = []
    for each in (model, reference):
        torch.manual_seed(0)  # the same visual-dropout mask
        outputs.append(each(**inputs, audio_mask=mask, labels=labels))
        outputs[-1].loss.backward()
    new, old = outputs
    for field in ("loss", *BRANCH_FIELDS):
        torch.testing.assert_close(new[field], old[field], atol=1e-6, rtol=1e-5, msg=field)
    for (name, parameter), (_, expected) in zip(model.named_parameters(), reference.named_parameters()):
        # A batch without audio: the per-clip path leaves the audio encoder off the graph (grad None), here zeros.
        expected = expected.grad if expected.grad is not None else torch.zeros_like(parameter)
        torch.testing.assert_close(parameter.grad, expected, atol=1e-5, rtol=1e-4, msg=name)
    state, expected_state = _batch_norm_state(model), _batch_norm_state(reference)
    assert state.keys() == expected_state.keys() and len(state) > 0
    for name, tensor in state.items():
        torch.testing.assert_close(tensor, expected_state[name], atol=1e-6, rtol=1e-5, msg=name)
        if not any(audio_mask):
            assert torch.equal(tensor, before[name]), name


@pytest.mark.parametrize("shape", [(6, 5), (6, 1, 4), (6, 3, 4, 2)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_masked_batch_norm_is_batch_norm_of_the_kept_rows(shape, momentum):
    norm = torch.nn.BatchNorm1d(shape[1], momentum=momentum) if len(shape) < 4 else torch.nn.BatchNorm2d(
        shape[1], momentum=momentum)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-1, 1)
    reference = copy.deepcopy(norm)
    keep = torch.tensor([True, False, True, True, False, True])
    values = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 3 + 2
    for step in range(2):  # two steps: the running average with momentum=None uses num_batches_tracked
        masked = masked_batch_norm(norm, values + step, keep)
        torch.testing.assert_close(masked[keep], reference(values[keep] + step))
        assert not masked[~keep].any()
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(norm.state_dict()[name], tensor, msg=name)
    learnt = copy.deepcopy(norm.state_dict())
    masked_batch_norm(norm, values, torch.zeros(6, dtype=torch.bool))  # no row kept: nothing learnt
    for name, tensor in learnt.items():
        assert torch.equal(norm.state_dict()[name], tensor), name
    norm.eval(), reference.eval()
    torch.testing.assert_close(masked_batch_norm(norm, values, keep), reference(values))  # eval: running statistics


@pytest.mark.parametrize("structure", [{}, LEGACY_STRUCTURE], ids=["default", "legacy"])
def test_the_forward_compiles_into_one_graph(structure):
    """No host sync, no data-dependent shape: `fullgraph=True` raises on any graph break. Training with a partial
    audio_mask (loss and backward included), training without a mask, eval with a mask; another mask pattern
    reuses the graph (no recompilation)."""
    config = AVCPNetConfig.tiny(**structure)
    torch.manual_seed(0)
    model = AVCPNetForVideoClassification(config).train()
    inputs, labels = make_inputs(config, batch_size=3, seed=4), torch.tensor([0, 4, 2])
    partial = torch.tensor([True, False, True])
    torch._dynamo.reset()
    try:
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        compiled(**inputs, audio_mask=partial, labels=labels).loss.backward()
        with torch._dynamo.config.patch(error_on_recompile=True):
            for other in ([False, True, False], [False, False, False]):
                compiled(**inputs, audio_mask=torch.tensor(other), labels=labels).loss.backward()
        compiled(**inputs, labels=labels).loss.backward()
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(compiled(**inputs, audio_mask=partial, labels=labels).logits,
                                       model(**inputs, audio_mask=partial).logits)
    finally:
        torch._dynamo.reset()
