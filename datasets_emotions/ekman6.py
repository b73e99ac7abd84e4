"""Ekman-6 (Xu et al., 2018): web videos of 6 basic emotions in class folders, with split lists.

Layout: see ``split_lists``. Columns: the core ``video``, ``audio`` (``""``), ``label``, ``polarity``,
``video_id`` (``Class/name``). Surprise has no fixed valence; its polarity defaults to neutral (override with
``label2polarity={"surprise": "positive"}``).
"""

import datasets

from .split_lists import SplitListBuilder


class Ekman6Builder(SplitListBuilder):
    LABELS = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
    LABEL_ALIASES = {"angry": "anger", "sad": "sadness", "happy": "joy", "happiness": "joy"}
    DEFAULT_POLARITY = {"anger": "negative", "disgust": "negative", "fear": "negative", "joy": "positive",
                        "sadness": "negative", "surprise": "neutral"}
    LAYOUT = SplitListBuilder.layout_text("Anger, Disgust, Fear, Joy, Sadness, Surprise")

    def _info(self):
        return datasets.DatasetInfo(description="Ekman-6: user videos of six basic emotions.",
                                    features=self.core_features())
