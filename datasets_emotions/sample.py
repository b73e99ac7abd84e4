"""``sample``: a generated, deterministic set of small mp4 clips for the 6 eMotions classes.

Each class is a (visual cue, audio cue) pair, so a fused model must beat either single modality; see
``sample_clips`` for the design and ``hub_cards/sample_dataset_card.md`` for the card. The clips are generated on
first use (a few seconds) under ``<cache_dir>/datasets_emotions_media/`` and are never committed.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import datasets

from modeling_avcpnet.labels import EMOTIONS_LABELS, EMOTIONS_POLARITY

from .builder_base import EmotionDatasetBuilder, EmotionDatasetConfig, SkippedExamplesWarning, media_problem
from .sample_clips import plan_split, write_sample_clip

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
    EXTRA_HASH_MODULES = ("datasets_emotions.sample_clips", "datasets_emotions.synthetic_media")
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
        generators, damaged = [], []
        for split, split_name in SPLITS.items():
            specs = plan_split(split, self.label_names(), getattr(config, f"clips_per_class_{split}"),
                               getattr(config, f"noisy_{split}"), config.seed)
            damaged += self.remove_damaged_clips(root, specs)
            if specs:
                generators.append(datasets.SplitGenerator(name=split_name, gen_kwargs={"rows": specs, "root": root}))
        if damaged:
            # the bad-media policy of every builder, except that a generated clip is made again instead of skipped
            message = (f"{self.name}: {len(damaged)} damaged clip(s) in the media cache were removed and are generated "
                       f"again (e.g. {', '.join(damaged[:3])})")
            warnings.warn(message, SkippedExamplesWarning, stacklevel=2)
            self.keep_note(message)
        return generators

    @staticmethod
    def remove_damaged_clips(root: str, specs) -> list[str]:
        """Clips left by an earlier preparation are reused; probe them and delete the unreadable ones."""
        damaged = []
        for spec in specs:
            path = os.path.join(root, spec.split, spec.label, f"{spec.video_id}.mp4")
            if os.path.exists(path) and (problem := media_problem(path)) is not None:
                os.remove(path)
                damaged.append(f"{spec.video_id} ({problem})")
        return damaged

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
