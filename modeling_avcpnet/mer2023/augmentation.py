"""MER-NOISE data augmentation (MER 2023 paper, section on the MER-NOISE sub-challenge) as a `datasets` transform.

    audio: + noise at a signal-to-noise ratio drawn from `snrs_db` (the paper: 5..11 dB, step 1, MUSAN speech)
    video: one image corruption per clip, the same for all its frames (the paper: brightness e.g. solarize,
           articulation e.g. blur, position e.g. rotate, content e.g. cutout)

`MERNoiseAugmentation` is a batched callable for `dataset.with_transform(...)` / `set_transform(...)` (on the fly,
a new draw every access) or `dataset.map(..., batched=True)` (a fixed noisy copy, then the MER 2023 feature
extraction as usual). It reads the audio column (`{"array", "sampling_rate"}`, a 1-D array, a path/bytes) and the
video column (`(T, H, W, 3)` uint8 frames or a path/bytes, decoded with `feature_extraction_mer2023.load_frames`)
and returns them decoded and corrupted: audio as `{"array", "sampling_rate"}` (mono float32), video as frames.
Other columns pass through. Rows with an empty audio value take the video file's audio track.

Not reproducible offline (documented choice): MUSAN is not shipped and cannot be downloaded at run time. Pass
`noise_waveforms` (e.g. the `musan/speech/**/*.wav` files of a local copy, loaded at the audio rate) for the
paper's setting; by default the noise is generated pink (1/f) noise, a speech-band stand-in. The paper does not
give its image-corruption magnitudes; the defaults below are moderate (documented in `CORRUPTIONS`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from ..feature_extraction_mer2023 import DEFAULT_SAMPLING_RATE, load_frames, waveform_from_value

PAPER_SNRS_DB = (5, 6, 7, 8, 9, 10, 11)
# name -> what it does (magnitudes where the paper is silent).
CORRUPTIONS = {
    "solarize": "invert pixels brighter than a threshold drawn in [128, 224]",
    "blur": "Gaussian blur, kernel 9, sigma drawn in [1, 3]",
    "rotate": "rotation by an angle drawn in [-20, 20] degrees (zeros outside)",
    "cutout": "a zero square of side drawn in [0.2, 0.4] x min(H, W) at a random place",
}


def pink_noise(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power 1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
    noise = np.fft.irfft(spectrum, n=num_samples)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_noise_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`signal + g * noise` with `g` such that 10 log10(P_signal / P_(g noise)) = snr_db; the noise is tiled or cut
    to the signal's length. A silent signal is returned unchanged."""
    signal = np.asarray(signal, dtype=np.float32)
    noise = np.resize(np.asarray(noise, dtype=np.float32), signal.shape)
    signal_power, noise_power = float(np.mean(signal**2)), float(np.mean(noise**2))
    if signal_power == 0.0 or noise_power == 0.0:
        return signal.copy()
    gain = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (signal + gain * noise).astype(np.float32)


def corrupt_frames(frames: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    """One corruption of `CORRUPTIONS` applied alike to every frame of `(T, H, W, 3)` uint8 frames."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
    height, width = video.shape[-2:]
    if name == "solarize":
        video = TF.solarize(video, threshold=float(rng.uniform(128, 224)))
    elif name == "blur":
        video = TF.gaussian_blur(video, kernel_size=[9, 9], sigma=[float(rng.uniform(1, 3))] * 2)
    elif name == "rotate":
        video = TF.rotate(video, angle=float(rng.uniform(-20, 20)))
    elif name == "cutout":
        side = max(1, int(rng.uniform(0.2, 0.4) * min(height, width)))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        video = video.clone()
        video[..., top:top + side, left:left + side] = 0
    else:
        raise ValueError(f"unknown corruption {name!r}; one of {sorted(CORRUPTIONS)}")
    return video.permute(0, 2, 3, 1).contiguous().numpy()


class MERNoiseAugmentation:
    r"""
    Batched `datasets` transform adding MER-NOISE style corruptions (see the module docstring).

    Args:
        snrs_db (`Sequence[float]`, defaults to 5..11 dB): SNRs drawn uniformly per clip.
        noise_waveforms (`Sequence[np.ndarray]`, *optional*): noise recordings at `sampling_rate` (MUSAN speech for
            the paper's setting), one drawn per clip at a random offset; default: generated pink noise.
        corruptions (`Sequence[str]`, defaults to all of `CORRUPTIONS`): image corruptions, one drawn per clip.
        audio_probability, video_probability (`float`, default 1.0): chance that a clip's audio / video is corrupted.
        sampling_rate (`int`, defaults to 16000): rate of the returned audio (paths are decoded at it).
        num_frames (`int`, defaults to 8): frames decoded per clip when the video column holds paths.
        audio_column, video_column (`str`): the columns read (a missing column is skipped).
        seed (`int`, *optional*): seeds the draws (a transform instance then gives a reproducible sequence).
    """

    def __init__(self, snrs_db: Sequence[float] = PAPER_SNRS_DB, noise_waveforms: Sequence[np.ndarray] | None = None,
                 corruptions: Sequence[str] = tuple(CORRUPTIONS), audio_probability: float = 1.0,
                 video_probability: float = 1.0, sampling_rate: int = DEFAULT_SAMPLING_RATE, num_frames: int = 8,
                 audio_column: str = "audio", video_column: str = "video", seed: int | None = None):
        unknown = sorted(set(corruptions) - set(CORRUPTIONS))
        if unknown or not corruptions:
            raise ValueError(f"MERNoiseAugmentation: corruptions must be among {sorted(CORRUPTIONS)}, got {unknown}")
        if not snrs_db:
            raise ValueError("MERNoiseAugmentation: snrs_db is empty")
        self.snrs_db = [float(snr) for snr in snrs_db]
        self.noise_waveforms = [np.asarray(w, dtype=np.float32).reshape(-1) for w in noise_waveforms or []]
        self.corruptions = list(corruptions)
        self.audio_probability, self.video_probability = audio_probability, video_probability
        self.sampling_rate, self.num_frames = sampling_rate, num_frames
        self.audio_column, self.video_column = audio_column, video_column
        self.rng = np.random.default_rng(seed)

    def _noise(self, length: int) -> np.ndarray:
        if not self.noise_waveforms:
            return pink_noise(length, self.rng)
        noise = self.noise_waveforms[int(self.rng.integers(len(self.noise_waveforms)))]
        offset = int(self.rng.integers(len(noise))) if len(noise) else 0
        return np.roll(noise, -offset)

    def augment_audio(self, waveform: np.ndarray) -> np.ndarray:
        if self.rng.random() >= self.audio_probability:
            return np.asarray(waveform, dtype=np.float32)
        snr = self.snrs_db[int(self.rng.integers(len(self.snrs_db)))]
        return add_noise_at_snr(waveform, self._noise(len(waveform)), snr)

    def augment_video(self, frames: np.ndarray) -> np.ndarray:
        if self.rng.random() >= self.video_probability:
            return np.asarray(frames)
        return corrupt_frames(frames, self.corruptions[int(self.rng.integers(len(self.corruptions)))], self.rng)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        output = dict(batch)
        videos = batch.get(self.video_column)
        if self.audio_column in batch:
            sources = videos if videos is not None else [None] * len(batch[self.audio_column])
            output[self.audio_column] = [
                {"array": self.augment_audio(waveform_from_value(value, video, self.sampling_rate)),
                 "sampling_rate": self.sampling_rate}
                for value, video in zip(batch[self.audio_column], sources)
            ]
        if videos is not None:
            output[self.video_column] = [
                self.augment_video(np.asarray(v, dtype=np.uint8) if isinstance(v, (np.ndarray, list)) else
                                   load_frames(v, self.num_frames))
                for v in videos
            ]
        return output


__all__ = ["CORRUPTIONS", "MERNoiseAugmentation", "PAPER_SNRS_DB", "add_noise_at_snr", "corrupt_frames",
           "pink_noise"]
