#!/usr/bin/env python
"""Everything `configs/mer2023_sample.yaml` needs, made offline: a tiny MER 2023 release and tiny backbones.

    python scripts/make_mer2023_sample.py [ROOT]        (default ROOT: runs/mer2023_sample; idempotent)

- `ROOT/data/`: a release in the challenge layout (`train-label.csv`, `validation-label.csv`, `test-label.csv` with
  `name,discrete,valence` rows, no final newline, as the release files; the clips `sample_XXXXXXXX.mp4` beside them
  and in `video-labeled/`). Each of the six emotions is a (colour, pitch) pair with a valence around a class mean,
  so that the system can learn them from either modality.
- `ROOT/backbones/hubert` and `ROOT/backbones/vit`: randomly initialised (seeded) tiny HuBERT and ViT models with
  their feature extractor / image processor, standing in for HuBERT-large and a face model: nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# emotion -> (square colour, tone pitch in Hz, valence mean) for the generated clips
CUES = {
    "neutral": ((128, 128, 128), 300.0, 0.0),
    "angry": ((230, 30, 30), 900.0, -2.0),
    "happy": ((250, 210, 40), 1500.0, 2.2),
    "sad": ((40, 60, 200), 200.0, -2.5),
    "worried": ((120, 40, 160), 600.0, -1.2),
    "surprise": ((30, 200, 120), 2200.0, 0.6),
}
CLIPS_PER_CLASS = {"train": 6, "validation": 2, "test": 2}


def make_release(data_dir: Path, seed: int = 0) -> None:
    from datasets_emotions.synthetic_media import moving_square_frames, tone, write_clip

    rng = np.random.default_rng(seed)
    (data_dir / "video-labeled").mkdir(parents=True, exist_ok=True)
    number = 0
    for split, per_class in CLIPS_PER_CLASS.items():
        rows = []
        for _ in range(per_class):
            for label, (color, pitch, valence) in CUES.items():
                number += 1
                name = f"sample_{number * 37 + 3:08d}"  # release-like ids, not consecutive
                folder = data_dir if number % 2 else data_dir / "video-labeled"
                jitter = rng.uniform(0.9, 1.1)
                write_clip(folder / f"{name}.mp4", frames=moving_square_frames(12, 32, 32, color=color,
                                                                              speed=1 + number % 3),
                           fps=12, audio=tone(pitch * jitter, 1.0, 16000), sample_rate=16000)
                rows.append(f"{name},{label},{valence + rng.normal(0, 0.3):.2f}")
        (data_dir / f"{split}-label.csv").write_text("name,discrete,valence\n" + "\n".join(rows))


def make_backbones(folder: Path, seed: int = 0) -> None:
    import torch
    from transformers import HubertConfig, HubertModel, ViTConfig, ViTImageProcessor, ViTModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(seed)
    hubert = HubertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
                          num_conv_pos_embedding_groups=2)
    HubertModel(hubert).save_pretrained(folder / "hubert")
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder / "hubert")
    vit = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64)
    ViTModel(vit).save_pretrained(folder / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder / "vit")


def main(argv: list[str]) -> None:
    root = Path(argv[0] if argv else "runs/mer2023_sample")
    if not (root / "data" / "test-label.csv").is_file():
        make_release(root / "data")
    if not (root / "backbones" / "vit" / "config.json").is_file():
        make_backbones(root / "backbones")
    print(f"MER 2023 sample release in {root / 'data'}, tiny backbones in {root / 'backbones'}")


if __name__ == "__main__":
    main(sys.argv[1:])
