"""The MFCC of `AVCPNetFeatureExtractor` against librosa itself (the reference pipeline's `librosa.feature.mfcc`),
on speech-like and music-like signals, and the `mfcc_variant` field of saved configs."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile
import torch
import torchaudio

from modeling_avcpnet.feature_extraction_avcpnet import AVCPNetFeatureExtractor

SR = 44100
REFERENCE_KWARGS = dict(sr=SR, n_mfcc=32, n_fft=2048, hop_length=512, n_mels=128)  # the reference's call


def speech_like(seconds: float = 2.5, seed: int = 0) -> np.ndarray:
    """Voiced syllables: a glottal pulse train with a gliding pitch through three formant resonators, separated by
    pauses (near-silence, where power_to_db's floor and top_db clipping act) and noisy fricative bursts."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    pitch = 120 + 40 * np.sin(2 * np.pi * 1.3 * t)
    pulses = (np.diff(np.floor(np.cumsum(pitch) / SR), prepend=0) > 0).astype(np.float64)
    voiced = np.zeros(n)
    for formant, bandwidth in ((700, 110), (1220, 120), (2600, 160)):  # /a/-like formants
        radius = np.exp(-np.pi * bandwidth / SR)
        a1, a2 = -2 * radius * np.cos(2 * np.pi * formant / SR), radius**2
        y = scipy.signal.lfilter([1.0], [1.0, a1, a2], pulses)  # two-pole resonator
        voiced += y / np.abs(y).max()
    syllables = (np.sin(2 * np.pi * 3.0 * t) > -0.2).astype(np.float64)  # on/off envelope: pauses
    fricatives = rng.standard_normal(n) * ((np.sin(2 * np.pi * 3.0 * t + 2.0) > 0.9) * 0.3)
    return (0.5 * voiced * syllables + fricatives + 1e-4 * rng.standard_normal(n)).astype(np.float32)


def music_like(seconds: float = 2.5, seed: int = 1) -> np.ndarray:
    """Chords of harmonic notes with percussive decays, a drum-like noise hit per beat and a fade-out."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    signal = np.zeros(n)
    for start, chord in ((0.0, (261.6, 329.6, 392.0)), (0.8, (220.0, 261.6, 329.6)), (1.6, (196.0, 246.9, 392.0))):
        local = np.clip(t - start, 0, None)
        envelope = (t >= start) * np.exp(-2.5 * local)
        for root in chord:
            for harmonic in range(1, 6):
                signal += envelope * np.sin(2 * np.pi * root * harmonic * t) / harmonic**1.5
    beats = np.zeros(n)
    beats[:: SR // 4] = 1.0
    drum = np.convolve(beats, rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300), mode="same")
    return (0.2 * (signal + drum) * np.linspace(1, 0.05, n)).astype(np.float32)


def assert_matches_reference(ours: torch.Tensor, reference: np.ndarray):
    """Within 1e-3 relative to the coefficient range (element-wise relative error is meaningless near 0)."""
    assert tuple(ours.shape) == reference.shape
    error = np.abs(ours.numpy() - reference).max() / np.abs(reference).max()
    assert error <= 1e-3, error


@pytest.mark.parametrize("make_signal", [speech_like, music_like])
def test_mfcc_matches_librosa(make_signal):
    waveform = make_signal()
    extractor = AVCPNetFeatureExtractor()
    assert extractor.mfcc_variant == "librosa"
    reference = librosa.feature.mfcc(y=waveform, **REFERENCE_KWARGS)
    assert_matches_reference(extractor.mfcc(waveform).T, reference)
    # The old torchaudio defaults are far from it (HTK mel scale, unnormalised filters): the reason for the change.
    old = AVCPNetFeatureExtractor(mfcc_variant="torchaudio").mfcc(waveform).T.numpy()
    assert np.abs(old - reference).max() > 10


def test_reference_load_stereo_and_other_rates(tmp_path):
    """librosa.load(path, sr=44100, mono=True) then librosa's MFCC, against the extractor given the file's samples:
    mono is the channel mean (exact); another rate is resampled (torchaudio sinc vs librosa's soxr: close)."""
    left, right = speech_like(1.5), music_like(1.5)
    stereo = np.stack([left, right])
    extractor = AVCPNetFeatureExtractor()
    soundfile.write(tmp_path / "stereo44.wav", stereo.T, SR, subtype="FLOAT")
    loaded, _ = librosa.load(tmp_path / "stereo44.wav", sr=SR, mono=True)
    assert_matches_reference(extractor.mfcc(stereo).T, librosa.feature.mfcc(y=loaded, **REFERENCE_KWARGS))

    soundfile.write(tmp_path / "stereo48.wav", stereo.T, 48000, subtype="FLOAT")
    loaded, _ = librosa.load(tmp_path / "stereo48.wav", sr=SR, mono=True)
    reference = librosa.feature.mfcc(y=loaded, **REFERENCE_KWARGS)
    ours = extractor.mfcc(stereo, sampling_rate=48000).T.numpy()
    frames = min(ours.shape[1], reference.shape[1])
    error = np.abs(ours[:, :frames] - reference[:, :frames]).max() / np.abs(reference).max()
    assert error < 0.05, error


def test_saved_configs_state_their_variant_and_old_ones_keep_torchaudio(tmp_path):
    waveform = music_like(1.0)
    AVCPNetFeatureExtractor().save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "preprocessor_config.json").read_text())
    assert saved["mfcc_variant"] == "librosa"
    assert AVCPNetFeatureExtractor.from_pretrained(tmp_path / "new").mfcc_variant == "librosa"

    del saved["mfcc_variant"]  # a config saved before the field existed
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "preprocessor_config.json").write_text(json.dumps(saved))
    old = AVCPNetFeatureExtractor.from_pretrained(tmp_path / "old")
    assert old.mfcc_variant == "torchaudio"
    assert AVCPNetFeatureExtractor.from_json_file(tmp_path / "old" / "preprocessor_config.json").mfcc_variant == \
        "torchaudio"
    expected = torchaudio.transforms.MFCC(SR, 32, melkwargs=dict(n_fft=2048, hop_length=512, n_mels=128))
    torch.testing.assert_close(old.mfcc(waveform), expected(torch.from_numpy(waveform)).T)
    with pytest.raises(ValueError, match="mfcc_variant"):
        AVCPNetFeatureExtractor(mfcc_variant="htk")
