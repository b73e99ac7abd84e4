"""VideoEmotion-8 (Jiang et al., AAAI 2014): 1,101 user videos of Plutchik's 8 emotions, in the layouts of
``split_lists`` (VAANet's ``VideoEmotion8--imgs`` / ``VideoEmotion8--mp3`` / ``ve8_01.json``, or raw videos).

Columns: the core ``video`` (video file or frames folder), ``audio`` (mp3 or ``""``), ``label``, ``polarity``,
``video_id`` (``Class/video_id`` as listed). Polarity: ``modeling_avcpnet.labels.VIDEOEMOTION8_POLARITY``
(anticipation, joy, surprise, trust positive; the rest negative; no class is neutral; override with
``label2polarity={...}``).
"""

import datasets

from modeling_avcpnet.labels import VIDEOEMOTION8_LABELS, VIDEOEMOTION8_POLARITY

from .split_lists import SplitListBuilder


class VideoEmotion8Builder(SplitListBuilder):
    LABELS = tuple(VIDEOEMOTION8_LABELS)
    LABEL_ALIASES = {"angry": "anger", "sad": "sadness"}
    DEFAULT_POLARITY = VIDEOEMOTION8_POLARITY
    LAYOUT = SplitListBuilder.layout_text("Anger, Anticipation, Disgust, Fear, Joy, Sadness, Surprise, Trust")

    def _info(self):
        return datasets.DatasetInfo(description="VideoEmotion-8: user-generated videos of eight emotions.",
                                    features=self.core_features())
