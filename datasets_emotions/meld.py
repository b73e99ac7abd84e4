"""MELD (Poria et al., ACL 2019): Friends utterances with emotion and sentiment labels.

Configs: ``emotion`` (7 classes: neutral, joy, sadness, anger, surprise, fear, disgust; the default) and
``sentiment`` (positive, neutral, negative). The label lists keep the order of the MELD paper.

Columns: the core ``video`` (``dia{Dialogue_ID}_utt{Utterance_ID}.mp4``), ``audio`` (``""``), ``label``,
``polarity``, ``video_id`` (``dia{D}_utt{U}``), and the CSV metadata ``utterance``, ``speaker``, ``emotion``,
``sentiment``, ``dialogue_id``, ``utterance_id``, ``season``, ``episode``, ``start_time``, ``end_time``,
``sr_no``. Polarity: in ``sentiment`` it is the sentiment itself; in ``emotion`` joy is positive, neutral neutral,
sadness/anger/fear/disgust negative and surprise neutral by default (surprise is ambiguous in MELD: set
``label2polarity={"surprise": "positive"}`` or ``"negative"``).

Bad rows: the real release misses one dev clip and has one corrupt train clip. Every clip is probed while the
splits are planned (``common.probe_clip``: PyAV opens the container and reads the stream headers, no decoding,
a few milliseconds per clip); rows whose clip is missing or unreadable are skipped, all of them counted in one
warning. A label outside the config's label set is an error naming the CSV, the line and the label.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import datasets

from .common import EmotionDatasetBuilder, EmotionDatasetConfig, probe_clips

EMOTION_LABELS = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")
SENTIMENT_LABELS = ("positive", "neutral", "negative")
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
        return list(EMOTION_LABELS if self.config.target == "emotion" else SENTIMENT_LABELS)

    @property
    def DEFAULT_POLARITY(self) -> dict:  # noqa: N802 (read by the base class as a class attribute)
        if self.config.target == "sentiment":
            return {label: label for label in SENTIMENT_LABELS}
        return {"neutral": "neutral", "joy": "positive", "sadness": "negative", "anger": "negative",
                "surprise": "neutral", "fear": "negative", "disgust": "negative"}

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

    @staticmethod
    def clip_folder(data_dir: str, name: str) -> str:
        direct = os.path.join(data_dir, name)
        if os.path.isdir(direct):
            return direct
        for entry in sorted(os.listdir(data_dir)):
            nested = os.path.join(data_dir, entry, name)
            if os.path.isdir(nested):
                return nested
        return direct

    def read_split(self, data_dir: str, csv_name: str, folder_name: str, skipped: dict) -> list[dict]:
        path = os.path.join(data_dir, csv_name)
        folder = self.clip_folder(data_dir, folder_name)
        present = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        target = "Emotion" if self.config.target == "emotion" else "Sentiment"
        rows = []
        # utf-8-sig: the release CSVs start with a byte-order mark on some copies
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            reader = csv.DictReader(handle)
            absent = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
            if absent:
                raise self.layout_error(f"{path} lacks the column(s) {absent}; it has {reader.fieldnames}.")
            for line, record in enumerate(reader, 2):
                source = f"{path}:{line}"
                label = self.resolve_label(record[target], source)
                try:
                    numbers = {column: int(record[column]) for column in ("Dialogue_ID", "Utterance_ID", "Season",
                                                                         "Episode")}
                except (TypeError, ValueError) as error:
                    raise ValueError(f"{source}: expected integer ids, got {error}") from None
                video_id = f"dia{numbers['Dialogue_ID']}_utt{numbers['Utterance_ID']}"
                file_name = video_id + ".mp4"
                if file_name not in present:
                    skipped["missing"].append(f"{folder_name}/{file_name}")
                    continue
                rows.append(self.make_row(
                    os.path.join(folder, file_name), label, video_id,
                    utterance=record["Utterance"], speaker=record["Speaker"],
                    emotion=record["Emotion"].strip().lower(), sentiment=record["Sentiment"].strip().lower(),
                    dialogue_id=numbers["Dialogue_ID"], utterance_id=numbers["Utterance_ID"],
                    season=numbers["Season"], episode=numbers["Episode"],
                    start_time=record["StartTime"], end_time=record["EndTime"],
                    sr_no=int(record.get("Sr No.") or -1),  # -1: a copy without the running number
                ))
        problems = probe_clips([row["video"] for row in rows])
        for row, problem in zip(rows, problems):
            if problem is not None:
                skipped["unreadable"].append(f"{folder_name}/{os.path.basename(row['video'])}: {problem}")
        return [row for row, problem in zip(rows, problems) if problem is None]

    def _split_generators(self, dl_manager):
        data_dir = self.checked_data_dir()
        skipped = {"missing": [], "unreadable": []}
        generators = []
        for split, (csv_name, folder_name) in SPLITS.items():
            if os.path.isfile(os.path.join(data_dir, csv_name)):
                rows = self.read_split(data_dir, csv_name, folder_name, skipped)
                generators.append(datasets.SplitGenerator(name=datasets.Split(split), gen_kwargs={"rows": rows}))
        self.warn_skipped(self.name, {"rows whose clip is missing": skipped["missing"],
                                      "rows whose clip is unreadable": skipped["unreadable"]})
        return generators
