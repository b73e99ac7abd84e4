"""Dataset cards: ``huggingface_hub.DatasetCard.from_template`` on the Jinja templates of ``hub_cards/`` (package
data), the same mechanism as the model card.

``python -m datasets_emotions.cards`` rewrites ``hub_cards/emotions_dataset_card.md`` and
``hub_cards/sample_dataset_card.md``; the export command puts the matching card (plus the Parquet ``configs``
block) in the exported folder's ``README.md``.
"""

from __future__ import annotations

import os
from typing import Optional

from huggingface_hub import DatasetCard, DatasetCardData

from hub_cards import template
from modeling_avcpnet.labels import EMOTIONS_LABELS, EMOTIONS_POLARITY

from .emotions import CITATION as EMOTIONS_CITATION
from .sample_clips import CLASS_CUES

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
    return DatasetCard.from_template(data, template_str=template("emotions_dataset_card_template.md"),
                                     class_rows=class_rows, stat_rows=stat_rows, platform_rows=platform_rows,
                                     layout=EmotionsBuilder.LAYOUT, citation=EMOTIONS_CITATION)


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
    return DatasetCard.from_template(
        data, template_str=template("sample_dataset_card_template.md"), cue_rows=cue_rows,
        noisy_train=config.noisy_train, noisy_validation=config.noisy_validation, noisy_test=config.noisy_test,
        n_train=counts["train"], n_validation=counts["validation"], n_test=counts["test"],
        n_total=sum(counts.values()), ceiling=ceiling, numbers=SAMPLE_NUMBERS)


def generic_card(name: str, label_names: list[str], license: str = "other") -> DatasetCard:
    """A short card for the other datasets' exports."""
    data = DatasetCardData(license=license, task_categories=["video-classification"], pretty_name=name,
                           tags=["emotion-recognition", "audio-visual"])
    return DatasetCard.from_template(data, template_str=template("dataset_card_template.md"),
                                     label_names=list(label_names))


def card_for(name: str, label_names: list[str], config=None) -> DatasetCard:
    if name == "emotions":
        return emotions_card()
    if name == "sample":
        return sample_card(config)
    return generic_card(name, label_names)


def write_cards(folder: str = "hub_cards") -> list[str]:
    """Render the eMotions and sample cards into `folder` (the committed renders in hub_cards/)."""
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
