"""VideoEmotion-8 (Jiang et al., AAAI 2014): user videos of Plutchik's 8 emotions in class folders, with split
lists.

Layout: see ``split_lists``. Columns: the core ``video``, ``audio`` (``""``), ``label``, ``polarity``,
``video_id`` (``Class/name``). Polarity defaults: joy, trust, anticipation positive; anger, disgust, fear,
sadness negative; surprise neutral (override with ``label2polarity={...}``).
"""

import datasets

from .split_lists import SplitListBuilder


class VideoEmotion8Builder(SplitListBuilder):
    LABELS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
    LABEL_ALIASES = {"angry": "anger", "sad": "sadness"}
    DEFAULT_POLARITY = {"anger": "negative", "anticipation": "positive", "disgust": "negative", "fear": "negative",
                        "joy": "positive", "sadness": "negative", "surprise": "neutral", "trust": "positive"}
    LAYOUT = SplitListBuilder.layout_text("Anger, Anticipation, Disgust, Fear, Joy, Sadness, Surprise, Trust")

    def _info(self):
        return datasets.DatasetInfo(description="VideoEmotion-8: user-generated videos of eight emotions.",
                                    features=self.core_features())
