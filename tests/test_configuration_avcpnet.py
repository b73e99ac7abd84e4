import json

import pytest
from transformers import AutoConfig

from modeling_avcpnet import AVCPNetConfig
from modeling_avcpnet.configuration_avcpnet import EMOTIONS_LABELS


def test_defaults_are_the_paper_and_public_code():
    config = AVCPNetConfig()
    assert (config.patch_size, config.embed_dim, config.depths, config.num_heads, config.window_size) == (
        [2, 4, 4], 96, [2, 2, 6, 2], [3, 6, 12, 24], [8, 7, 7])
    assert (config.mlp_ratio, config.drop_path_rate, config.image_size) == (4.0, 0.1, 112)
    assert (config.num_segments, config.frames_per_segment, config.num_frames) == (16, 8, 128)
    assert (config.num_mfcc, config.audio_length, config.audio_segments, config.audio_depths) == (
        32, 4096, 16, [3, 4, 6, 3])
    assert (config.hidden_size, config.num_attention_heads, config.visual_hidden_size) == (512, 4, 768)
    assert (config.fusion_type, config.modalities, config.use_cross_attention) == ("sum", "audio_visual", True)
    assert [config.id2label[i] for i in range(6)] == EMOTIONS_LABELS
    assert config.ep_ce_gammas == {"positive": 0.5, "neutral": 0.5, "negative": 0.5}
    assert config.branch_loss_weights == {"fusion": 1.0, "visual": 1.0, "audio": 1.0}
    positives = sorted(label for label, polarity in config.label2polarity.items() if polarity == "positive")
    negatives = sorted(label for label, polarity in config.label2polarity.items() if polarity == "negative")
    assert positives == ["excitation", "relaxation"]
    assert negatives == ["fear", "sadness", "tension"]


def test_auto_config_builds_a_tiny_variant():
    config = AutoConfig.for_model("avcpnet", embed_dim=24, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])
    assert isinstance(config, AVCPNetConfig)
    assert (config.embed_dim, config.depths, config.visual_hidden_size) == (24, [1, 1, 1, 1], 192)


@pytest.mark.parametrize(
    "field, value",
    [
        ("embed_dim", 0),
        ("depths", []),
        ("num_heads", [1, 1]),
        ("num_heads", [5, 5, 5, 5]),
        ("window_size", [8, 7]),
        ("audio_length", 100),
        ("fusion_type", "average"),
        ("modalities", "text"),
        ("drop_path_rate", 1.5),
        ("ep_ce_gammas", {"positive": 0.5}),
        ("branch_loss_weights", {"fusion": -1.0, "visual": 1.0, "audio": 1.0}),
        ("label2polarity", {"fear": "scary"}),
    ],
)
def test_invalid_values_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"AVCPNetConfig\.{field}"):
        AVCPNetConfig(**{field: value})


def test_json_round_trip_is_unchanged(tmp_path):
    config = AVCPNetConfig.tiny(fusion_type="gated", ep_ce_gammas={"positive": 1.0, "neutral": 0.0, "negative": 2.0})
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    original, loaded = config.to_dict(), reloaded.to_dict()
    original.pop("_name_or_path", None), loaded.pop("_name_or_path", None)
    assert loaded == original
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoConfig"] == "configuration_avcpnet.AVCPNetConfig"


def test_other_label_sets_bring_their_polarity_map():
    config = AVCPNetConfig(id2label={0: "joy", 1: "neutral", 2: "anger"},
                           label2polarity={"joy": "positive", "neutral": "neutral", "anger": "negative"})
    assert config.num_labels == 3 and config.label2id == {"joy": 0, "neutral": 1, "anger": 2}
    assert config.polarity_ids == [0, 1, 2]


def test_a_new_label_count_without_a_map_defaults_to_neutral_with_a_warning(caplog):
    with caplog.at_level("WARNING"):
        config = AVCPNetConfig(num_labels=3, label2polarity={"fear": "negative"})
    assert config.label2polarity == {"LABEL_0": "neutral", "LABEL_1": "neutral", "LABEL_2": "neutral"}
    assert "treated as neutral" in caplog.text
