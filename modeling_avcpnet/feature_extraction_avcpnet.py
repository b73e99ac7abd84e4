"""Audio feature extractor for AV-CPNet: MFCC of the whole soundtrack, centre-cropped or tiled, split in segments.

Follows the public code (VAANet's audio branch): mono audio at 44.1 kHz, 32 MFCC coefficients with librosa's
framing (n_fft 2048, hop 512, 128 mel bands; torchaudio's own defaults, n_fft 400, leave mel filters empty at
44.1 kHz), split into `audio_segments` equal segments. The window of `audio_length` frames follows the paper
(section 4.1: "center-crop a to a fixed length of q and pad itself when necessary"): the centre of a longer
sequence, a shorter one tiled. VAANet's dataset code (which the public code inherits) differs: it always tiles
and keeps the first 4096 frames, i.e. the start of a longer soundtrack.

MFCC variant (`mfcc_variant`; where the implementation chooses between readings):
- `"librosa"` (default): the reference pipeline's `librosa.feature.mfcc(y, sr=44100, n_mfcc=32, n_fft=2048,
  hop_length=512, n_mels=128)` computed in torch (`LibrosaMFCC`): periodic Hann window, centred frames with zero
  ("constant") padding, power spectrogram, Slaney mel scale with Slaney area normalisation, `power_to_db(ref=1.0,
  amin=1e-10, top_db=80)` over the whole soundtrack, DCT-II with orthonormal scaling. Matches librosa 0.11 to ~1e-5
  of the feature range (tests/test_feature_extraction_mfcc.py). The waveform is first made mono by averaging the
  channels (as `librosa.load(mono=True)`) and resampled to 44.1 kHz with torchaudio's sinc resampler where the
  source rate differs (librosa.load uses soxr; the two differ only near the Nyquist band).
- `"torchaudio"`: `torchaudio.transforms.MFCC` with its defaults (HTK mel scale, unnormalised filters, reflect
  padding), what this package computed before the field existed; a saved feature-extractor config without
  `mfcc_variant` loads as this variant so that the checkpoints trained on it keep their input distribution.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torchaudio

from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature


MFCC_VARIANTS = ("librosa", "torchaudio")


class LibrosaMFCC(torch.nn.Module):
    r"""
    `librosa.feature.mfcc(y, sr, n_mfcc, n_fft, hop_length, n_mels)` (librosa's defaults otherwise) in torch:
    `(samples,)` float waveform -> `(n_mfcc, frames)`, `frames = 1 + samples // hop_length`.
    """

    def __init__(self, sample_rate: int, n_mfcc: int, n_fft: int, hop_length: int, n_mels: int, top_db: float = 80.0):
        super().__init__()
        self.n_fft, self.hop_length, self.top_db = n_fft, hop_length, top_db
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)  # scipy "hann"
        mel_filters = torchaudio.functional.melscale_fbanks(  # (n_freqs, n_mels), librosa.filters.mel's defaults
            n_fft // 2 + 1, f_min=0.0, f_max=sample_rate / 2, n_mels=n_mels, sample_rate=sample_rate, norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("mel_filters", mel_filters, persistent=False)
        dct = torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho")  # (n_mels, n_mfcc), scipy's DCT-II ortho
        self.register_buffer("dct", dct, persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(waveform, self.n_fft, self.hop_length, window=self.window, center=True,
                              pad_mode="constant", return_complex=True).abs().pow(2)  # (n_freqs, frames)
        mel = self.mel_filters.T @ spectrum
        decibels = 10.0 * torch.log10(mel.clamp(min=1e-10))  # power_to_db(ref=1.0, amin=1e-10)
        decibels = torch.maximum(decibels, decibels.max() - self.top_db)
        return self.dct.T @ decibels


class AVCPNetFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns mono waveforms into AV-CPNet's `input_features` `(batch, audio_segments, audio_length // audio_segments,
    num_mfcc)` float32 and `audio_mask` `(batch,)` bool (False where a sample has no audio: its features are zeros).

    Args:
        num_mfcc (`int`, defaults to 32): MFCC coefficients (also `feature_size`).
        sampling_rate (`int`, defaults to 44100): rate the MFCC is computed at; other rates are resampled.
        n_fft (`int`, defaults to 2048), hop_length (`int`, defaults to 512), n_mels (`int`, defaults to 128):
            STFT and mel filter bank settings (librosa's defaults, as the public code).
        audio_length (`int`, defaults to 4096): MFCC frames kept per clip (centre crop, or tiling when shorter).
        audio_segments (`int`, defaults to 16): segments the kept frames are split into.
        padding_value (`float`, defaults to 0.0): the feature value of samples without audio.
        mfcc_variant (`str`, defaults to `"librosa"`): `"librosa"` (the reference's MFCC) or `"torchaudio"` (the
            earlier `torchaudio.transforms.MFCC` defaults); see the module docstring. A saved config without the
            field loads as `"torchaudio"`.
    """

    model_input_names = ["input_features", "audio_mask"]

    def __init__(self, num_mfcc: int = 32, sampling_rate: int = 44100, n_fft: int = 2048, hop_length: int = 512,
                 n_mels: int = 128, audio_length: int = 4096, audio_segments: int = 16, padding_value: float = 0.0,
                 mfcc_variant: str = "librosa", **kwargs):
        kwargs.pop("feature_size", None)  # always num_mfcc
        super().__init__(feature_size=num_mfcc, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if audio_length % audio_segments:
            raise ValueError(f"audio_length {audio_length} is not divisible by audio_segments {audio_segments}")
        if n_mels < num_mfcc:
            raise ValueError(f"n_mels ({n_mels}) must be at least num_mfcc ({num_mfcc})")
        if mfcc_variant not in MFCC_VARIANTS:
            raise ValueError(f"mfcc_variant must be one of {MFCC_VARIANTS}, got {mfcc_variant!r}")
        self.mfcc_variant = mfcc_variant
        self.num_mfcc = num_mfcc
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.audio_length = audio_length
        self.audio_segments = audio_segments
        self._mfcc_transform = None

    @classmethod
    def from_dict(cls, feature_extractor_dict: dict[str, Any], **kwargs):
        # Saved before `mfcc_variant` existed: those checkpoints were trained on torchaudio's MFCC defaults.
        if "mfcc_variant" not in feature_extractor_dict and "mfcc_variant" not in kwargs:
            feature_extractor_dict = dict(feature_extractor_dict, mfcc_variant="torchaudio")
        return super().from_dict(feature_extractor_dict, **kwargs)

    @classmethod
    def from_json_file(cls, json_file):
        with open(json_file, encoding="utf-8") as reader:
            return cls.from_dict(json.load(reader))

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output.pop("_mfcc_transform", None)
        return output

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """`(audio_segments, frames per segment, num_mfcc)` of one sample."""
        return self.audio_segments, self.audio_length // self.audio_segments, self.num_mfcc

    @property
    def needed_seconds(self) -> float:
        """Seconds of audio that the centre-cropped `audio_length` MFCC frames cover (decoders may stop there)."""
        return (self.audio_length * self.hop_length + self.n_fft) / self.sampling_rate

    def mfcc(self, waveform: Union[np.ndarray, torch.Tensor], sampling_rate: Optional[int] = None) -> torch.Tensor:
        """MFCC of a mono waveform `(samples,)` (or `(channels, samples)`, averaged): `(frames, num_mfcc)`."""
        wave = torch.as_tensor(np.asarray(waveform, dtype=np.float32) if not isinstance(waveform, torch.Tensor)
                               else waveform.float())
        if wave.ndim == 2:
            wave = wave.mean(0)
        if wave.ndim != 1:
            raise ValueError(f"a waveform must be (samples,) or (channels, samples), got {tuple(wave.shape)}")
        sampling_rate = sampling_rate or self.sampling_rate
        if sampling_rate != self.sampling_rate:
            wave = torchaudio.functional.resample(wave, sampling_rate, self.sampling_rate)
        if self._mfcc_transform is None:
            if self.mfcc_variant == "librosa":
                self._mfcc_transform = LibrosaMFCC(self.sampling_rate, self.num_mfcc, self.n_fft, self.hop_length,
                                                   self.n_mels)
            else:
                self._mfcc_transform = torchaudio.transforms.MFCC(
                    sample_rate=self.sampling_rate, n_mfcc=self.num_mfcc,
                    melkwargs={"n_fft": self.n_fft, "hop_length": self.hop_length, "n_mels": self.n_mels},
                )
        with torch.no_grad():
            return self._mfcc_transform(wave).T.contiguous()  # (frames, num_mfcc)

    def fit_length(self, features: torch.Tensor) -> torch.Tensor:
        """Centre-crop `(frames, num_mfcc)` to `audio_length` frames, or tile it when shorter."""
        frames = features.shape[0]
        if frames >= self.audio_length:
            start = (frames - self.audio_length) // 2
            return features[start:start + self.audio_length]
        repeats = -(-self.audio_length // frames)
        return features.repeat(repeats, 1)[: self.audio_length]

    def from_mfcc(self, mfcc: Union[np.ndarray, torch.Tensor], name: str = "<mfcc>") -> BatchFeature:
        """The features of one sample from its precomputed `mfcc(waveform)` `(frames, num_mfcc)` (e.g. a media
        cache's `mfcc` column): the same centre crop or tiling as `__call__`, so the same numbers without decoding
        the soundtrack again. Returns `input_features` `(1, audio_segments, T, num_mfcc)` and `audio_mask` `(1,)`."""
        features = torch.as_tensor(np.asarray(mfcc, dtype=np.float32))
        if features.ndim != 2 or features.shape[1] != self.num_mfcc or features.shape[0] == 0:
            raise ValueError(f"{name}: precomputed MFCC must be (frames > 0, {self.num_mfcc}), got "
                             f"{tuple(features.shape)}")
        return BatchFeature({"input_features": self.fit_length(features).reshape(1, *self.feature_shape),
                             "audio_mask": torch.ones(1, dtype=torch.bool)})

    def __call__(self, raw_audio: Union[None, np.ndarray, torch.Tensor, Sequence[Optional[np.ndarray]]],
                 sampling_rate: Optional[int] = None, return_tensors: Optional[str] = "pt", **kwargs) -> BatchFeature:
        """Features for one waveform or a list of waveforms (mono `(samples,)` or `(channels, samples)` at
        `sampling_rate`, default `self.sampling_rate`); `None` (or an empty waveform) marks a sample without audio,
        which gets zero features and `audio_mask` False (the processor warns once per such file)."""
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)} for {type(self).__name__}")
        batch = self._as_list(raw_audio)
        features, mask = [], []
        for position, waveform in enumerate(batch):
            if waveform is None or np.asarray(waveform).size == 0:
                features.append(torch.full(self.feature_shape, float(self.padding_value)))
                mask.append(False)
                continue
            mfcc = self.fit_length(self.mfcc(waveform, sampling_rate))
            features.append(mfcc.reshape(self.feature_shape))
            mask.append(True)
        input_features = torch.stack(features) if features else torch.zeros(0, *self.feature_shape)
        audio_mask = torch.tensor(mask, dtype=torch.bool)
        if return_tensors == "np":
            input_features, audio_mask = input_features.numpy(), audio_mask.numpy()
        return BatchFeature({"input_features": input_features, "audio_mask": audio_mask})

    @staticmethod
    def _as_list(raw_audio) -> list:
        if raw_audio is None:
            return [None]
        if isinstance(raw_audio, (list, tuple)):
            return list(raw_audio)
        if isinstance(raw_audio, (np.ndarray, torch.Tensor)) and raw_audio.ndim == 1:
            return [raw_audio]
        if isinstance(raw_audio, (np.ndarray, torch.Tensor)) and raw_audio.ndim == 2:
            return [raw_audio]  # (channels, samples) of one clip
        raise ValueError(f"raw_audio must be a waveform or a list of waveforms, got {type(raw_audio).__name__}")


__all__ = ["AVCPNetFeatureExtractor"]
