"""``sample``: a generated, deterministic set of small mp4 clips for the 6 eMotions classes.

Each class is a (visual cue, audio cue) pair, so a fused model must beat either single modality; see
``sample_media`` for the design and ``hub_cards/sample_dataset_card.md`` for the card. The clips are generated on
first use (a few seconds) under ``<cache_dir>/datasets_emotions_media/`` and are never committed.
"""

from __future__ import annotations

import dataclasses
import os

import datasets

from modeling_avcpnet.labels import EMOTIONS_LABELS, EMOTIONS_POLARITY

from .common import EmotionDatasetBuilder, EmotionDatasetConfig
from .sample_media import plan_split, write_sample_clip

SPLITS = {"train": datasets.Split.TRAIN, "validation": datasets.Split.VALIDATION, "test": datasets.Split.TEST}


@dataclasses.dataclass
class SampleConfig(EmotionDatasetConfig):
    """Size and look of the generated set (defaults: 480 clips, 336 / 72 / 72, 64x48, 2 s at 12 fps, 16 kHz)."""

    seed: int = 0
    clips_per_class_train: int = 56
    clips_per_class_validation: int = 12
    clips_per_class_test: int = 12
    noisy_train: int = 12
    noisy_validation: int = 2
    noisy_test: int = 2
    width: int = 64
    height: int = 48
    fps: int = 12
    duration: float = 2.0
    sample_rate: int = 16000


class SampleBuilder(EmotionDatasetBuilder):
    BUILDER_CONFIG_CLASS = SampleConfig
    BUILDER_CONFIGS = [SampleConfig(name="default", description="480 generated clips, 6 eMotions classes")]
    DEFAULT_CONFIG_NAME = "default"
    LABELS = tuple(EMOTIONS_LABELS)
    DEFAULT_POLARITY = EMOTIONS_POLARITY
    NEEDS_DATA_DIR = False
    EXTRA_HASH_MODULES = ("datasets_emotions.sample_media", "datasets_emotions.synthetic_media")
    LAYOUT = "(generated: no data_dir)"

    def _info(self):
        return datasets.DatasetInfo(
            description="Generated audio-visual clips: hue of moving discs x pitch of a tone -> 6 eMotions classes.",
            features=self.core_features(
                split=datasets.Value("string"),
                visual_cue=datasets.Value("string"),
                audio_cue=datasets.Value("string"),
                noise=datasets.Value("string"),
            ),
        )

    def media_dir(self) -> str:
        """Where the clips live: next to, not inside, the Arrow cache (which is written then renamed)."""
        return os.path.join(self._cache_dir_root, "datasets_emotions_media", self._relative_data_dir())

    def _split_generators(self, dl_manager):
        config = self.config
        root = self.media_dir()
        generators = []
        for split, split_name in SPLITS.items():
            specs = plan_split(split, self.label_names(), getattr(config, f"clips_per_class_{split}"),
                               getattr(config, f"noisy_{split}"), config.seed)
            if specs:
                generators.append(datasets.SplitGenerator(name=split_name, gen_kwargs={"rows": specs, "root": root}))
        return generators

    def _generate_examples(self, rows, root):
        config = self.config
        for spec in rows:
            folder = os.path.join(root, spec.split, spec.label)
            os.makedirs(folder, exist_ok=True)
            path = write_sample_clip(spec, os.path.join(folder, f"{spec.video_id}.mp4"), width=config.width,
                                     height=config.height, fps=config.fps, duration=config.duration,
                                     sample_rate=config.sample_rate)
            yield spec.video_id, self.make_row(path, spec.label, spec.video_id, split=spec.split,
                                               visual_cue=spec.visual_cue, audio_cue=spec.audio_cue,
                                               noise=spec.noise)
