"""EP-CE loss (paper eq. 9) and the multi-task loss (eq. 10): numbers against references computed another way."""

import math

import pytest
import torch
import torch.nn.functional as F

from modeling_avcpnet import AVCPNetConfig
from modeling_avcpnet.loss_avcpnet import EPCELoss, compute_multitask_loss, ep_ce_loss

# eMotions: excitation, fear, neutral, relaxation, sadness, tension -> positive, negative, neutral, positive, ...
EMOTIONS_POLARITY_IDS = [0, 2, 1, 0, 2, 2]


def test_config_polarity_ids_are_the_emotions_map():
    assert AVCPNetConfig().polarity_ids == EMOTIONS_POLARITY_IDS


def test_zero_gammas_equal_cross_entropy():
    logits = torch.randn(7, 6)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, -100])
    gammas = {"positive": 0.0, "neutral": 0.0, "negative": 0.0}
    for reduction in ("mean", "sum", "none"):
        expected = F.cross_entropy(logits, labels, reduction=reduction)
        if reduction == "none":
            expected = expected.masked_fill(labels == -100, 0.0)
        torch.testing.assert_close(ep_ce_loss(logits, labels, EMOTIONS_POLARITY_IDS, gammas, reduction), expected)


def _cross_entropy_by_hand(row, label):
    return math.log(sum(math.exp(value) for value in row)) - row[label]


def test_hand_computed_polarity_mismatch():
    # Distinct gammas per polarity show that the penalty follows the polarity of the TRUE class.
    gammas = {"positive": 0.5, "neutral": 0.3, "negative": 0.7}
    rows = [
        [1.0, 2.0, 0.0, 0.0, 0.0, 0.0],  # excitation (positive) predicted fear (negative): mismatch, 1 + 0.5
        [0.0, 1.0, 0.0, 0.0, 3.0, 0.0],  # fear predicted sadness: both negative, no penalty
        [0.0, 0.0, 2.0, 1.0, 0.0, 0.0],  # neutral predicted neutral, no penalty
        [0.5, 0.0, 0.0, 2.5, 1.0, 0.0],  # sadness (negative) predicted relaxation (positive): 1 + 0.7
        [0.0, 0.0, 4.0, 0.0, 0.0, 1.0],  # tension (negative) predicted neutral: 1 + 0.7
    ]
    labels = [0, 1, 2, 4, 5]
    weights = [1.5, 1.0, 1.0, 1.7, 1.7]
    per_sample = [w * _cross_entropy_by_hand(r, y) for w, r, y in zip(weights, rows, labels)]
    loss = ep_ce_loss(torch.tensor(rows), torch.tensor(labels), EMOTIONS_POLARITY_IDS, gammas, reduction="none")
    torch.testing.assert_close(loss, torch.tensor(per_sample))
    mean = ep_ce_loss(torch.tensor(rows), torch.tensor(labels), EMOTIONS_POLARITY_IDS, gammas)
    assert mean.item() == pytest.approx(sum(per_sample) / len(per_sample), rel=1e-6)
    # The same through the module built from a config (gammas also accepted as a sequence in POLARITIES order).
    config = AVCPNetConfig.tiny(ep_ce_gammas=gammas)
    module_loss = EPCELoss.from_config(config)(torch.tensor(rows), torch.tensor(labels))
    torch.testing.assert_close(module_loss, mean)
    torch.testing.assert_close(EPCELoss(EMOTIONS_POLARITY_IDS, [0.5, 0.3, 0.7])(torch.tensor(rows), torch.tensor(labels)),
                               mean)


def test_gradient_is_the_weighted_cross_entropy_gradient():
    logits = torch.tensor([[1.0, 2.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0])
    ep_ce_loss(logits, labels, EMOTIONS_POLARITY_IDS, [0.5, 0.5, 0.5]).backward()
    expected = 1.5 * (logits.detach().softmax(-1) - F.one_hot(labels, 6))
    torch.testing.assert_close(logits.grad, expected)


def test_bad_arguments_name_the_problem():
    logits, labels = torch.randn(2, 6), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="polarity ids for 6 classes"):
        ep_ce_loss(logits, labels, [0, 1, 2], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="no value for polarities"):
        ep_ce_loss(logits, labels, EMOTIONS_POLARITY_IDS, {"positive": 0.5})
    with pytest.raises(ValueError, match="labels must be"):
        ep_ce_loss(logits, torch.tensor([0, 1, 2]), EMOTIONS_POLARITY_IDS, [0.5, 0.5, 0.5])


def _outputs(batch=5):
    return {"logits": torch.randn(batch, 6, requires_grad=True), "visual_logits": torch.randn(batch, 6),
            "audio_logits": torch.randn(batch, 6)}


def test_total_is_the_weighted_sum_of_the_branch_losses():
    config = AVCPNetConfig.tiny(branch_loss_weights={"fusion": 1.0, "visual": 0.5, "audio": 2.0})
    outputs, labels = _outputs(), torch.tensor([0, 1, 2, 3, 4])
    total, branches = compute_multitask_loss(outputs, labels, config)
    assert set(branches) == {"fusion", "visual", "audio"}
    for branch, key in (("fusion", "logits"), ("visual", "visual_logits"), ("audio", "audio_logits")):
        expected = ep_ce_loss(outputs[key], labels, config.polarity_ids, config.ep_ce_gammas)
        torch.testing.assert_close(branches[branch], expected)
    torch.testing.assert_close(total, branches["fusion"] + 0.5 * branches["visual"] + 2.0 * branches["audio"])
    # Paper default weights (1, 1, 1): the plain sum of eq. 10.
    total, branches = compute_multitask_loss(outputs, labels, AVCPNetConfig.tiny())
    torch.testing.assert_close(total, sum(branches.values()))


def test_audio_mask_leaves_clips_without_audio_out_of_the_fusion_and_audio_losses():
    config = AVCPNetConfig.tiny()
    outputs, labels = _outputs(), torch.tensor([0, 1, 2, 3, 4])
    audio_mask = torch.tensor([True, False, True, False, True])
    total, branches = compute_multitask_loss(outputs, labels, config, audio_mask=audio_mask)
    subset = {key: value[audio_mask] for key, value in outputs.items()}
    _, expected = compute_multitask_loss(subset, labels[audio_mask], config)
    torch.testing.assert_close(branches["fusion"], expected["fusion"])
    torch.testing.assert_close(branches["audio"], expected["audio"])
    _, full = compute_multitask_loss(outputs, labels, config)
    torch.testing.assert_close(branches["visual"], full["visual"])  # every clip counts for vision

    # No clip has audio: the fusion and audio losses are an exact 0, nothing is NaN and backward works.
    total, branches = compute_multitask_loss(outputs, labels, config, audio_mask=torch.zeros(5, dtype=torch.bool))
    assert branches["fusion"].item() == 0.0 and branches["audio"].item() == 0.0
    torch.testing.assert_close(total, branches["visual"])
    total.backward()
    assert torch.isfinite(outputs["logits"].grad).all() and outputs["logits"].grad.abs().sum() == 0


def test_single_modality_has_one_unweighted_branch():
    labels = torch.tensor([0, 1, 2])
    logits = torch.randn(3, 6)
    visual = AVCPNetConfig.tiny(modalities="visual", branch_loss_weights={"fusion": 1, "visual": 3, "audio": 1})
    total, branches = compute_multitask_loss({"logits": logits, "visual_logits": logits}, labels, visual)
    assert list(branches) == ["visual"]
    torch.testing.assert_close(total, ep_ce_loss(logits, labels, visual.polarity_ids, visual.ep_ce_gammas))
    audio = AVCPNetConfig.tiny(modalities="audio")
    mask = torch.tensor([True, True, False])
    total, branches = compute_multitask_loss({"logits": logits, "audio_logits": logits}, labels, audio, mask)
    assert list(branches) == ["audio"]
    torch.testing.assert_close(total, ep_ce_loss(logits[:2], labels[:2], audio.polarity_ids, audio.ep_ce_gammas))


def test_multitask_loss_refuses_what_it_cannot_compute():
    outputs = _outputs(2)
    with pytest.raises(ValueError, match="integer class ids"):
        compute_multitask_loss(outputs, torch.tensor([0.0, 1.0]), AVCPNetConfig.tiny())
    with pytest.raises(ValueError, match="problem_type"):
        compute_multitask_loss(outputs, torch.tensor([0, 1]), AVCPNetConfig.tiny(problem_type="regression"))
