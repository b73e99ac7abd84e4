"""Audio feature extractor for AV-CPNet: MFCC of the whole soundtrack, centre-cropped or tiled, split in segments.

Follows the public code (VAANet's audio branch): mono audio at 44.1 kHz, 32 MFCC coefficients with librosa's
framing (n_fft 2048, hop 512, 128 mel bands; torchaudio's own defaults, n_fft 400, leave mel filters empty at
44.1 kHz), the sequence centre-cropped to `audio_length` frames (tiled when shorter) and split into
`audio_segments` equal segments.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torchaudio

from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature


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
    """

    model_input_names = ["input_features", "audio_mask"]

    def __init__(self, num_mfcc: int = 32, sampling_rate: int = 44100, n_fft: int = 2048, hop_length: int = 512,
                 n_mels: int = 128, audio_length: int = 4096, audio_segments: int = 16, padding_value: float = 0.0,
                 **kwargs):
        kwargs.pop("feature_size", None)  # always num_mfcc
        super().__init__(feature_size=num_mfcc, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if audio_length % audio_segments:
            raise ValueError(f"audio_length {audio_length} is not divisible by audio_segments {audio_segments}")
        if n_mels < num_mfcc:
            raise ValueError(f"n_mels ({n_mels}) must be at least num_mfcc ({num_mfcc})")
        self.num_mfcc = num_mfcc
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.audio_length = audio_length
        self.audio_segments = audio_segments
        self._mfcc_transform = None

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
