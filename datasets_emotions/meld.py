"""MELD (Poria et al., ACL 2019): Friends utterances with emotion and sentiment labels.

Configs: ``emotion`` (7 classes: neutral, joy, sadness, anger, surprise, fear, disgust; the default) and
``sentiment`` (positive, neutral, negative). The label lists keep the order of the MELD paper.

Columns: the core ``video`` (``dia{Dialogue_ID}_utt{Utterance_ID}.mp4``), ``audio`` (``""``), ``label``,
``polarity``, ``video_id`` (``dia{D}_utt{U}``), and the CSV metadata ``utterance``, ``speaker``, ``emotion``,
``sentiment``, ``dialogue_id``, ``utterance_id``, ``season``, ``episode``, ``start_time``, ``end_time``,
``sr_no``. Polarity: in ``sentiment`` it is the sentiment itself; in ``emotion`` joy is positive, neutral neutral,
sadness/anger/fear/disgust negative and surprise neutral by default (surprise is ambiguous in MELD: set
``label2polarity={"surprise": "positive"}`` or ``"negative"``).

Bad rows: the real release misses one dev clip and has one corrupt train clip. Rows whose clip is missing or
unreadable are skipped, all of them counted in one warning (the bad-media policy of every builder,
``EmotionDatasetBuilder.plan_splits``; streaming probes each clip only when it is reached). An emotion or a
sentiment outside MELD's label sets (in either config) is an error naming the CSV, the line and the label; a clip
folder that is not where the layout says is an error naming it (and a near-miss such as ``train_split/``).
"""

from __future__ import annotations

import csv
import dataclasses
import os

import datasets

from modeling_avcpnet.labels import (
    MELD_EMOTION_LABELS,
    MELD_EMOTION_POLARITY,
    MELD_SENTIMENT_LABELS,
    MELD_SENTIMENT_POLARITY,
)

from .builder_base import EmotionDatasetBuilder, EmotionDatasetConfig, LabelError, normalise_label
SPLITS = {  # split: (csv, clip folder)
    "train": ("train_sent_emo.csv", "train_splits"),
    "validation": ("dev_sent_emo.csv", "dev_splits_complete"),
    "test": ("test_sent_emo.csv", "output_repeated_splits_test"),
}
CSV_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season", "Episode",
               "StartTime", "EndTime")


@dataclasses.dataclass
class MeldConfig(EmotionDatasetConfig):
    target: str = "emotion"


class MeldBuilder(EmotionDatasetBuilder):
    BUILDER_CONFIG_CLASS = MeldConfig
    BUILDER_CONFIGS = [
        MeldConfig(name="emotion", target="emotion", description="MELD utterances, 7 emotions"),
        MeldConfig(name="sentiment", target="sentiment", description="MELD utterances, 3 sentiments"),
    ]
    DEFAULT_CONFIG_NAME = "emotion"
    LABEL_ALIASES = {"happy": "joy", "happiness": "joy", "sad": "sadness", "angry": "anger"}
    LAYOUT = """\
<data_dir>/
  train_sent_emo.csv   dev_sent_emo.csv   test_sent_emo.csv
      columns Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode,
      StartTime, EndTime
  train_splits/dia{Dialogue_ID}_utt{Utterance_ID}.mp4
  dev_splits_complete/dia{Dialogue_ID}_utt{Utterance_ID}.mp4
  output_repeated_splits_test/dia{Dialogue_ID}_utt{Utterance_ID}.mp4
  (each clip folder may also sit one level down, e.g. train/train_splits/)"""

    def label_names(self) -> list[str]:
        return list(MELD_EMOTION_LABELS if self.config.target == "emotion" else MELD_SENTIMENT_LABELS)

    @property
    def DEFAULT_POLARITY(self) -> dict:  # noqa: N802 (read by the base class as a class attribute)
        return MELD_SENTIMENT_POLARITY if self.config.target == "sentiment" else MELD_EMOTION_POLARITY

    def checked_column(self, value: str, labels: list, column: str, source: str) -> str:
        """The ``Emotion``/``Sentiment`` metadata value, checked against its label set whatever the config."""
        key = normalise_label(value)
        key = self.LABEL_ALIASES.get(key, key)
        if key not in labels:
            raise LabelError(f"{source}: {column} {value!r} is not one of the MELD labels {labels}")
        return key

    def _info(self):
        return datasets.DatasetInfo(
            description="MELD: multimodal EmotionLines dataset (Friends), utterance clips.",
            features=self.core_features(
                utterance=datasets.Value("string"),
                speaker=datasets.Value("string"),
                emotion=datasets.Value("string"),
                sentiment=datasets.Value("string"),
                dialogue_id=datasets.Value("int32"),
                utterance_id=datasets.Value("int32"),
                season=datasets.Value("int32"),
                episode=datasets.Value("int32"),
                start_time=datasets.Value("string"),
                end_time=datasets.Value("string"),
                sr_no=datasets.Value("int32"),
            ),
            homepage="https://affective-meld.github.io/",
        )

    def validate_layout(self, data_dir: str) -> None:
        if not any(os.path.isfile(os.path.join(data_dir, csv_name)) for csv_name, _ in SPLITS.values()):
            raise self.layout_error(f"{data_dir} has none of {[csv_name for csv_name, _ in SPLITS.values()]}.")

    def clip_folder(self, data_dir: str, csv_name: str, name: str) -> str:
        """``data_dir/name`` or ``data_dir/<one level>/name``; a layout error naming it (and near misses) if absent."""
        direct = os.path.join(data_dir, name)
        if os.path.isdir(direct):
            return direct
        for entry in sorted(os.listdir(data_dir)):
            nested = os.path.join(data_dir, entry, name)
            if os.path.isdir(nested):
                return nested
        known = {folder for _, folder in SPLITS.values()}
        raise self.layout_error(f"the clip folder {name + '/'!r} of {csv_name} is not in {data_dir} (nor one level "
                                f"down){self.missing_folder_hint(data_dir, name, known.__contains__)}.")

    def read_split(self, data_dir: str, csv_name: str, folder_name: str, missing: list) -> list[dict]:
        path = os.path.join(data_dir, csv_name)
        folder = self.clip_folder(data_dir, csv_name, folder_name)
        present = set(os.listdir(folder))
        rows = []
        # utf-8-sig: the release CSVs start with a byte-order mark on some copies
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            reader = csv.DictReader(handle)
            absent = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
            if absent:
                raise self.layout_error(f"{path} lacks the column(s) {absent}; it has {reader.fieldnames}.")
            for line, record in enumerate(reader, 2):
                source = f"{path}:{line}"
                emotion = self.checked_column(record["Emotion"], MELD_EMOTION_LABELS, "emotion", source)
                sentiment = self.checked_column(record["Sentiment"], MELD_SENTIMENT_LABELS, "sentiment", source)
                label = emotion if self.config.target == "emotion" else sentiment
                try:
                    numbers = {column: int(record[column]) for column in ("Dialogue_ID", "Utterance_ID", "Season",
                                                                         "Episode")}
                except (TypeError, ValueError) as error:
                    raise ValueError(f"{source}: expected integer ids, got {error}") from None
                video_id = f"dia{numbers['Dialogue_ID']}_utt{numbers['Utterance_ID']}"
                file_name = video_id + ".mp4"
                if file_name not in present:
                    missing.append(f"{folder_name}/{file_name}")
                    continue
                rows.append(self.make_row(
                    os.path.join(folder, file_name), label, video_id,
                    utterance=record["Utterance"], speaker=record["Speaker"], emotion=emotion, sentiment=sentiment,
                    dialogue_id=numbers["Dialogue_ID"], utterance_id=numbers["Utterance_ID"],
                    season=numbers["Season"], episode=numbers["Episode"],
                    start_time=record["StartTime"], end_time=record["EndTime"],
                    sr_no=int(record.get("Sr No.") or -1),  # -1: a copy without the running number
                ))
        return rows

    def _split_generators(self, dl_manager):
        data_dir = self.checked_data_dir()
        missing: list[str] = []
        splits = {split: self.read_split(data_dir, csv_name, folder_name, missing)
                  for split, (csv_name, folder_name) in SPLITS.items()
                  if os.path.isfile(os.path.join(data_dir, csv_name))}
        return self.plan_splits(dl_manager, splits, {"rows whose clip is missing": missing})
