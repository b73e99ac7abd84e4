"""A few small real clips to try the README's examples on: ``avcpnet sample-clips DIR``.

Writes into ``DIR`` (each file only when missing, so rerunning is cheap):

- ``clip.mp4``, ``other.mp4``: 2-s clips of the ``sample`` set (64x48, H.264 + AAC tone), two different emotions;
- ``empty.mp4``: a 0-byte file, to see how a file that cannot be decoded is reported;
- ``talk.mp4``: a 16-s clip whose emotion changes half way (for ``avcpnet timeline``);
- ``videos/`` (three clips) and ``more/`` (two clips): folders for ``avcpnet predict``.

The clips are drawn like the ``sample`` set's test split (see ``sample_clips``): a model trained by the main job
(``train_hf.py configs/sample.yaml``) labels them. Needs only PyAV and numpy; about a second on one core.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

import numpy as np

from .sample_clips import plan_split, render_audio, render_frames, write_sample_clip
from .synthetic_media import write_clip

LABELS = ("excitation", "fear", "neutral", "relaxation", "sadness", "tension")  # the sample set's classes


def write_sample_clips(folder: str, seed: int = 0) -> dict[str, str]:
    """Write the clips listed in the module docstring into ``folder``; returns ``{name: path}``."""
    os.makedirs(os.path.join(folder, "videos"), exist_ok=True)
    os.makedirs(os.path.join(folder, "more"), exist_ok=True)
    specs = plan_split("test", list(LABELS), clips_per_class=2, noisy=0, seed=seed)
    by_label: dict[str, list] = {}
    for spec in specs:
        by_label.setdefault(spec.label, []).append(spec)
    first, second = by_label["excitation"][0], by_label["sadness"][0]
    names = {"clip.mp4": first, "other.mp4": second}
    for index, label in enumerate(("fear", "neutral", "relaxation")):
        names[f"videos/{index:02d}_{label}.mp4"] = by_label[label][0]
    for index, label in enumerate(("tension", "excitation")):
        names[f"more/{index:02d}_{label}.mp4"] = by_label[label][1]
    paths = {name: write_sample_clip(spec, os.path.join(folder, name)) for name, spec in names.items()}

    empty = os.path.join(folder, "empty.mp4")
    if not os.path.exists(empty):
        open(empty, "wb").close()
    paths["empty.mp4"] = empty

    paths["talk.mp4"] = write_changing_clip(first, second, os.path.join(folder, "talk.mp4"))
    return paths


def write_changing_clip(first, second, path: str, seconds_each: float = 8.0) -> str:
    """A clip of the sample set's cues of `first` for `seconds_each`, then of `second` (the emotion changes half
    way: what a timeline shows), written once (to a temporary name, then renamed). Returns `path`."""
    if not os.path.exists(path):
        frames = np.concatenate([render_frames(spec, duration=seconds_each) for spec in (first, second)])
        audio = np.concatenate([render_audio(spec, duration=seconds_each) for spec in (first, second)], axis=1)
        partial = f"{path}.partial-{os.getpid()}.mp4"
        write_clip(partial, frames, fps=12, audio=audio, sample_rate=16000, gop_size=12)
        os.replace(partial, path)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", default=".", help="where to write the clips (default: here)")
    parser.add_argument("--seed", type=int, default=0, help="which clips of the sample set's test split")


def command(args: argparse.Namespace) -> int:
    """``avcpnet sample-clips``: write the clips and list them."""
    paths = write_sample_clips(args.folder, seed=args.seed)
    print(f"avcpnet sample-clips: {len(paths)} files in {os.path.abspath(args.folder)}: "
          + ", ".join(sorted(paths)))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets_emotions.example_clips", description=__doc__)
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
