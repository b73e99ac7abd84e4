"""MER 2023 system: AFG fusion, JDEV decoder, uncertainty loss, decision fusion, challenge metric, feature extraction,
dataset builder, Hub round trip, and a short Trainer run where JDEV beats the baseline decoder."""

from __future__ import annotations

import math
import os
import shutil
import textwrap
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, mean_squared_error as sk_mse
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForVideoClassification,
    EvalPrediction,
    HubertConfig,
    HubertModel,
    ResNetConfig,
    ResNetModel,
    Trainer,
    TrainingArguments,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
    Wav2Vec2FeatureExtractor,
    set_seed,
)

from modeling_avcpnet import (
    MER2023Config,
    MER2023DecisionFusion,
    MER2023DeepFeatureExtractor,
    MER2023ForEmotionValence,
    MER2023Model,
    compute_mer2023_metrics,
    mer2023_metrics,
)
from modeling_avcpnet.mer2023.decision_fusion import fuse_predictions, simplex_grid
from modeling_avcpnet.media_avcpnet import MediaError
from modeling_avcpnet.mer2023.metrics import mean_squared_error, weighted_f1_score
from modeling_avcpnet.modeling_mer2023 import AttentionGuidedFeatureGathering, uncertainty_weighted_loss

from fresh_process import run_without_package

FEATURES = dict(feature_names=["hubert_l18", "hubert_l19", "hubert_l20", "face"], feature_sizes=[12, 12, 12, 8],
                feature_modalities=["audio", "audio", "audio", "visual"])


def tiny_config(**overrides) -> MER2023Config:
    return MER2023Config(**{**FEATURES, "hidden_size": 16, "hidden_dropout_prob": 0.0, **overrides})


# ----------------------------------------------------------------------------------------------------------- AFG
def test_afg_weights_sum_to_one_change_with_inputs_and_weight_the_sum():
    afg = AttentionGuidedFeatureGathering(num_inputs=3, hidden_size=8)
    states = torch.randn(5, 3, 8)
    fused, weights = afg(states)
    assert weights.shape == (5, 3) and fused.shape == (5, 8)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5))
    assert (weights > 0).all()
    # Eq. 2 by hand: softmax of a linear map of the concatenated states; eq. 3: the weighted sum.
    expected_weights = torch.softmax(states.reshape(5, 24) @ afg.score.weight.T + afg.score.bias, dim=-1)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(fused, sum(expected_weights[:, i : i + 1] * states[:, i] for i in range(3)))
    # Different samples get different weights, and changing one input feature moves all the weights.
    assert (weights[0] - weights[1]).abs().max() > 1e-3
    changed = states.clone()
    changed[:, 1] += 2.0
    _, new_weights = afg(changed)
    assert (new_weights - weights).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"\(batch, 3, hidden\)"):
        afg(torch.randn(5, 2, 8))


@pytest.mark.parametrize(
    "structure, weight_shapes",
    [("parallel", [(4, 4)]), ("audio_visual_pairs", [(4, 2), (4, 2), (4, 2), (4, 3)]),
     ("intra_then_inter", [(4, 3), (4, 2)])],
)
def test_fusion_structures_shapes_and_composition(structure, weight_shapes):
    model = MER2023Model(tiny_config(fusion_structure=structure)).eval()
    features = torch.randn(4, 44)
    out = model(features, output_attentions=True)
    assert out.last_hidden_state.shape == (4, 16) and out.aligned_states.shape == (4, 4, 16)
    assert [tuple(w.shape) for w in out.attentions] == weight_shapes
    for weights in out.attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    aligned, fusion = out.aligned_states, model.fusion
    if structure == "intra_then_inter":  # audio layers first, then that with the visual feature
        audio, _ = fusion.audio_afg(aligned[:, :3])
        expected, _ = fusion.afg(torch.stack([audio, aligned[:, 3]], dim=1))
    elif structure == "audio_visual_pairs":  # each audio feature with the visual one, then the pairs
        pairs = [fusion.pair_afgs[j](aligned[:, [j, 3]])[0] for j in range(3)]
        expected, _ = fusion.afg(torch.stack(pairs, dim=1))
    else:
        expected, _ = fusion.afg(aligned)
    torch.testing.assert_close(out.last_hidden_state, expected)
    assert model(features).attentions is None


def test_config_and_input_errors_are_explicit():
    with pytest.raises(ValueError, match="needs at least one audio and one visual feature"):
        MER2023Config(feature_names=["a", "b"], feature_sizes=[4, 4], feature_modalities=["audio", "audio"],
                      fusion_structure="intra_then_inter")
    with pytest.raises(ValueError, match="fusion_structure: must be one of"):
        tiny_config(fusion_structure="serial")
    with pytest.raises(ValueError, match="feature_sizes"):
        MER2023Config(feature_names=["a", "b"], feature_sizes=[4], feature_modalities=["audio", "visual"])
    model = MER2023ForEmotionValence(tiny_config())
    with pytest.raises(ValueError, match=r"shape \(batch, 44\).*hubert_l18:12.*face:8.*got \(2, 40\)"):
        model(torch.randn(2, 40))


# ---------------------------------------------------------------------------------------------------------- JDEV
def test_jdev_valence_reads_the_emotion_posterior_through_tanh():
    model = MER2023ForEmotionValence(tiny_config()).eval()
    decoder = model.decoder
    features = torch.randn(6, 44)
    out = model(features, output_hidden_states=True)
    fused = out.hidden_states
    logits = fused @ decoder.emotion.weight.T + decoder.emotion.bias  # eq. 5
    torch.testing.assert_close(out.logits, logits)
    valence_hidden = fused @ decoder.valence_from_hidden.weight.T + decoder.valence_from_hidden.bias  # eq. 7
    valence_emotion = torch.tanh(torch.softmax(logits, -1) @ decoder.valence_from_emotion.weight.T
                                 + decoder.valence_from_emotion.bias)  # eq. 8
    combined = torch.cat([valence_hidden, valence_emotion], -1) @ decoder.valence_combine.weight.T  # eq. 6
    torch.testing.assert_close(out.valence, (combined + decoder.valence_combine.bias).squeeze(-1))

    # With the direct path switched off, the valence is a function of the emotion posterior alone.
    with torch.no_grad():
        decoder.valence_combine.weight.copy_(torch.tensor([[0.0, 2.0]]))
        decoder.valence_combine.bias.zero_()
        decoder.valence_from_emotion.weight.copy_(torch.tensor([[0.0, -3.0, 3.0, -3.0, -1.0, 1.0]]))
        decoder.valence_from_emotion.bias.zero_()
        decoder.emotion.bias.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0, 0.0, 0.0]))  # posterior ~ one-hot "happy"
    valence = model(features).valence
    torch.testing.assert_close(valence, torch.full((6,), 2.0 * math.tanh(3.0)), atol=1e-4, rtol=0)

    # The valence loss trains the emotion head through the posterior in JDEV, and not in the baseline decoder.
    for decoder_type, reaches_emotion_head in (("jdev", True), ("baseline", False)):
        model = MER2023ForEmotionValence(tiny_config(decoder_type=decoder_type))
        model(features, valence_labels=torch.randn(6)).loss.backward()
        grad = model.decoder.emotion.weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == reaches_emotion_head, decoder_type


# ---------------------------------------------------------------------------------------------------------- loss
def test_uncertainty_loss_matches_eq9_by_hand_and_trains_its_weights():
    value = uncertainty_weighted_loss(torch.tensor(1.2), torch.tensor(0.8), torch.tensor(0.5), torch.tensor(2.0))
    # 1.2 / 0.5^2 + 0.8 / (2 * 2^2) + log(1.5) + log(3)
    assert value.item() == pytest.approx(4.8 + 0.1 + math.log(1.5) + math.log(3.0), abs=1e-6)

    model = MER2023ForEmotionValence(tiny_config())
    assert model.config.loss_type == "uncertainty"
    with torch.no_grad():
        model.uncertainty.d_emotion.fill_(0.5)
        model.uncertainty.d_valence.fill_(2.0)
    features, labels, valence = torch.randn(8, 44), torch.randint(0, 6, (8,)), torch.randn(8)
    out = model(features, labels=labels, valence_labels=valence)
    probs = torch.softmax(out.logits.detach().double(), -1).numpy()
    ce = -np.mean(np.log(probs[np.arange(8), labels.numpy()]))
    mse = np.mean((out.valence.detach().double().numpy() - valence.double().numpy()) ** 2)
    assert out.emotion_loss.item() == pytest.approx(ce, rel=1e-5)
    assert out.valence_loss.item() == pytest.approx(mse, rel=1e-5)
    assert out.loss.item() == pytest.approx(ce / 0.25 + mse / 8 + math.log(1.5) + math.log(3.0), rel=1e-5)
    out.loss.backward()
    assert model.uncertainty.d_emotion.grad.item() == pytest.approx(-2 * ce / 0.5**3 + 1 / 1.5, rel=1e-4)
    # A missing target drops its terms.
    only_emotion = model(features, labels=labels).loss
    assert only_emotion.item() == pytest.approx(ce / 0.25 + math.log(1.5), rel=1e-5)

    baseline = MER2023ForEmotionValence(tiny_config(decoder_type="baseline"))
    assert baseline.config.loss_type == "sum" and baseline.uncertainty is None
    out = baseline(features, labels=labels, valence_labels=valence)
    expected = F.cross_entropy(out.logits, labels) + F.mse_loss(out.valence, valence)
    torch.testing.assert_close(out.loss, expected)


# -------------------------------------------------------------------------------------------------------- metric
@pytest.mark.parametrize("seed", range(5))
def test_metric_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, 50)
    predictions = np.where(rng.random(50) < 0.5, labels, rng.integers(0, 5, 50))  # class 5 often never predicted
    predictions[:3] = 5 if seed % 2 else predictions[:3]
    labels[labels == 4] = 3 if seed == 3 else 4  # a predicted class with no support
    valence, valence_pred = rng.normal(0, 2, 50), rng.normal(0, 2, 50)
    expected_f1 = f1_score(labels, predictions, average="weighted", zero_division=0)
    assert weighted_f1_score(labels, predictions) == pytest.approx(expected_f1, abs=1e-12)
    assert mean_squared_error(valence, valence_pred) == pytest.approx(sk_mse(valence, valence_pred), abs=1e-12)
    logits = np.eye(6)[predictions] + rng.normal(0, 0.01, (50, 6))
    metrics = mer2023_metrics(labels, logits, valence, valence_pred)
    assert metrics["combined"] == pytest.approx(expected_f1 - 0.25 * sk_mse(valence, valence_pred), abs=1e-12)
    trainer_metrics = compute_mer2023_metrics(EvalPrediction(predictions=(logits, valence_pred),
                                                             label_ids=(labels, valence)))
    assert trainer_metrics == pytest.approx(metrics)


# ----------------------------------------------------------------------------------------------- decision fusion
def test_decision_fusion_weights_sum_to_one_and_pick_the_better_system():
    grid = simplex_grid(3, 0.05)
    assert grid.shape == (231, 3) and np.allclose(grid.sum(1), 1.0) and (grid >= 0).all()
    with pytest.raises(ValueError, match="step"):
        simplex_grid(3, 0.3)

    rng = np.random.default_rng(0)
    n = 300
    labels = rng.integers(0, 6, n)
    valence = rng.normal(0, 2, n)

    def system(accuracy, valence_noise):
        predicted = np.where(rng.random(n) < accuracy, labels, rng.integers(0, 6, n))
        posterior = 0.6 * np.eye(6)[predicted] + 0.4 * rng.dirichlet(np.ones(6), n)
        return posterior, valence + rng.normal(0, valence_noise, n)

    good, poor, useless = system(0.9, 0.3), system(0.5, 1.5), system(0.0, 4.0)
    posteriors, valences = [p for p, _ in (poor, good, useless)], [v for _, v in (poor, good, useless)]
    fusion = MER2023DecisionFusion().fit(posteriors, valences, labels, valence)
    assert fusion.weights.sum() == pytest.approx(1.0) and (fusion.weights >= 0).all()
    assert fusion.weights.argmax() == 1 and fusion.weights[1] >= 0.5 and fusion.weights[2] <= 0.1
    singles = [mer2023_metrics(labels, p, valence, v)["combined"] for p, v in zip(posteriors, valences)]
    assert fusion.validation_metrics["combined"] >= max(singles)
    fused_posterior, fused_valence = fusion(posteriors, valences)
    manual = sum(w * p for w, p in zip(fusion.weights, posteriors))
    np.testing.assert_allclose(fused_posterior, manual)
    np.testing.assert_allclose(fused_valence, sum(w * v for w, v in zip(fusion.weights, valences)))
    np.testing.assert_allclose(fused_posterior.sum(1), 1.0)
    assert MER2023DecisionFusion.from_json(fusion.to_json()).weights.tolist() == fusion.weights.tolist()

    # Two identical systems: any split scores the same, and the tie goes to equal weights.
    tied = MER2023DecisionFusion().fit([good[0], good[0]], [good[1], good[1]], labels, valence)
    np.testing.assert_allclose(tied.weights, [0.5, 0.5])
    with pytest.raises(ValueError, match="summing to 1"):
        fuse_predictions(posteriors, valences, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="softmax"):
        fuse_predictions([np.log(good[0])], [good[1]], [1.0])


# --------------------------------------------------------------------------------------------- Hub round trip
FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification
    data = torch.load("expected.pt")
    config = AutoConfig.from_pretrained("checkpoint", trust_remote_code=True)
    assert config.model_type == "mer2023" and config.fusion_structure == "audio_visual_pairs", config
    model = AutoModelForVideoClassification.from_pretrained("checkpoint", trust_remote_code=True).eval()
    base = AutoModel.from_pretrained("checkpoint", trust_remote_code=True).eval()
    assert type(model).__name__ == "MER2023ForEmotionValence", type(model)
    assert type(base).__name__ == "MER2023Model", type(base)
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    with torch.no_grad():
        out = model(data["features"], labels=data["labels"], valence_labels=data["valence_labels"])
        fused = base(data["features"]).last_hidden_state
    assert model.uncertainty.d_valence.item() == data["d_valence"]
    # Same weights and inputs; the two processes may pick different CPU kernels, so allow float32 rounding.
    for field in ("logits", "valence", "loss"):
        torch.testing.assert_close(out[field], data[field], rtol=1e-5, atol=1e-9, msg=field)
    assert torch.equal(fused, data["fused"])
    assert "modeling_avcpnet" not in sys.modules
    print("FRESH-PROCESS-OK")
    """
)


@pytest.mark.smoke
def test_hub_round_trip_in_a_fresh_process_without_the_package(tmp_path):
    assert isinstance(AutoConfig.for_model("mer2023", **FEATURES), MER2023Config)
    model = MER2023ForEmotionValence(tiny_config(fusion_structure="audio_visual_pairs")).eval()
    with torch.no_grad():
        model.uncertainty.d_valence.fill_(1.75)  # a trained value, not the initial one
    workdir = tmp_path / "elsewhere"
    model.save_pretrained(workdir / "checkpoint")
    assert {"config.json", "configuration_mer2023.py", "labels.py", "model.safetensors", "modeling_mer2023.py",
            "pipeline_mer2023.py", "README.md"} <= set(os.listdir(workdir / "checkpoint"))
    assert "configuration_avcpnet.py" not in os.listdir(workdir / "checkpoint")  # nothing of AV-CPNet's config
    features, labels, valence = torch.randn(3, 44), torch.tensor([0, 2, 5]), torch.randn(3)
    with torch.no_grad():
        out = model(features, labels=labels, valence_labels=valence)
        fused = model.mer2023(features).last_hidden_state
    torch.save({"features": features, "labels": labels, "valence_labels": valence, "fused": fused, "d_valence": 1.75,
                **{f: out[f] for f in ("logits", "valence", "loss")}}, workdir / "expected.pt")
    result = run_without_package(FRESH_PROCESS_SCRIPT, cwd=workdir, env={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert result.returncode == 0 and "FRESH-PROCESS-OK" in result.stdout, result.stdout + result.stderr[-3000:]
    # In this process the registered classes load it too.
    assert type(AutoModelForVideoClassification.from_pretrained(workdir / "checkpoint")) is MER2023ForEmotionValence
    assert type(AutoModel.from_config(model.config)) is MER2023Model


# -------------------------------------------------------------------------------- media, builder, features
@pytest.fixture(scope="module")
def mer_tree(tmp_path_factory):
    """A tiny MER 2023 release: train-label.csv, clips beside it and in a sub-folder, one listed clip missing."""
    from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip

    root = tmp_path_factory.mktemp("mer2023")
    (root / "video-labeled").mkdir()
    rows = [("sample_00000001", "happy", 2.5), ("sample_00000002", "Sad", -3.0), ("sample_00000003", "worried", -1.25),
            ("sample_00000004", "neutral", 0.0)]
    for i, (name, _, _) in enumerate(rows):
        frames = np.stack(list(moving_square_frames(6, 32, 32, color=(60 * i, 255 - 60 * i, 128))))
        folder = root if i % 2 == 0 else root / "video-labeled"
        write_clip(folder / f"{name}.mp4", frames=frames, fps=6, audio=tone(200.0 * (i + 1), 0.6, 16000),
                   sample_rate=16000)
    lines = [f"{name},{label},{valence}" for name, label, valence in rows] + ["sample_00000009,angry,-2.0"]
    (root / "train-label.csv").write_text("name,discrete,valence\n" + "\n".join(lines) + "\n")
    return root


def test_mer2023_builder_reads_the_challenge_layout(mer_tree, tmp_path):
    from datasets_emotions import DataDirError, LabelError, load_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset("mer2023", data_dir=str(mer_tree), cache_dir=str(tmp_path / "cache"), split="train")
    messages = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(messages) == 1 and "1 missing clip" in messages[0] and "sample_00000009" in messages[0]
    assert dataset.features["label"].names == ["neutral", "angry", "happy", "sad", "worried", "surprise"]
    rows = sorted(dataset, key=lambda row: row["video_id"])
    assert [r["video_id"] for r in rows] == [f"sample_0000000{i}" for i in range(1, 5)]
    assert [dataset.features["label"].int2str(r["label"]) for r in rows] == ["happy", "sad", "worried", "neutral"]
    assert [dataset.features["polarity"].int2str(r["polarity"]) for r in rows] == [
        "positive", "negative", "negative", "neutral"]
    assert [r["valence"] for r in rows] == [2.5, -3.0, -1.25, 0.0]
    assert rows[1]["video"] == str(mer_tree / "video-labeled" / "sample_00000002.mp4") and rows[0]["audio"] == ""

    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(mer_tree / "sample_00000001.mp4", bad)
    (bad / "train-label.csv").write_text("name,discrete,valence\nsample_00000001,bored,1.0\n")
    with pytest.raises(LabelError, match=r"train-label.csv:2: label 'bored'"):
        load_dataset("mer2023", data_dir=str(bad), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataDirError, match="no train-label.csv(.|\n)*name,discrete,valence"):
        load_dataset("mer2023", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))


def tiny_backbones(tmp_path, vision="vit"):
    """Randomly initialised tiny HuBERT and ViT/ResNet saved to folders, as `from_pretrained` would find them."""
    hubert = HubertConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                          conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
                          num_conv_pos_embedding_groups=2)
    HubertModel(hubert).save_pretrained(tmp_path / "hubert")
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path / "hubert")
    if vision == "vit":
        ViTModel(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32)).save_pretrained(tmp_path / "vit")
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "vit")
    else:
        ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], layer_type="basic")
                    ).save_pretrained(tmp_path / "resnet")
    return tmp_path / "hubert", tmp_path / vision


@pytest.mark.parametrize("vision", ["vit", "resnet"])
def test_feature_extractor_matches_the_backbones_hidden_states(tmp_path, vision):
    audio_path, vision_path = tiny_backbones(tmp_path, vision)
    extractor = MER2023DeepFeatureExtractor.from_pretrained(audio_path, vision_path, audio_layers=(1, 3))
    rng = np.random.default_rng(0)
    waveforms = [rng.standard_normal(4000).astype(np.float32), rng.standard_normal(3000).astype(np.float32),
                 rng.standard_normal(4000).astype(np.float32)]
    clips = [rng.integers(0, 256, (3, 40, 48, 3), dtype=np.uint8) for _ in range(2)] + [
        rng.integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)]
    out = extractor({"audio": waveforms, "video": clips})
    hidden_name = f"{vision}"
    assert extractor.feature_names == ["hubert_layer1", "hubert_layer3", hidden_name]
    sizes = [16, 16, 16 if vision == "vit" else 12]
    assert extractor.config_kwargs() == {"feature_names": extractor.feature_names, "feature_sizes": sizes,
                                         "feature_modalities": ["audio", "audio", "visual"]}
    assert out["input_features"].shape == (3, sum(sizes))
    np.testing.assert_array_equal(out["input_features"],
                                  np.concatenate([out[n] for n in extractor.feature_names], axis=1))
    # Reference, one clip at a time: the layer's hidden states averaged over time ...
    with torch.no_grad():
        for i, waveform in enumerate(waveforms):
            values = extractor.audio_feature_extractor(waveform, sampling_rate=16000, return_tensors="pt").input_values
            hidden = extractor.audio_model(values, output_hidden_states=True).hidden_states
            np.testing.assert_allclose(out["hubert_layer1"][i], hidden[1][0].mean(0).numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(out["hubert_layer3"][i], hidden[3][0].mean(0).numpy(), rtol=1e-4, atol=1e-5)
        # ... and the frame-level pooled features averaged over the frames.
        for i, clip in enumerate(clips):
            per_frame = []
            for frame in clip:
                pixels = extractor._pixel_values(frame[None])
                per_frame.append(extractor.vision_model(pixel_values=pixels).pooler_output.flatten(1)[0])
            np.testing.assert_allclose(out[hidden_name][i], torch.stack(per_frame).mean(0).numpy(),
                                       rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"audio_layers must be layer numbers in 0..3"):
        MER2023DeepFeatureExtractor.from_pretrained(audio_path, audio_layers=(18, 19, 20))


def test_features_are_computed_once_with_datasets_map_and_read_from_cache(mer_tree, tmp_path):
    from datasets_emotions import load_dataset

    media = tmp_path / "media"
    shutil.copytree(mer_tree, media)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset("mer2023", data_dir=str(media), cache_dir=str(tmp_path / "cache"), split="train")
    audio_path, vision_path = tiny_backbones(tmp_path, "vit")
    extractor = MER2023DeepFeatureExtractor.from_pretrained(audio_path, vision_path, audio_layers=(1, 2, 3),
                                                            num_frames=4)
    first = extractor.map_dataset(dataset, batch_size=2)
    assert first.column_names[-5:] == ["hubert_layer1", "hubert_layer2", "hubert_layer3", "vit", "input_features"]
    assert np.asarray(first["input_features"]).shape == (4, 64)
    # The second run must read the cache: with the clips gone, recomputing would fail.
    for clip in list(media.glob("*.mp4")) + list(media.glob("video-labeled/*.mp4")):
        clip.unlink()
    again = extractor.map_dataset(dataset, batch_size=2)
    np.testing.assert_array_equal(np.asarray(again["input_features"]), np.asarray(first["input_features"]))
    assert again.cache_files == first.cache_files
    # Other weights (same config) give another fingerprint, hence a recomputation, which now fails on the clips.
    torch.manual_seed(1)
    other = MER2023DeepFeatureExtractor(HubertModel(extractor.audio_model.config), audio_layers=(1, 2, 3),
                                        vision_model=extractor.vision_model, num_frames=4)
    assert other.fingerprint != extractor.fingerprint
    with pytest.raises(MediaError, match=r"sample_0000000\d\.mp4: file not found"):
        other.map_dataset(dataset, batch_size=2)


# ------------------------------------------------------------------------------------------ training run
VALENCE_BY_CLASS = np.array([0.0, -2.5, 3.0, -3.0, -1.5, 1.5])  # neutral angry happy sad worried surprise


def emotion_valence_features(n: int, seed: int):
    """Deep-feature-like vectors whose emotion sits on a latent line (classes in id order, linearly separable), and
    whose valence is set by the emotion (eq. 4 of the paper) but is not monotone along that line: the emotion
    posterior tells the valence, a linear read-out of the features does not."""
    import datasets

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, n)
    latent = labels + rng.normal(0, 0.2, n)
    directions = np.random.default_rng(1234).normal(size=(4, 12))
    blocks = []
    for j, size in enumerate(FEATURES["feature_sizes"]):
        direction = directions[j, :size] / np.linalg.norm(directions[j, :size])
        blocks.append(np.outer(latent, direction) + rng.normal(0, 0.2, (n, size)))
    valence = VALENCE_BY_CLASS[labels] + rng.normal(0, 0.3, n)
    return datasets.Dataset.from_dict({"input_features": np.concatenate(blocks, 1).astype(np.float32),
                                       "labels": labels, "valence_labels": valence.astype(np.float32)})


def train_and_evaluate(decoder_type: str, seed: int, train, test, output_dir) -> dict:
    set_seed(seed)
    model = MER2023ForEmotionValence(tiny_config(decoder_type=decoder_type, initializer_range=0.1))
    args = TrainingArguments(str(output_dir), use_cpu=True, report_to=[], num_train_epochs=8, learning_rate=3e-2,
                             per_device_train_batch_size=32, per_device_eval_batch_size=256, seed=seed,
                             save_strategy="no", logging_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test,
                      compute_metrics=compute_mer2023_metrics)
    trainer.train()
    return trainer.evaluate()


def test_short_trainer_run_jdev_beats_the_baseline_decoder(tmp_path):
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only loses time to thread synchronisation on a busy machine
    try:
        differences = run_seeds(tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert np.mean(differences) > 0.2, differences


def run_seeds(tmp_path) -> list[float]:
    differences = []
    for seed in range(3):
        train, test = emotion_valence_features(600, seed), emotion_valence_features(400, seed + 100)
        jdev = train_and_evaluate("jdev", seed, train, test, tmp_path / f"jdev{seed}")
        baseline = train_and_evaluate("baseline", seed, train, test, tmp_path / f"baseline{seed}")
        assert jdev["eval_weighted_f1"] > 0.8, jdev  # it learned the emotions
        differences.append(jdev["eval_combined"] - baseline["eval_combined"])
        assert differences[-1] > 0.1, (seed, jdev, baseline)
    return differences


# ------------------------------------------------------------------------------------------ train_hf.py
def test_train_hf_trains_and_evaluates_a_mer2023_model(mer_tree, tmp_path):
    """`train_hf.py --model_type mer2023`: features from tiny backbones, the model's loss through EPCETrainer's
    compute_loss (its emotion/valence terms logged), the challenge metric in the results and a loadable folder."""
    import json

    import train_hf
    from modeling_avcpnet.training import format_results_table

    audio_path, vision_path = tiny_backbones(tmp_path, "vit")
    output_dir = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tree's one missing clip
        result = train_hf.main([
            "--model_type", "mer2023", "--dataset_name", "mer2023", "--data_dir", str(mer_tree),
            "--dataset_cache_dir", str(tmp_path / "cache"), "--audio_backbone", str(audio_path),
            "--vision_backbone", str(vision_path), "--audio_layers", "1,3", "--num_frames", "4",
            "--fusion_structure", "intra_then_inter", "--config_overrides", '{"hidden_size": 8}',
            "--eval_split", "train", "--do_train", "--do_eval", "--max_steps", "3", "--per_device_train_batch_size",
            "2", "--logging_steps", "1", "--learning_rate", "1e-2", "--save_strategy", "no", "--use_cpu",
            "--report_to", "none", "--disable_tqdm", "true", "--seed", "0", "--output_dir", str(output_dir),
        ])
    assert result["global_step"] == 3
    logged = [entry for entry in result["trainer"].state.log_history if "loss" in entry]
    assert len(logged) == 3 and all({"loss_emotion", "loss_valence"} <= set(entry) for entry in logged)

    metrics = json.loads((output_dir / "all_results.json").read_text())
    assert metrics["eval_combined"] == pytest.approx(metrics["eval_weighted_f1"] - 0.25 * metrics["eval_valence_mse"])
    report = json.loads((output_dir / "eval_mer2023_metrics.json").read_text())
    assert report["num_samples"] == 4 and report["combined"] == pytest.approx(metrics["eval_combined"])
    assert np.array(json.loads((output_dir / "eval_confusion_matrix.json").read_text())["matrix"]).sum() == 4
    assert "WF1 - 0.25 MSE" in format_results_table(result["results"], "mer2023")

    # The saved folder is the trained system; its predictions reproduce the reported metric (sklearn's definitions).
    model = AutoModelForVideoClassification.from_pretrained(output_dir)
    assert type(model) is MER2023ForEmotionValence and type(AutoModel.from_pretrained(output_dir)) is MER2023Model
    assert model.config.feature_names == ["hubert_layer1", "hubert_layer3", "vit"]
    assert model.config.fusion_structure == "intra_then_inter" and model.config.decoder_type == "jdev"
    features = result["trainer"].eval_dataset.with_format("torch")[:]
    with torch.no_grad():
        out = model.eval()(features["input_features"])
    labels, valence = features["labels"].numpy(), features["valence_labels"].numpy()
    assert metrics["eval_weighted_f1"] == pytest.approx(
        f1_score(labels, out.logits.argmax(-1).numpy(), average="weighted", zero_division=0), abs=1e-6)
    assert metrics["eval_valence_mse"] == pytest.approx(sk_mse(valence, out.valence.numpy()), rel=1e-4)

    with pytest.raises(ValueError, match=r"holds a 'mer2023' model: pass --model_type mer2023"):
        train_hf.main(["--model_name_or_path", str(output_dir), "--dataset_name", "mer2023", "--data_dir",
                       str(mer_tree), "--dataset_cache_dir", str(tmp_path / "cache"), "--eval_split", "train",
                       "--do_eval", "--use_cpu", "--report_to", "none", "--output_dir", str(tmp_path / "wrong")])
