"""Media of the generated ``sample`` dataset: each eMotions class is one (visual cue, audio cue) pair.

Design (the dataset card ``hub_cards/sample_dataset_card.md`` repeats it):

* visual cue = the hue of two coloured discs moving over a textured background: red (0 deg), green (120 deg) or
  blue (240 deg). Hue survives the training augmentation (crops, flips, +-20 deg rotations and brightness in
  [0.5, 1] scale all channels alike), and two discs of radius 9-13 px on a 64x48 frame keep part of the cue in
  any corner crop.
* audio cue = the pitch of a harmonic tone: low (f0 180-260 Hz) or high (f0 650-950 Hz). Pitch is constant over
  the clip, so it survives any centre crop of the MFCC sequence, and it moves the whole MFCC envelope.
* class = (hue, pitch):

  | label      | hue   | pitch |
  |------------|-------|-------|
  | excitation | red   | high  |
  | tension    | red   | low   |
  | relaxation | green | high  |
  | neutral    | green | low   |
  | fear       | blue  | high  |
  | sadness    | blue  | low   |

  so the picture alone tells one of three pairs (at best 50 % accuracy), the sound alone one of two triples (at
  best 33 %), and only both together the class.
* nuisance, drawn per clip: background grey level, tint and static/temporal noise; disc radius, start position,
  velocity (bouncing), hue jitter +-12 deg, saturation 0.65-1, value 0.55-1; f0 inside its range, 2 % vibrato,
  harmonic amplitudes, loudness 0.1-0.5, an on/off rhythm of 1-4 Hz with duty 0.5-0.8, white noise at 10-25 dB SNR;
  in the picture, per-frame flicker and per-pixel noise.
* noisy clips: a fixed number per split (default 12 of 336 train, 2 of 72 validation, 2 of 72 test) carry one
  conflicting cue: half of them show a wrong hue (one of the two other hues), the other half a wrong pitch, while
  the label stays. Nothing in such a clip tells its label, which caps the attainable test accuracy at 70/72.

Everything is drawn from ``numpy.random.default_rng([seed, split, index])``, so a clip depends only on the seed
and its own position and can be generated in any process, in any order.
"""

from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass

import numpy as np

from .synthetic_media import write_clip

HUES = {"red": 0.0, "green": 120.0, "blue": 240.0}
PITCHES = {"low": (180.0, 260.0), "high": (650.0, 950.0)}
CLASS_CUES = {
    "excitation": ("red", "high"),
    "fear": ("blue", "high"),
    "neutral": ("green", "low"),
    "relaxation": ("green", "high"),
    "sadness": ("blue", "low"),
    "tension": ("red", "low"),
}
SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class ClipSpec:
    """What one clip shows; ``noise`` is ``none``, ``visual_cue_swapped`` or ``audio_cue_swapped``."""

    split: str
    index: int
    label: str
    visual_cue: str
    audio_cue: str
    noise: str
    seed: int

    @property
    def video_id(self) -> str:
        return f"{self.split}_{self.index:04d}"

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_CODES[self.split], self.index, stream])


def plan_split(split: str, labels: list[str], clips_per_class: int, noisy: int, seed: int) -> list[ClipSpec]:
    """Balanced list of clip specs for a split; ``noisy`` of them (chosen by the seed) get one conflicting cue."""
    total = clips_per_class * len(labels)
    if noisy > total:
        raise ValueError(f"sample: {noisy} noisy clips requested in a {split} split of {total}")
    rng = np.random.default_rng([seed, SPLIT_CODES[split], 1_000_003])
    order = rng.permutation(total)  # interleave the classes, so any prefix is roughly balanced
    noisy_positions = set(rng.choice(total, size=noisy, replace=False).tolist())
    specs, noisy_so_far = [], 0
    for index in range(total):
        label = labels[int(order[index]) % len(labels)]
        visual, audio = CLASS_CUES[label]
        noise = "none"
        if index in noisy_positions:
            # Alternate the kind of noise over the noisy clips in index order: half visual, half audio.
            if noisy_so_far % 2 == 0:
                visual = rng.choice([hue for hue in HUES if hue != visual]).item()
                noise = "visual_cue_swapped"
            else:
                audio = "low" if audio == "high" else "high"
                noise = "audio_cue_swapped"
            noisy_so_far += 1
        specs.append(ClipSpec(split, index, label, visual, audio, noise, seed))
    return specs


def _hsv_to_rgb(hue_deg: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360) / 360, saturation, value)) * 255


def render_frames(spec: ClipSpec, width: int = 64, height: int = 48, fps: float = 12, duration: float = 2.0
                  ) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames of ``spec``'s visual cue with its nuisance variation."""
    rng = spec.rng(0)
    num_frames = int(round(fps * duration))
    grey = rng.uniform(40, 200)
    tint = rng.uniform(-20, 20, size=3)
    background = grey + tint + rng.normal(0, 12, size=(height, width, 3))
    yy, xx = np.mgrid[0:height, 0:width]
    discs = []
    for _ in range(2):
        radius = rng.uniform(9, 13)
        color = _hsv_to_rgb(HUES[spec.visual_cue] + rng.uniform(-12, 12), rng.uniform(0.65, 1.0),
                            rng.uniform(0.55, 1.0))
        position = np.array([rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)])
        angle = rng.uniform(0, 2 * np.pi)
        velocity = rng.uniform(0.5, 3.0) * np.array([np.cos(angle), np.sin(angle)])
        discs.append([radius, color, position, velocity])
    flicker = rng.normal(0, 6, size=(num_frames, 1, 1, 1))  # global per-frame brightness noise
    frames = background[None] + flicker + rng.normal(0, 4, size=(num_frames, height, width, 1))
    for radius, color, position, velocity in discs:
        for t in range(num_frames):
            x0, x1 = int(max(0, position[0] - radius)), int(min(width, position[0] + radius + 1))
            y0, y1 = int(max(0, position[1] - radius)), int(min(height, position[1] + radius + 1))
            mask = (xx[y0:y1, x0:x1] - position[0]) ** 2 + (yy[y0:y1, x0:x1] - position[1]) ** 2 <= radius**2
            frames[t, y0:y1, x0:x1][mask] = color
            position += velocity
            for axis, limit in ((0, width), (1, height)):  # bounce off the borders
                if not radius <= position[axis] <= limit - radius:
                    velocity[axis] = -velocity[axis]
                    position[axis] = np.clip(position[axis], radius, limit - radius)
    frames = np.clip(frames, 0, 255).astype(np.uint8)
    return frames


def render_audio(spec: ClipSpec, sample_rate: int = 16000, duration: float = 2.0) -> np.ndarray:
    """``(1, N)`` float32 waveform of ``spec``'s audio cue with its nuisance variation."""
    rng = spec.rng(1)
    t = np.arange(int(round(sample_rate * duration))) / sample_rate
    low, high = PITCHES[spec.audio_cue]
    f0 = rng.uniform(low, high) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    wave = sum(rng.uniform(0.2, 1.0) / k * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 5))
    rate, duty = rng.uniform(1, 4), rng.uniform(0.5, 0.8)
    gate = ((t * rate + rng.uniform()) % 1.0) < duty
    width = int(0.02 * sample_rate)  # 20 ms moving average softens the on/off edges
    envelope = np.cumsum(np.concatenate([np.zeros(width), gate.astype(float)]))
    envelope = (envelope[width:] - envelope[:-width]) / width
    wave = wave * envelope
    wave = wave / (np.abs(wave).max() + 1e-6) * rng.uniform(0.1, 0.5)
    signal_power = np.mean(wave**2)
    snr_db = rng.uniform(10, 25)
    wave = wave + rng.normal(0, np.sqrt(signal_power / 10 ** (snr_db / 10)), size=t.shape)
    return np.clip(wave, -1, 1).astype(np.float32)[None]


def write_sample_clip(spec: ClipSpec, path: str, width: int = 64, height: int = 48, fps: float = 12,
                      duration: float = 2.0, sample_rate: int = 16000) -> str:
    """Write ``spec`` as an mp4 (H.264 + AAC mono) at ``path`` unless it is already there.

    The file is written under a temporary name and renamed, so a reader or a parallel writer never sees half a
    clip.
    """
    if os.path.exists(path):
        return path
    partial = f"{path}.partial-{os.getpid()}.mp4"
    write_clip(partial, render_frames(spec, width, height, fps, duration), fps=fps,
               audio=render_audio(spec, sample_rate, duration), sample_rate=sample_rate, gop_size=int(fps))
    os.replace(partial, path)
    return path
