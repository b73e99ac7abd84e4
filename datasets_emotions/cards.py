"""Dataset cards, rendered with ``huggingface_hub.DatasetCard``.

``python -m datasets_emotions.cards`` rewrites ``hub_cards/emotions_dataset_card.md`` and
``hub_cards/sample_dataset_card.md``; the export command puts the matching card (plus the Parquet ``configs``
block) in the exported folder's ``README.md``.
"""

from __future__ import annotations

import os
from typing import Optional

from huggingface_hub import DatasetCard, DatasetCardData

from modeling_avcpnet.labels import EMOTIONS_LABELS, EMOTIONS_POLARITY

from .emotions import CITATION as EMOTIONS_CITATION
from .sample_media import CLASS_CUES

ADJECTIVES = {  # the paper's table 2: emotion category -> adjectives used by the annotators (62 in all)
    "excitation": "Happy, Fun, Sexy, Joyful, Pleasant, Exciting, Adorable, Cheerful, Surprising, Interesting, "
                  "Active, Hopeful, Enjoyable, Lively, Loving, Spirited, Touching",
    "fear": "Horrific, Fearful, Scary, Dreadful",
    "neutral": "Little (Sad, Fearful, Exciting, Relaxing, Happy, Tensed), Insensitive, Indifferent, Narrative, "
               "Unsentimental, Mind-numbing",
    "relaxation": "Calm, Tranquil, Leisure, Peaceful, Soothing, Relaxing, Stress-releasing",
    "sadness": "Depressing, Chilling, Sentimental, Shameful, Distressed, Anguished, Melancholic, Heart-breaking, "
               "Sorrowful, Regrettable, Heart-wrenching, Agonizing, Sympathetic",
    "tension": "Angry, Hateful, Panicking, Raging, Tensed, Fast-paced, Accelerated, Anxious, Disturbing, Flustered",
}
# Table 3: videos, total duration (1e4 s), shortest / longest / average duration (s), frames (1e4)
CATEGORY_STATS = {
    "excitation": (11739, 29.35, 3.72, 163.77, 25.00, 945.29),
    "fear": (954, 2.59, 2.81, 117.49, 27.08, 78.56),
    "neutral": (8795, 24.97, 2.46, 150.93, 28.39, 815.11),
    "relaxation": (2214, 5.24, 5.06, 117.05, 23.69, 163.80),
    "sadness": (2090, 4.04, 3.25, 120.77, 19.30, 131.53),
    "tension": (2204, 4.90, 3.79, 119.32, 22.25, 152.15),
    "overall": (27996, 71.09, 2.46, 163.77, 25.39, 2286.44),
}
# Table 4: raw and labelled videos per platform
PLATFORM_STATS = {"Douyin": (15977, "47.58%", 12395, "44.27%"), "Kuaishou": (10000, "29.78%", 8264, "29.52%"),
                  "TikTok": (7600, "22.64%", 7337, "26.21%"), "Sum": (33577, "100%", 27996, "100%")}

EMOTIONS_TEMPLATE = """---
{card_data}
---

# eMotions

eMotions is a large-scale dataset for emotion recognition in short videos (SVs): 27,996 videos collected from
Douyin, Kuaishou and TikTok around hot events, labelled with one of six emotion categories through a multi-stage
annotation workflow (three annotators per video, majority vote, leader and expert re-review; Fleiss' kappa > 0.45).
It was introduced with the AV-CPNet baseline in *eMotions: A Large-Scale Dataset for Emotion Recognition in Short
Videos* (Wu et al., arXiv:2311.17335).

This card describes how the `datasets_emotions` package reads a local copy of the release; the videos themselves
are distributed by the authors.

## Classes

Labels are in the official index order; the polarity column follows the EP-CE loss of the paper.

| id | label | polarity | adjectives used for annotation (paper, table 2) |
|----|-------|----------|--------------------------------------------------|
{class_rows}

## Statistics (paper, tables 3 and 4)

| category | videos | total (10^4 s) | shortest (s) | longest (s) | average (s) | frames (10^4) |
|----------|--------|----------------|--------------|-------------|-------------|---------------|
{stat_rows}

| platform | raw videos | raw share | labelled videos | labelled share |
|----------|------------|-----------|-----------------|----------------|
{platform_rows}

72.81 % of the videos last 30 s or less.

## Variants

| config | content |
|--------|---------|
| `default` | all videos, the release's `trainlist01.txt` / `testlist01.txt` split |
| `balanced` | the category-balanced variant (eMotions.balanced in the paper) |
| `test` | the test-oriented variant (eMotions.test in the paper) |

When the release ships the variants' membership (`trainlist01_<variant>.txt` / `testlist01_<variant>.txt`, or
`metadata_<variant>.csv` in the raw-video layout) it is used as is. **Otherwise the variants are reconstructed by
deterministic sampling, which is not the authors' membership:** `balanced` cuts every class of every split to the
size of that split's smallest class; `test` keeps the train split whole and makes the test split
category-balanced the same way. Inside a class the videos with the smallest SHA-1 of their `video_id` are kept,
so the membership depends neither on file order nor on a seed.

## Layout

```
{layout}
```

## Usage

```python
from datasets_emotions import load_dataset, with_processor
ds = load_dataset("emotions", data_dir="/data/eMotions")             # config "default"
balanced = load_dataset("emotions", "balanced", data_dir="/data/eMotions")
```

Columns: `video` (path of the frames folder or video file), `audio` (path of the mp3, or `""` when the soundtrack
is inside the video or missing), `label` (`ClassLabel`), `polarity` (`ClassLabel` positive / neutral / negative),
`video_id`. Videos listed but missing are skipped with one warning that counts them. An export made with
`python -m datasets_emotions.export emotions --data-dir ... --output ...` embeds the media bytes in Parquet and
loads with plain `datasets.load_dataset`.

## Baseline results (paper, table 5)

AV-CPNet: eMotions 67.08 % accuracy / 66.45 weighted F1; eMotions.balanced 63.81 / 63.98; eMotions.test
65.80 / 65.01.

## Considerations

Videos with racial discrimination, violence or pornography were removed by the authors, as were videos whose
emotion shifts; topics centre on daily life and real-time events of 2022 (COVID-19, floods, the FIFA World Cup).
Emotion labels of short videos are subjective: the inter-annotator agreement (kappa > 0.45) bounds what any model
can reach. The long-tailed class distribution (42 % excitation, 3.4 % fear) is the reason for the balanced variant.

## Citation

```bibtex
{citation}
```
"""

SAMPLE_TEMPLATE = """---
{card_data}
---

# eMotions sample (generated)

A small, deterministic, generated audio-visual set in the six eMotions classes, for tests, demos and the README's
tiny training job. Nothing in it is real footage; it is produced by `datasets_emotions.sample_media` from a seed
(about 60 ms of CPU per clip, most of it AAC encoding, so well under a minute; `num_proc=2` splits the work) and
cached under the datasets cache folder (`load_dataset("sample")`).

## Design

Each class is a pair (visual cue, audio cue), so neither modality alone can tell the class:

| id | label | hue of the moving discs | pitch of the tone |
|----|-------|-------------------------|-------------------|
{cue_rows}

* **Visual cue**: two discs (radius 9-13 px) of hue red (0 deg), green (120 deg) or blue (240 deg), jittered by
  +-12 deg, saturation 0.65-1, value 0.55-1, moving and bouncing over a textured grey background with a random tint,
  per-frame flicker and pixel noise. Hue is unchanged by the training augmentation (crops, flips, rotations,
  brightness scaling). The picture alone tells one of three pairs of classes: at best 50 % accuracy.
* **Audio cue**: a four-harmonic tone with f0 180-260 Hz (low) or 650-950 Hz (high), 2 % vibrato, an on/off rhythm
  of 1-4 Hz, loudness 0.1-0.5 and white noise at 10-25 dB SNR; the pitch is constant, so any crop keeps it. The
  sound alone tells one of two triples: at best 33 %.
* **Noisy clips**: {noisy_train} of {n_train} train, {noisy_validation} of {n_validation} validation and
  {noisy_test} of {n_test} test clips carry one conflicting cue (half a wrong hue, half a wrong pitch) under their
  true label (column `noise`), so the best attainable test accuracy is {ceiling}.

## Numbers

{numbers}

## Format

{n_total} mp4 clips (H.264 64x48, 12 fps, 2 s; AAC mono 16 kHz), splits train {n_train} / validation
{n_validation} / test {n_test}, balanced over the classes. Columns: `video`, `audio` (`""`: the soundtrack is in
the clip), `label`, `polarity`, `video_id`, `split`, `visual_cue`, `audio_cue`, `noise`. Config fields (`seed`,
`clips_per_class_<split>`, `noisy_<split>`, `width`, `height`, `fps`, `duration`, `sample_rate`) change the set:
`load_dataset("sample", seed=1)`.
"""

SAMPLE_NUMBERS = """Logistic regression on hand features of the decoded default set (train 336 -> test 72; the check in
`tests/test_datasets_sample.py` runs it on the same test split with a smaller train split): mean hue (cos, sin)
of the saturated pixels of the centre crop alone 0.50 test accuracy; MFCC means (torchaudio, 20 coefficients) of
the centre 0.74 s alone 0.29; both together 0.97 (70/72, the ceiling). The pitch factor is also linearly
separable (accuracy 1.0, 60 train -> 40 test clips) from the time-averaged `input_features` that
`AVCPNetProcessor.from_model_config(AVCPNetConfig.tiny())` computes (44.1 kHz, 32 MFCC, 64 centre frames)."""


def _table(rows) -> str:
    return "\n".join("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)


def emotions_card(license: str = "other") -> DatasetCard:
    """The eMotions card. The release names no license; ``other`` until the authors publish one."""
    from .emotions import EmotionsBuilder

    data = DatasetCardData(
        license=license, task_categories=["video-classification"], language=["zh", "en"],
        tags=["emotion-recognition", "short-videos", "audio-visual"], pretty_name="eMotions",
        size_categories=["10K<n<100K"], paperswithcode_id=None,
    )
    class_rows = _table((i, name, EMOTIONS_POLARITY[name], ADJECTIVES[name]) for i, name in enumerate(EMOTIONS_LABELS))
    stat_rows = _table((name, stats[0]) + tuple(f"{value:.2f}" for value in stats[1:])
                       for name, stats in CATEGORY_STATS.items())
    platform_rows = _table((name,) + stats for name, stats in PLATFORM_STATS.items())
    text = EMOTIONS_TEMPLATE.format(card_data=data.to_yaml(), class_rows=class_rows, stat_rows=stat_rows,
                                    platform_rows=platform_rows, layout=EmotionsBuilder.LAYOUT,
                                    citation=EMOTIONS_CITATION)
    return DatasetCard(text)


def sample_card(config=None) -> DatasetCard:
    from .sample import SampleConfig

    config = config or SampleConfig(name="default")
    counts = {split: getattr(config, f"clips_per_class_{split}") * len(EMOTIONS_LABELS)
              for split in ("train", "validation", "test")}
    data = DatasetCardData(license="apache-2.0", task_categories=["video-classification"],
                           tags=["synthetic", "audio-visual", "emotion-recognition"], pretty_name="eMotions sample",
                           size_categories=["n<1K"])
    cue_rows = _table((i, name) + CLASS_CUES[name] for i, name in enumerate(EMOTIONS_LABELS))
    ceiling = f"{counts['test'] - config.noisy_test}/{counts['test']}"
    text = SAMPLE_TEMPLATE.format(
        card_data=data.to_yaml(), cue_rows=cue_rows, noisy_train=config.noisy_train, noisy_validation=
        config.noisy_validation, noisy_test=config.noisy_test, n_train=counts["train"],
        n_validation=counts["validation"], n_test=counts["test"], n_total=sum(counts.values()), ceiling=ceiling,
        numbers=SAMPLE_NUMBERS)
    return DatasetCard(text)


def generic_card(name: str, label_names: list[str], license: str = "other") -> DatasetCard:
    """A short card for the other datasets' exports."""
    data = DatasetCardData(license=license, task_categories=["video-classification"], pretty_name=name,
                           tags=["emotion-recognition", "audio-visual"])
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n# {name}\n\nExported with `datasets_emotions.export`. "
                       f"Labels: {', '.join(label_names)}. Media are embedded as bytes in the Parquet files; "
                       "`video`/`audio` paths are relative to the original dataset root.\n")


def card_for(name: str, label_names: list[str], config=None) -> DatasetCard:
    if name == "emotions":
        return emotions_card()
    if name == "sample":
        return sample_card(config)
    return generic_card(name, label_names)


def write_cards(folder: str = "hub_cards") -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for file_name, card in (("emotions_dataset_card.md", emotions_card()), ("sample_dataset_card.md", sample_card())):
        path = os.path.join(folder, file_name)
        card.save(path)
        paths.append(path)
    return paths


def main(argv: Optional[list] = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Render the dataset cards into hub_cards/.")
    parser.add_argument("--output", default="hub_cards")
    args = parser.parse_args(argv)
    for path in write_cards(args.output):
        print(path)


if __name__ == "__main__":
    main()
